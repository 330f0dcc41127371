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
