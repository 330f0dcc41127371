"""A leaderboard as text, Markdown, CSV and a self-contained HTML page with an inline SVG Pareto plot.

Names and error messages come from strangers, so every output treats them as text: control characters (a
newline, a carriage return, bidirectional overrides) become spaces everywhere but in CSV and JSON; Markdown
escapes HTML (``<`` ``>`` ``&``) and the characters that make links, emphasis, code or a new cell; HTML escapes
everything; a CSV cell that is a string starting with ``=``, ``+``, ``-``, ``@``, a tab or a line break gets a
leading ``'`` (spreadsheets would run it as a formula), while numbers stay numbers.
"""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

from micronet_score.render.pareto import pareto_svg

__all__ = ["COLUMNS", "CSV_FIELDS", "pareto_svg", "ranking_note", "to_csv", "to_html", "to_markdown", "to_text"]

COLUMNS = ("rank", "name", "accuracy", "passed", "param_term", "ops_term", "score", "error")
CSV_FIELDS = ("rank", "name", "model", "correct", "total", "accuracy", "passed", "param_term", "ops_term", "score",
              "published", "error")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]+")
_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n")


def _clean(value: Any) -> str:
    """``value`` as one line of text: control and invisible formatting characters become one space."""
    return _CONTROL.sub(" ", str(value)).strip()


def _cells(row: dict[str, Any]) -> list[str]:
    acc = "-"
    if row.get("correct") is not None:
        acc = f"{row['correct']:,}/{row['total']:,} ({row['accuracy']:.2%})"
    passed = "-" if row.get("passed") is None else ("pass" if row["passed"] else "FAIL")
    name = _clean(row.get("name"))
    if row.get("published"):
        name += " (published)"
    return [
        "-" if row.get("rank") is None else str(row["rank"]), name, acc, passed,
        _num(row.get("param_term")), _num(row.get("ops_term")), _num(row.get("score")),
        _clean(row.get("error") or ""),
    ]


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.6f}"


def _ruleset(board: Any) -> Any:
    """The board's rule set: as it carries it, else the registered one of its name (None when unknown)."""
    if getattr(board, "ruleset", None) is not None:
        return board.ruleset
    from micronet_score import rules

    try:
        return rules.get(str(board.rules))
    except Exception:  # a name no longer registered: the page goes without the threshold
        return None


def _threshold(board: Any) -> tuple[float | None, str]:
    """The accuracy threshold as a fraction (None without one, or for a lower-is-better metric) and in words."""
    rules = _ruleset(board)
    if rules is None or rules.threshold is None:
        return None, ""
    if rules.lower_is_better:
        return None, f"{rules.metric} at most {rules.threshold:g}"
    return float(rules.threshold), f"{round(float(rules.threshold) * 100, 4):g}% top-1 accuracy"


def ranking_note(board: Any) -> str:
    """How rows are ranked, in one paragraph (plain text)."""
    _, words = _threshold(board)
    first = (f"Entries that meet the threshold ({words}) rank before those below it, whatever their score; "
             "within each group a lower score ranks first. " if words else "A lower score ranks first. ")
    return (first + "Equal scores (compared exactly, not as shown to six decimals) share a rank and the next "
            "rank skips: 1, 2, 3, 3, 5. Entries that could not be scored have no rank and come last.")


def to_text(board: Any) -> str:
    """A plain table."""
    from tabulate import tabulate

    return tabulate([_cells(r) for r in board.rows], headers=list(COLUMNS))


def _md(text: str) -> str:
    return _MARKDOWN.sub(r"\\\1", html.escape(_clean(text), quote=False))


def to_markdown(board: Any) -> str:
    """A Markdown table under a heading naming the rule set; every cell is escaped text."""
    lines = [f"# Leaderboard ({_md(board.rules)})", "", _md(ranking_note(board)), ""]
    if board.against:
        lines += [f"Rows marked (published) are the final {_md(board.against)} leaderboard as published, not "
                  "re-scored.", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in board.rows:
        lines.append("| " + " | ".join(_md(c) for c in _cells(row)) + " |")
    return "\n".join(lines) + "\n"


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def to_csv(board: Any) -> str:
    """One record per row, the fields of :data:`CSV_FIELDS` (RFC 4180: CRLF line ends, fields holding a line
    break quoted); strings that a spreadsheet would read as a formula start with ``'``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in board.rows:
        writer.writerow({k: _csv_cell(row.get(k)) for k in CSV_FIELDS})
    return buf.getvalue()


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } p.note { color: #444; max-width: 60em; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
svg.pareto { max-width: 100%; height: auto; font-family: inherit; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; border-bottom: 2px solid #bbb; white-space: nowrap; }
td.name, td.err, th.name, th.err { text-align: left; } td.name { font-weight: 600; min-width: 14em; max-width: 24em; overflow-wrap: anywhere; }
td.rank, td.acc, td.pass, td.num { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.err { color: #a00; max-width: 32em; overflow-wrap: anywhere; font-size: 0.9em; }
td.pass.ok { color: #1b7f4a; } td.pass.bad { color: #c0392b; font-weight: 600; }
tr.published td { color: #777; font-weight: normal; } tr.published td.name { font-style: italic; }
tr.failed td.name { color: #a00; }
"""


def to_html(board: Any) -> str:
    """A self-contained page: the table and a Pareto plot (accuracy against score), no external resources."""
    esc = html.escape
    classes = ("rank", "name", "acc", "pass", "num", "num", "num", "err")
    head = "".join(f"<th class='{kind}'>{esc(c)}</th>" for kind, c in zip(classes, COLUMNS))
    body = []
    for row in board.rows:
        cls = "published" if row.get("published") else ("failed" if row.get("error") else "")
        cells = _cells(row)
        tds = []
        for kind, text in zip(classes, cells):
            if kind == "pass" and text in ("pass", "FAIL"):
                mark, state = ("●", "ok") if text == "pass" else ("▲", "bad")
                tds.append(f"<td class='pass {state}'>{mark} {esc(text)}</td>")
            else:
                tds.append(f"<td class='{kind}'>{esc(text)}</td>")
        body.append(f"<tr class='{cls}'>" + "".join(tds) + "</tr>")
    threshold, _ = _threshold(board)
    rules = _ruleset(board)
    about = f"<p class='note'>{esc(_clean(rules.description))}</p>" if rules is not None and rules.description else ""
    published = (f"<p class='note'>Rows marked (published) are the final {esc(board.against)} leaderboard as "
                 "published (score only, not re-scored).</p>" if board.against else "")
    title = esc(_clean(board.rules))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Leaderboard ({title})</title>
<style>{_CSS}</style></head><body>
<h1>Leaderboard ({title})</h1>
{about}
<p class='note'>{esc(ranking_note(board))}</p>
{published}
<figure>{pareto_svg(board.rows, threshold=threshold)}
<figcaption>Top-1 accuracy against score; hover a marker for its values.</figcaption></figure>
<table><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
</body></html>
"""
