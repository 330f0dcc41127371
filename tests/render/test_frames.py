"""DataFrames of reports and comparisons."""

from __future__ import annotations

import pytest
from torch import nn

import micronet_score as ms

pd = pytest.importorskip("pandas")


def test_report_frame_has_one_row_per_layer_and_every_metric():
    r = ms.count(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), (1, 4))
    frame = r.to_pandas()
    assert list(frame.index) == ["0", "1", "2"]
    assert {"params", "nonzero_params", "mask_bits", "mults", "adds", "param_storage", "math_ops"} <= set(frame)
    assert frame.loc["0", "params"] == 4 * 3 + 3 and frame.loc["2", "mults"] == 3 * 2
    assert frame["params"].sum() == r.params


def test_comparison_frame_before_after_delta():
    def mlp():
        return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))

    diff = ms.compare(ms.count(mlp(), (1, 4)), ms.count(nn.Sequential(nn.Linear(4, 3)), (1, 4)))
    frame = diff.to_pandas()
    assert frame.loc["2", "status"] == "removed"
    assert (frame.loc["2", "params_before"], frame.loc["2", "params_after"], frame.loc["2", "params_delta"]) == \
        (3 * 2 + 2, 0, -8)


def test_bit_width_columns_are_ints_or_a_readable_mix():
    # conv (16-bit weights, 16-bit mults, 32-bit adds), ReLU (no parameters), then a linear layer
    r = ms.count(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 2)), (1, 3, 4, 4))
    frame = r.to_pandas()
    assert frame.loc["0", "param_bits"] == 16 and type(frame.loc["0", "param_bits"]).__name__ != "tuple"
    assert str(frame["param_bits"].dtype) == "Int64" and pd.isna(frame.loc["1", "param_bits"])
    assert frame.loc["3", "add_bits"] == 32
    # 8-bit conv and 16-bit linear merged into one row (depth 0): the row mixes widths, written "8/16"
    mixed = ms.count(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 2)),
                     (1, 3, 4, 4), bits={"0": 8, "3": 16})
    assert mixed.to_pandas(depth=0)["param_bits"].tolist() == ["8/16"]
    assert mixed.to_pandas()["param_bits"].tolist()[0] == 8


def test_bits_cell_forms():
    from micronet_score.render.frames import bits_cell

    assert (bits_cell((8,)), bits_cell((16, 8)), bits_cell(())) == (8, "8/16", None)
