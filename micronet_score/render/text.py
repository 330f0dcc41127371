"""Text renderings of reports and scores (tabulate)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tabulate import tabulate

if TYPE_CHECKING:
    from micronet_score.report import Report
    from micronet_score.rules.score import Score


def format_count(value: float | int | None) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _bits(widths: tuple[int, ...]) -> str:
    return "/".join(str(b) for b in widths) if widths else "-"


def report_table(report: Report, depth: int | None = None, tablefmt: str = "simple") -> str:
    """One row per module (merged to ``depth`` levels when given), then the total."""
    rows: dict[str, list] = {}
    for layer in report.layers:
        name = layer.name
        if depth is not None and name:
            name = ".".join(name.split(".")[:depth])
        kind = layer.type if name == layer.name else "…"
        current = rows.get(name)
        unsupported = sum(layer.unsupported.values())
        if current is None:
            rows[name] = [name or "(root)", kind, layer.params, layer.nonzero_params, layer.mask_bits,
                          layer.mults, layer.adds, layer.param_storage, layer.math_ops,
                          set(layer.param_bits), set(layer.mult_bits), unsupported]
        else:
            current[1] = "…" if current[1] != kind else kind
            for i, v in ((2, layer.params), (4, layer.mask_bits), (5, layer.mults), (6, layer.adds),
                         (7, layer.param_storage), (8, layer.math_ops), (11, unsupported)):
                current[i] += v
            current[3] = None if current[3] is None or layer.nonzero_params is None else \
                current[3] + layer.nonzero_params
            current[9] |= set(layer.param_bits)
            current[10] |= set(layer.mult_bits)
    body = []
    for r in rows.values():
        body.append([r[0], r[1], format_count(r[2]), format_count(r[3]), format_count(r[4]), format_count(r[5]), format_count(r[6]),
                     f"{r[7]:,.1f}", f"{r[8]:,.1f}", _bits(tuple(sorted(r[9]))), _bits(tuple(sorted(r[10]))),
                     r[11] or ""])
    body.append(["total", "", format_count(report.params), format_count(report.nonzero_params), format_count(report.mask_bits),
                 format_count(report.mults), format_count(report.adds), f"{report.param_storage:,.1f}", f"{report.math_ops:,.1f}",
                 _bits(tuple(report.params_by_bits)), _bits(tuple(report.mults_by_bits)),
                 report.unsupported_total or ""])
    headers = ["layer", "type", "params", "nonzero", "mask bits", "mults", "adds", "param storage",
               "math ops", "p bits", "m bits", "unsupported"]
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                    colalign=("left", "left") + ("right",) * 10)


def report_summary(report: Report) -> str:
    lines = [
        f"{report.model or 'model'}: {report.params:,} parameters ({format_count(report.nonzero_params)} non-zero, "
        f"{report.mask_bits:,} mask bits), {format_count(report.mults)} mults, {format_count(report.adds)} adds per example",
        f"32-bit equivalents: parameter storage {report.param_storage:,.2f}, math ops {report.math_ops:,.2f} "
        f"(convention {report.convention}, freebie {'on' if report.freebie else 'off'}, "
        f"adds at {report.accumulator_bits} bits)",
    ]
    lines.extend(f"warning: {w}" for w in report.warnings)
    if not report.nonzeros_known:
        lines.append("note: weight values are unknown (meta device): non-zeros counted as dense")
    return "\n".join(lines)


def score_summary(score: Score) -> str:
    parts = [f"{score.rules}: score {score.value:.6f} = {score.param_storage:,.1f} / {score.param_baseline:,.0f} "
             f"+ {score.math_ops:,.1f} / {score.ops_baseline:,.0f} "
             f"({score.param_term:.6f} + {score.ops_term:.6f})"]
    if score.accuracy is not None:
        verdict = "passes" if score.passed else "FAILS"
        parts.append(f"accuracy {score.accuracy:.4%} {verdict} the threshold {score.threshold:.2%}")
    return "\n".join(parts)
