"""Notebook HTML: totals, the costliest layers, and the full table one click away."""

from __future__ import annotations

from torch import nn

import micronet_score as ms
from micronet_score.compress import GlobalUnstructured, finalize_, prune_


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
    assert "<summary>All 3 layers</summary>" in full and full.count("<tr") == 1 + 3 + 1  # header, rows, total
    assert '<tr class="ms-total ms-total-last"><td>total</td>' in full and "<td>16,128.0</td>" in full


def test_report_html_names_uncounted_operators_and_escapes():
    r = ms.count(model(), (1, 3, 8, 8))
    assert "not counted" not in r._repr_html_()
    assert "<script" not in r._repr_html_()


def test_comparison_and_score_html():
    before = ms.count(model(), (1, 3, 8, 8))
    after = ms.count(model().half(), (1, 3, 8, 8))
    html = ms.compare(before, after)._repr_html_()
    assert "<b>Comparison</b>" in html and "<details>" in html and "the largest changes" in html
    s = ms.score(before, rules="micronet-2019-cifar100", accuracy=(8_100, 10_000))
    shtml = s._repr_html_()
    assert "micronet-2019-cifar100" in shtml and 'passes</span> the threshold 80.00%' in shtml


def test_html_uses_a_sans_serif_stack_right_aligned_tabular_numbers_and_no_wrapping():
    before = ms.count(model(), (1, 3, 8, 8))
    after = ms.count(model().half(), (1, 3, 8, 8))
    for html in (before._repr_html_(), ms.compare(before, after)._repr_html_()):
        style = html[html.index("<style>"):html.index("</style>")]
        assert "font-family:system-ui" in style and "sans-serif" in style
        assert "text-align:right" in style and "font-variant-numeric:tabular-nums" in style
        assert "white-space:nowrap" in style  # a change cell "195,954 → 102,156" stays on one line
        assert '<div class="ms ' in html  # the styles are scoped to the package's own blocks


def test_comparison_html_puts_the_total_first_in_the_changes_table():
    before = ms.count(model(), (1, 3, 8, 8))
    after = ms.count(finalize_(prune_(model(), GlobalUnstructured(amount=0.5))), (1, 3, 8, 8))
    html = ms.compare(before, after)._repr_html_()
    first = html[html.index("<table"):html.index("</table>")]
    # one table: the header, the total (bold, ruled off) and then the changed layers, so their columns align
    assert first.index('<tr class="ms-total ms-total-first"><td>total</td>') < first.index("<td>Conv2d</td>")


def test_a_failing_score_is_marked_in_bold_colour_and_words():
    s = ms.score(ms.count(model(), (1, 3, 8, 8)), rules="micronet-2019-cifar100", accuracy=(7_000, 10_000))
    html = s._repr_html_()
    assert '<span class="ms-fail">✗ FAILS</span> the threshold 80.00%' in html
    style = html[html.index("<style>"):html.index("</style>")]
    assert ".ms-fail{color:" in style and "font-weight:700" in style
