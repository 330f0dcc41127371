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

#: A sans-serif system font stack, shared by every page this package writes.
FONT_STACK = ('system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", '
              '"Liberation Sans", sans-serif')

#: The styles of the notebook HTML and of the pages (scoped to ``.ms``, so a notebook's own styles are untouched):
#: numbers right-aligned in tabular figures, cells that never wrap (``195,954 → 102,156`` stays on one line),
#: a failing verdict in bold red with its word (not colour alone).
CSS = (f".ms{{font-family:{FONT_STACK};font-size:13px;line-height:1.45}}"
       ".ms .ms-scroll{overflow-x:auto;max-width:100%}"
       ".ms-table{border-collapse:collapse;margin:4px 0 12px;font-variant-numeric:tabular-nums}"
       ".ms-table td,.ms-table th{text-align:right;padding:3px 8px;white-space:nowrap;"
       "font-variant-numeric:tabular-nums}"
       ".ms-table td:nth-child(-n+2),.ms-table th:nth-child(-n+2){text-align:left}"
       ".ms-table thead th{border-bottom:1px solid #888;font-weight:600}"
       ".ms-table tbody tr:nth-child(even){background:rgba(127,127,127,.08)}"
       ".ms-table tr.ms-total td{font-weight:600}.ms-table tr.ms-total-last td{border-top:1px solid #888}"
       ".ms-table tr.ms-total-first td{border-bottom:1px solid #888}"
       ".ms-fail{color:#b3261e;font-weight:700}.ms-pass{color:#1e7b34;font-weight:700}"
       ".ms p{margin:6px 0}.ms summary{cursor:pointer;margin:4px 0}")
_STYLE = f"<style>{CSS}</style>"


def _table(headers: list[str], rows: list[list[str]], total: str | None = None) -> str:
    """An escaped table; ``total="last"`` (or ``"first"``) marks that row as the total (bold, ruled off)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    at = {"last": len(rows) - 1, "first": 0}.get(total or "", -1)
    body = "".join(
        (f'<tr class="ms-total ms-total-{total}">' if i == at else "<tr>")
        + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for i, row in enumerate(rows))
    return (f'<div class="ms-scroll"><table class="ms-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            f"</table></div>")


def verdict_html(passed: bool) -> str:
    """``passes`` or ``FAILS``, marked by a class (green or bold red) and a sign, so it never rests on colour."""
    return '<span class="ms-pass">✓ passes</span>' if passed else '<span class="ms-fail">✗ FAILS</span>'


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
    return (f"{_STYLE}<div class=\"ms micronet-report\"><p><b>Report</b> {summary}</p>{unsupported}"
            f"<p>Costliest {len(costly)} of {len(report.layers)} layers (by math ops):</p>"
            f"{_table([*headers, '% of ops'], costly)}"
            f"<details><summary>All {len(report.layers)} layers</summary>{_table(headers, every, total='last')}"
            f"</details></div>")


def _comparison_rows(rows: list[LayerComparison], columns: list[tuple[str, str, str]]) -> list[list[str]]:
    return [[r.name or "(root)", type_cell(r), *(change_cell(r.change(n), k) for n, _, k in columns),
             bits_cell(r.param_bits), bits_cell(r.mult_bits)] for r in rows]


def comparison_html(comparison: Comparison, top: int = 5) -> str:
    """One table: the totals before → after, then the ``top`` rows with the largest change of storage and math
    ops; every row in ``<details>``."""
    columns = metric_columns(comparison.total.before)
    headers = ["layer", "type", *(h for _, h, _ in columns), "p bits", "m bits"]
    total = _comparison_rows([comparison.total], columns)
    total[0][:2] = ["total", ""]
    changed = sorted(comparison.changed(), key=lambda r: abs(r.change("math_ops").delta or 0) +
                     abs(r.change("param_storage").delta or 0), reverse=True)[:top]
    return (f"{_STYLE}<div class=\"ms micronet-comparison\"><p><b>Comparison</b>: {len(comparison.changed())} of "
            f"{len(comparison.layers)} layers changed</p><p>The total, then the largest changes:</p>"
            f"{_table(headers, total + _comparison_rows(changed, columns), total='first')}"
            f"<details><summary>All {len(comparison.layers)} layers</summary>"
            f"{_table(headers, _comparison_rows(list(comparison.layers), columns) + total, total='last')}"
            f"</details></div>")


def score_html(score: Score) -> str:
    """The score line and the accuracy verdict (a failing one marked ``FAILS`` in bold red)."""
    line = escape(score_summary(score).splitlines()[0])
    verdict = ""
    if score.accuracy is not None:
        verdict = (f"<br>accuracy {escape(f'{score.accuracy:.4%}')} {verdict_html(bool(score.passed))} the threshold "
                   f"{escape(f'{score.threshold:.2%}')}")
    return f'{_STYLE}<div class="ms micronet-score"><p><b>Score</b> {line}{verdict}</p></div>'
