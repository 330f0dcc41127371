"""Report data: the one Metrics declaration, subtotals, merged rows, costliest rows, short repr, JSON."""

from __future__ import annotations

import doctest
from dataclasses import fields

import pytest
from torch import nn

import micronet_score as ms
import micronet_score.report as report_module
from micronet_score.report import LayerRow, Metrics, Report, metric_names


def small() -> Report:
    # conv 3->8 k3 on 8x8: 3*3*3*8 + 8 = 224 values, 27 * 8*6*6 = 7,776 mults, 26*288 + 288 = 7,776 adds
    # ReLU on 288 values: 288 comparisons (booked as mults)
    # linear 288->10: 2,880 + 10 = 2,890 values, 2,880 mults, 287*10 + 10 = 2,880 adds
    model = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), nn.Flatten(), nn.Linear(288, 10))
    return ms.count(model, (1, 3, 8, 8))


def test_metrics_are_declared_once_and_shared():
    names = metric_names()
    assert names == ("params", "nonzero_params", "mask_bits", "mults", "adds", "param_storage", "math_ops")
    assert issubclass(LayerRow, Metrics) and issubclass(Report, Metrics)
    assert all({"header", "kind", "doc"} <= set(f.metadata) for f in fields(Metrics))
    assert not hasattr(__import__("micronet_score.compare", fromlist=["x"]), "FIELDS")


def test_totals_subtotals_and_merged_rows_by_hand():
    r = small()
    assert r.metrics() == Metrics(params=3_114, nonzero_params=3_114, mask_bits=0, mults=10_944, adds=10_656,
                                  param_storage=1_557.0, math_ops=16_128.0)  # 3,114 / 2; 10,944 / 2 + 10,656
    block = r.subtotal("0")
    assert (block["params"], block["nonzero_params"], block["mults"], block["adds"]) == (224, 224, 8_064, 7_776)
    merged = r.merged(depth=1)
    assert [row.name for row in merged] == ["0", "2"]
    zero = next(row for row in merged if row.name == "0")
    assert zero.type == "…" and zero.mults == 7_776 + 288 and zero.params == 224
    assert [row.name for row in r.costliest(2)] == ["0.0", "2"]  # 11,664 and 4,320 math ops
    with pytest.raises(KeyError, match="no metric 'flops'"):
        r.costliest(by="flops")


def test_repr_is_one_short_line_and_json_round_trips():
    r = small()
    text = repr(r)
    assert text == ("<Report Sequential: 3,114 params (3,114 non-zero), 10,944 mults, 10,656 adds, "
                    "storage 1,557.0, ops 16,128.0>")
    assert Report.from_json(r.to_json()) == r
    big = ms.count(ms.models.build("resnet18-cifar"), (1, 3, 32, 32))  # 67 layer rows
    assert "\n" not in repr(big) and len(repr(big)) < 200


def test_score_and_comparison_reprs_are_short():
    r = small()
    s = ms.score(r, rules="micronet-2019-cifar100", accuracy=0.81)
    # 1,557 / 36.5e6 + 16,128 / 10.49e9
    assert repr(s) == "<Score micronet-2019-cifar100: 0.000044 = 0.000043 (params) + 0.000002 (ops), " \
                      "accuracy 81.00% passes>"
    c = ms.compare(r, r)
    assert repr(c).startswith("<Comparison 0 of 3 layers changed: params 3,114,")
    assert len(repr(c)) < 300


def test_report_docstring_examples():
    failures, _ = doctest.testmod(report_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0
