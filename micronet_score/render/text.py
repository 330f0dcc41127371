"""Text renderings of reports, comparisons and scores (tabulate), and their one-line reprs.

Columns come from :class:`~micronet_score.report.Metrics`' field metadata: a metric of kind ``"count"`` prints
as an exact number, one of kind ``"equiv"`` (32-bit equivalents) with one decimal.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

if TYPE_CHECKING:
    from micronet_score.compare import BitsChange, Change, Comparison, LayerComparison
    from micronet_score.report import LayerRow, Metrics, Report
    from micronet_score.rules.score import Score


def format_count(value: float | int | None) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def one_decimal(value: float | int | None) -> str:
    return "?" if value is None else f"{value:,.1f}"


def metric_columns(metrics: Metrics) -> list[tuple[str, str, str]]:
    """``(name, header, kind)`` of every metric field of ``metrics``' class, in declaration order."""
    return [(f.name, f.metadata["header"], f.metadata["kind"]) for f in fields(metrics) if "kind" in f.metadata]


def format_metric(kind: str, value: float | int | None) -> str:
    return one_decimal(value) if kind == "equiv" else format_count(value)


def bits(widths: tuple[int, ...] | set[int] | Any) -> str:
    return "/".join(str(b) for b in sorted(widths)) if widths else "-"


# ------------------------------------------------------------------------------------------------- reports
def report_table(report: Report, depth: int | None = None, tablefmt: str = "simple") -> str:
    """One row per module (merged to ``depth`` levels when given), then the total."""
    columns = metric_columns(report)
    body: list[list[Any]] = []
    for row in report.merged(depth):
        body.append([row.name or "(root)", row.type, *(format_metric(k, getattr(row, n)) for n, _, k in columns),
                     bits(row.param_bits), bits(row.mult_bits), sum(row.unsupported.values()) or ""])
    body.append(["total", "", *(format_metric(k, getattr(report, n)) for n, _, k in columns),
                 bits(tuple(report.params_by_bits)), bits(tuple(report.mults_by_bits)),
                 report.unsupported_total or ""])
    headers = ["layer", "type", *(h for _, h, _ in columns), "p bits", "m bits", "unsupported"]
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                    colalign=("left", "left") + ("right",) * (len(headers) - 2))


def report_summary(report: Report) -> str:
    lines = [
        f"{report.model or 'model'}: {report.params:,} parameters ({format_count(report.nonzero_params)} non-zero, "
        f"{report.mask_bits:,} mask bits), {format_count(report.mults)} mults, {format_count(report.adds)} adds per example",
        f"32-bit equivalents: parameter storage {report.param_storage:,.2f}, math ops {report.math_ops:,.2f} "
        f"(convention {report.convention}, freebie {'on' if report.freebie else 'off'}, "
        f"adds at {report.accumulator_bits} bits)",
    ]
    lines.extend(f"warning: {w}" for w in report.warnings)
    lines.extend(f"load-time (free; its stored sources counted whole): {w}" for w in report.load_time)
    if not report.nonzeros_known:
        lines.append("note: weight values are unknown (meta device): non-zeros counted as dense")
    return "\n".join(lines)


def report_repr(report: Report) -> str:
    """One line of totals (``repr`` of a report; the full table is ``report.table()``)."""
    warn = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    return (f"<Report {report.model or 'model'}: {format_count(report.params)} params "
            f"({format_count(report.nonzero_params)} non-zero), {format_count(report.mults)} mults, "
            f"{format_count(report.adds)} adds, storage {one_decimal(report.param_storage)}, "
            f"ops {one_decimal(report.math_ops)}{warn}>")


def layer_cells(row: LayerRow) -> list[str]:
    return [format_metric(k, getattr(row, n)) for n, _, k in metric_columns(row)]


# --------------------------------------------------------------------------------------------- comparisons
def _signed(value: float | int | None) -> str:
    if value is None:
        return "?"
    return f"{value:+,.1f}" if round(value, 1) != 0 else "0"


def change_cell(change: Change, kind: str = "count") -> str:
    if not change.changed:
        return format_metric(kind, change.before)
    return f"{format_metric(kind, change.before)} → {format_metric(kind, change.after)}"


def bits_cell(change: BitsChange) -> str:
    if not change.changed:
        return bits(change.before)
    return f"{bits(change.before)} → {bits(change.after)}"


def type_cell(row: LayerComparison) -> str:
    before = row.type_before if row.type_before is not None else "(none)"
    after = row.type_after if row.type_after is not None else "(none)"
    return before if before == after else f"{before} → {after}"


def comparison_table(comparison: Comparison, depth: int | None = None, tablefmt: str = "simple",
                     changed_only: bool = False) -> str:
    """One row per module (merged to ``depth`` name levels; only changed rows with ``changed_only``), then the
    total. A changed number reads ``before → after``; the last two columns are the changes of the score's
    numerators (32-bit-equivalent parameter storage and math operations)."""
    rows = list(comparison.merged(depth))
    if changed_only:
        rows = [r for r in rows if r.status != "unchanged"]
    columns = metric_columns(comparison.total.before)
    body = []
    for r in [*rows, comparison.total]:
        body.append([r.name or "(root)", type_cell(r) if r is not comparison.total else "",
                     *(change_cell(r.change(n), k) for n, _, k in columns),
                     bits_cell(r.param_bits), bits_cell(r.mult_bits),
                     _signed(r.change("param_storage").delta), _signed(r.change("math_ops").delta)])
    headers = ["layer", "type", *(h for _, h, _ in columns), "p bits", "m bits", "Δ storage", "Δ ops"]
    lines = tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                     colalign=("left", "left") + ("right",) * (len(headers) - 2))
    before, after = comparison.freebie
    note = "" if before == after else \
        f"\n16-bit freebie: {'on' if before else 'off'} → {'on' if after else 'off'}"
    return lines + note


def comparison_repr(comparison: Comparison) -> str:
    """One line: the totals that changed (``repr`` of a comparison)."""
    total = comparison.total
    parts = [f"{h} {change_cell(total.change(n), k)}" for n, h, k in metric_columns(total.before)
             if n in ("params", "nonzero_params", "param_storage", "math_ops")]
    return f"<Comparison {len(comparison.changed())} of {len(comparison.layers)} layers changed: {', '.join(parts)}>"


# ------------------------------------------------------------------------------------------------- scores
def score_summary(score: Score) -> str:
    parts = [f"{score.rules}: score {score.value:.6f} = {score.param_storage:,.1f} / {score.param_baseline:,.0f} "
             f"+ {score.math_ops:,.1f} / {score.ops_baseline:,.0f} "
             f"({score.param_term:.6f} + {score.ops_term:.6f})"]
    if score.accuracy is not None:
        verdict = "passes" if score.passed else "FAILS"
        parts.append(f"accuracy {score.accuracy:.4%} {verdict} the threshold {score.threshold:.2%}")
    return "\n".join(parts)


def score_repr(score: Score) -> str:
    """One line: the value and its two terms (``repr`` of a score)."""
    acc = ""
    if score.accuracy is not None:
        acc = f", accuracy {score.accuracy:.2%} {'passes' if score.passed else 'FAILS'}"
    return (f"<Score {score.rules}: {score.value:.6f} = {score.param_term:.6f} (params) + "
            f"{score.ops_term:.6f} (ops){acc}>")
