"""Console output of a report: with ``rich`` when installed (the ``rich`` extra), as plain text otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from micronet_score.render.text import bits, format_metric, metric_columns, report_summary, report_table

if TYPE_CHECKING:
    from micronet_score.report import Report


def print_report(report: Report, depth: int | None = None) -> None:
    """Print the summary and the per-layer table (a rich Table when rich is importable)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(report_summary(report))
        print(report_table(report, depth=depth))
        return
    columns = metric_columns(report)
    table = Table(title=report_summary(report), title_justify="left")
    table.add_column("layer")
    table.add_column("type")
    for _, header, _ in columns:
        table.add_column(header, justify="right")
    table.add_column("p bits", justify="right")
    table.add_column("m bits", justify="right")
    for row in report.merged(depth):
        table.add_row(row.name or "(root)", row.type, *(format_metric(k, getattr(row, n)) for n, _, k in columns),
                      bits(row.param_bits), bits(row.mult_bits))
    table.add_row("total", "", *(format_metric(k, getattr(report, n)) for n, _, k in columns),
                  bits(tuple(report.params_by_bits)), bits(tuple(report.mults_by_bits)), style="bold")
    Console().print(table)
