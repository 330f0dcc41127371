"""Notebook HTML: totals, the costliest layers, and the full table one click away."""

from __future__ import annotations

from torch import nn

import micronet_score as ms


def model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 10))


def test_report_html_has_totals_costliest_layers_and_details():
    r = ms.count(model(), (1, 3, 8, 8))
    html = r._repr_html_()
    # totals: 3*3*3*8 + 8 + 288*10 + 10 = 3,114 values; 7,776 + 288 + 2,880 = 10,944 mults
    assert "3,114 parameters" in html and "10,944 mults" in html
    assert "Costliest 3 of 3 layers" in html
    costly, full = html.split("<details>")
    # the conv (11,664 math ops) comes before the linear (4,320) and the ReLU (144)
    assert costly.index("<td>Conv2d</td>") < costly.index("<td>Linear</td>") < costly.index("<td>ReLU</td>")
    assert "<summary>All 3 layers</summary>" in full and full.count("<tr>") == 1 + 3 + 1  # header, rows, total
    assert "<td>total</td>" in full and "<td>16,128.0</td>" in full


def test_report_html_names_uncounted_operators_and_escapes():
    r = ms.count(model(), (1, 3, 8, 8))
    assert "not counted" not in r._repr_html_()
    assert "<script" not in r._repr_html_()


def test_comparison_and_score_html():
    before = ms.count(model(), (1, 3, 8, 8))
    after = ms.count(model().half(), (1, 3, 8, 8))
    html = ms.compare(before, after)._repr_html_()
    assert "<b>Comparison</b>" in html and "<details>" in html and "Largest changes" in html
    s = ms.score(before, rules="micronet-2019-cifar100", accuracy=(8_100, 10_000))
    shtml = s._repr_html_()
    assert "micronet-2019-cifar100" in shtml and "passes the threshold 80.00%" in shtml
