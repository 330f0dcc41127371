"""HTML for notebooks (``_repr_html_``): the totals, the costliest layers, the full table in ``<details>``."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from micronet_score.render.text import (
    bits,
    bits_cell,
    change_cell,
    format_metric,
    metric_columns,
    report_summary,
    score_summary,
    type_cell,
)

if TYPE_CHECKING:
    from micronet_score.compare import Comparison, LayerComparison
    from micronet_score.report import LayerRow, Report
    from micronet_score.rules.score import Score

_STYLE = ("<style>.ms-table td,.ms-table th{text-align:right;padding:2px 8px}"
          ".ms-table td:nth-child(-n+2),.ms-table th:nth-child(-n+2){text-align:left}</style>")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="ms-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _layer_rows(report: Report, rows: tuple[LayerRow, ...]) -> tuple[list[str], list[list[str]]]:
    columns = metric_columns(report)
    headers = ["layer", "type", *(h for _, h, _ in columns), "p bits", "m bits"]
    body = [[r.name or "(root)", r.type, *(format_metric(k, getattr(r, n)) for n, _, k in columns),
             bits(r.param_bits), bits(r.mult_bits)] for r in rows]
    return headers, body


def report_html(report: Report, top: int = 5) -> str:
    """The summary, the ``top`` layers by 32-bit-equivalent math ops, and every layer under ``<details>``."""
    summary = "<br>".join(escape(line) for line in report_summary(report).splitlines())
    headers, costly = _layer_rows(report, report.costliest(top))
    for row, layer in zip(costly, report.costliest(top)):
        row.append(f"{100 * layer.math_ops / report.math_ops:.1f}%" if report.math_ops else "-")
    _, every = _layer_rows(report, report.layers)
    columns = metric_columns(report)
    every.append(["total", "", *(format_metric(k, getattr(report, n)) for n, _, k in columns),
                  bits(tuple(report.params_by_bits)), bits(tuple(report.mults_by_bits))])
    unsupported = ""
    if report.unsupported_total:
        unsupported = (f"<p><b>{report.unsupported_total} operator call(s) not counted</b>: "
                       f"{escape(', '.join(sorted({op for c in report.unsupported.values() for op in c})))}</p>")
    return (f"{_STYLE}<div class=\"micronet-report\"><p><b>Report</b> {summary}</p>{unsupported}"
            f"<p>Costliest {len(costly)} of {len(report.layers)} layers (by math ops):</p>"
            f"{_table([*headers, '% of ops'], costly)}"
            f"<details><summary>All {len(report.layers)} layers</summary>{_table(headers, every)}</details></div>")


def _comparison_rows(rows: list[LayerComparison], columns: list[tuple[str, str, str]]) -> list[list[str]]:
    return [[r.name or "(root)", type_cell(r), *(change_cell(r.change(n), k) for n, _, k in columns),
             bits_cell(r.param_bits), bits_cell(r.mult_bits)] for r in rows]


def comparison_html(comparison: Comparison, top: int = 5) -> str:
    """The totals before → after, the ``top`` rows with the largest change of math ops, every row in
    ``<details>``."""
    columns = metric_columns(comparison.total.before)
    headers = ["layer", "type", *(h for _, h, _ in columns), "p bits", "m bits"]
    total = _comparison_rows([comparison.total], columns)
    total[0][:2] = ["total", ""]
    changed = sorted(comparison.changed(), key=lambda r: abs(r.change("math_ops").delta or 0) +
                     abs(r.change("param_storage").delta or 0), reverse=True)[:top]
    return (f"{_STYLE}<div class=\"micronet-comparison\"><p><b>Comparison</b>: {len(comparison.changed())} of "
            f"{len(comparison.layers)} layers changed</p>{_table(headers, total)}"
            f"<p>Largest changes:</p>{_table(headers, _comparison_rows(changed, columns))}"
            f"<details><summary>All {len(comparison.layers)} layers</summary>"
            f"{_table(headers, _comparison_rows(list(comparison.layers), columns) + total)}</details></div>")


def score_html(score: Score) -> str:
    """The score line and the accuracy verdict."""
    lines = "<br>".join(escape(line) for line in score_summary(score).splitlines())
    return f'<div class="micronet-score"><p><b>Score</b> {lines}</p></div>'
