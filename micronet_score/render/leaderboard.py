"""A leaderboard as text, Markdown, CSV and a self-contained HTML page with an inline SVG Pareto plot."""

from __future__ import annotations

import csv
import html
import io
import math
from typing import Any

COLUMNS = ("rank", "name", "accuracy", "passed", "param_term", "ops_term", "score", "error")
CSV_FIELDS = ("rank", "name", "model", "correct", "total", "accuracy", "passed", "param_term", "ops_term", "score",
              "published", "error")


def _cells(row: dict[str, Any]) -> list[str]:
    acc = "-"
    if row.get("correct") is not None:
        acc = f"{row['correct']:,}/{row['total']:,} ({row['accuracy']:.2%})"
    passed = "-" if row.get("passed") is None else ("pass" if row["passed"] else "FAIL")
    name = str(row.get("name"))
    if row.get("published"):
        name += " (published)"
    return [
        "-" if row.get("rank") is None else str(row["rank"]), name, acc, passed,
        _num(row.get("param_term")), _num(row.get("ops_term")), _num(row.get("score")),
        row.get("error") or "",
    ]


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.6f}"


def to_text(board: Any) -> str:
    """A plain table."""
    from tabulate import tabulate

    return tabulate([_cells(r) for r in board.rows], headers=list(COLUMNS))


def to_markdown(board: Any) -> str:
    """A Markdown table under a heading naming the rule set."""
    lines = [f"# Leaderboard ({board.rules})", ""]
    if board.against:
        lines += [f"Rows marked (published) are the final {board.against} leaderboard as published, not "
                  "re-scored.", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in board.rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(row)) + " |")
    return "\n".join(lines) + "\n"


def to_csv(board: Any) -> str:
    """One line per row, the fields of :data:`CSV_FIELDS`."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in board.rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_FIELDS})
    return buf.getvalue()


def to_html(board: Any) -> str:
    """A self-contained page: the table and a Pareto plot (accuracy against score), no external resources."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = []
    for row in board.rows:
        cls = "published" if row.get("published") else ("failed" if row.get("error") else "")
        body.append(f"<tr class='{cls}'>" + "".join(f"<td>{esc(c)}</td>" for c in _cells(row)) + "</tr>")
    note = (f"<p>Rows marked (published) are the final {esc(board.against)} leaderboard as published (score only, "
            "not re-scored).</p>" if board.against else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Leaderboard ({esc(board.rules)})</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:nth-child(2), td:last-child {{ text-align: left; }} tr.failed {{ color: #a00; }} tr.published {{ color: #666; }}
</style></head><body>
<h1>Leaderboard ({esc(board.rules)})</h1>
{note}
{pareto_svg(board.rows)}
<table><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
</body></html>
"""


def pareto_svg(rows: Any, width: int = 640, height: int = 360) -> str:
    """Accuracy (y) against score (x, lower is better) as inline SVG; the Pareto front joined by a line.
    Published rows without an accuracy are ticks along the bottom."""
    esc = html.escape
    points = [r for r in rows if r.get("score") is not None and r.get("accuracy") is not None]
    ticks = [r for r in rows if r.get("score") is not None and r.get("accuracy") is None]
    scores = [r["score"] for r in points + ticks]
    if not scores:
        return "<p>No scored entries to plot.</p>"
    left, right, top, bottom = 60, 20, 20, 50
    positive = [v for v in scores if v > 0] or [1e-3]
    lo, hi = math.log10(min(positive) / 1.5), math.log10(max(positive) * 1.5)  # scores span decades: log axis
    accs = [r["accuracy"] for r in points] or [0.0, 1.0]
    alo, ahi = min(accs), max(accs)
    if ahi - alo < 1e-9:
        alo, ahi = max(0.0, alo - 0.05), min(1.0, ahi + 0.05)

    def sx(v: float) -> float:
        return left + (math.log10(max(v, 10 ** lo)) - lo) / (hi - lo) * (width - left - right)

    def sy(a: float) -> float:
        return top + (ahi - a) / (ahi - alo) * (height - top - bottom - 20)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
             "aria-label='accuracy against score'>",
             f"<line x1='{left}' y1='{height - bottom}' x2='{width - right}' y2='{height - bottom}' stroke='#444'/>",
             f"<line x1='{left}' y1='{top}' x2='{left}' y2='{height - bottom}' stroke='#444'/>",
             f"<text x='{(left + width) / 2}' y='{height - 10}' text-anchor='middle' font-size='12'>"
             "score (log scale, lower is better)</text>",
             f"<text x='14' y='{height / 2}' font-size='12' transform='rotate(-90 14 {height / 2})' "
             "text-anchor='middle'>top-1 accuracy</text>",
             f"<text x='{left - 4}' y='{sy(ahi) + 4:.1f}' text-anchor='end' font-size='10'>{ahi:.1%}</text>",
             f"<text x='{left - 4}' y='{sy(alo) + 4:.1f}' text-anchor='end' font-size='10'>{alo:.1%}</text>"]
    for decade in range(math.ceil(lo), math.floor(hi) + 1):
        x = sx(10.0 ** decade)
        parts.append(f"<line x1='{x:.1f}' y1='{height - bottom}' x2='{x:.1f}' y2='{height - bottom + 4}' "
                     f"stroke='#444'/><text x='{x:.1f}' y='{height - bottom + 16}' text-anchor='middle' "
                     f"font-size='10'>{10.0 ** decade:g}</text>")
    front, best = [], -1.0
    for r in sorted(points, key=lambda r: (r["score"], -r["accuracy"])):
        if r["accuracy"] > best:
            front.append(r)
            best = r["accuracy"]
    if len(front) > 1:
        path = " ".join(f"{sx(r['score']):.1f},{sy(r['accuracy']):.1f}" for r in front)
        parts.append(f"<polyline points='{path}' fill='none' stroke='#2a7' stroke-width='1.5'/>")
    labelled: list[tuple[float, float]] = []
    for r in points:
        color = "#2a7" if r.get("passed") is not False else "#c33"
        parts.append(f"<circle cx='{sx(r['score']):.1f}' cy='{sy(r['accuracy']):.1f}' r='4' fill='{color}'>"
                     f"<title>{esc(str(r['name']))}: score {r['score']:.6f}, accuracy {r['accuracy']:.2%}"
                     "</title></circle>")
        x, y = sx(r["score"]), sy(r["accuracy"])
        if all(abs(x - lx) > 60 or abs(y - ly) > 12 for lx, ly in labelled):  # no label over another
            labelled.append((x, y))
            parts.append(f"<text x='{x + 6:.1f}' y='{y - 6:.1f}' font-size='10'>{esc(str(r['name']))}</text>")
    for r in ticks:
        x = sx(r["score"])
        parts.append(f"<line x1='{x:.1f}' y1='{height - bottom - 14}' x2='{x:.1f}' y2='{height - bottom}' "
                     f"stroke='#888'><title>{esc(str(r['name']))} (published): score {r['score']}</title></line>")
    parts.append("</svg>")
    return "\n".join(parts)
