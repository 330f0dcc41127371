"""The Codabench ``detailed_results.html`` page of one scored (or refused) submission.

A self-contained page (no external resources): the verdict, the score and its two terms, the accuracy as
correct / total and per cent, the submission's identity, and a per-layer table when the row has ``layers``. Empty
fields are left out, numbers get the precision a reader needs, and absolute paths of the scoring machine are
shown relative to the folders Codabench names (``res/``, ``ref/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from micronet_score.render.html import CSS, verdict_html
from micronet_score.render.text import bits, format_count, one_decimal

_PAGE_CSS = ("body{margin:24px auto;max-width:1100px;padding:0 16px}"
             "h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:22px 0 6px}"
             ".ms-sub{color:#555;margin:0 0 14px}"
             ".ms-banner{display:inline-block;padding:6px 12px;border-radius:4px;font-size:15px;margin:6px 0 10px}"
             ".ms-banner.ms-pass{background:#e6f4ea;border:1px solid #1e7b34}"
             ".ms-banner.ms-fail{background:#fce8e6;border:1px solid #b3261e}"
             ".ms-facts th{text-align:left;font-weight:600;padding:3px 16px 3px 0;white-space:nowrap}"
             ".ms-facts td{padding:3px 12px 3px 0;white-space:nowrap;font-variant-numeric:tabular-nums}"
             ".ms-facts td.ms-num{text-align:right}.ms-facts td.ms-note{color:#555;white-space:normal}"
             ".ms-reason{max-width:900px;margin:0 0 12px}code{font-size:12px}")


def _score(value: float) -> str:
    return f"{value:.6f}"


def _value(value: Any) -> str:
    """A manifest value as TOML writes it (``1``, ``"x"``, ``[1, 2]``), never a Python repr."""
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else str(value)


def _relative(text: str, paths: Mapping[str, str]) -> str:
    for absolute, shown in sorted(paths.items(), key=lambda kv: -len(kv[0])):  # the longest prefix first
        text = text.replace(absolute.rstrip("/") + "/", shown.rstrip("/") + "/").replace(absolute, shown)
    return text


def _fact(label: str, value: str, note: str = "", numeric: bool = False) -> str:
    cls = ' class="ms-num"' if numeric else ""
    return (f"<tr><th>{escape(label)}</th><td{cls}>{value}</td>"
            f'<td class="ms-note">{note}</td></tr>')


def _banner(row: Mapping[str, Any], paths: Mapping[str, str]) -> str:
    if row.get("error") or row.get("score") is None:
        reason = escape(_relative(str(row.get("error") or "no score"), paths))
        return f'<div class="ms-banner ms-fail">✗ <b>Not scored</b></div><p class="ms-reason">{reason}</p>'
    if row.get("passed") is None:
        return '<div class="ms-banner ms-pass"><b>Scored</b> (no accuracy threshold)</div>'
    threshold = row.get("threshold")
    against = f" the accuracy threshold {threshold:.2%}" if threshold is not None else " the accuracy threshold"
    if row.get("accuracy") is not None:
        against += f" (accuracy {row['accuracy']:.2%})"
    kind = "ms-pass" if row["passed"] else "ms-fail"
    return f'<div class="ms-banner {kind}">{verdict_html(bool(row["passed"]))}{escape(against)}</div>'


def _facts(row: Mapping[str, Any], paths: Mapping[str, str]) -> str:
    facts = []
    if row.get("score") is not None:
        facts.append(_fact("Score", f"<b>{_score(row['score'])}</b>", "lower is better; the sum of the two terms",
                           numeric=True))
    for term, numerator, baseline, what in (
            ("param_term", "param_storage", "param_baseline", "parameter storage"),
            ("ops_term", "math_ops", "ops_baseline", "math operations")):
        if row.get(term) is None:
            continue
        note = f"32-bit-equivalent {what}"
        if row.get(numerator) is not None:
            note = f"{one_decimal(row[numerator])} {note}"
            if row.get(baseline) is not None:
                note += f" / baseline {format_count(row[baseline])}"
        facts.append(_fact(f"{what.capitalize()} term", _score(row[term]), escape(note), numeric=True))
    if row.get("correct") is not None and row.get("total") is not None:
        threshold = row.get("threshold")
        note = f"threshold {threshold:.2%}" if threshold is not None else ""
        percent = f" ({row['accuracy']:.2%})" if row.get("accuracy") is not None else ""
        facts.append(_fact("Accuracy", f"{row['correct']:,} / {row['total']:,} correct{escape(percent)}",
                           escape(note)))
    for label, key in (("Submission", "name"), ("Model", "model")):
        if row.get(key):
            facts.append(_fact(label, f"<code>{escape(_relative(str(row[key]), paths))}</code>"))
    if row.get("args"):
        args = ", ".join(f"{k} = {_value(v)}" for k, v in dict(row["args"]).items())
        facts.append(_fact("Model arguments", f"<code>{escape(args)}</code>"))
    if row.get("weights"):
        sha = row.get("weights_sha256")
        note = f"SHA-256 <code>{escape(str(sha))}</code>" if sha else ""
        facts.append(_fact("Weights", f"<code>{escape(_relative(str(row['weights']), paths))}</code>", note))
    rules = row.get("rules")
    if rules:
        convention = f", counting convention {row['convention']}" if row.get("convention") else ""
        facts.append(_fact("Rule set", f"<code>{escape(str(rules))}</code>", escape(convention.lstrip(", "))))
    return f'<table class="ms-facts">{"".join(facts)}</table>'


def _layer_table(layers: Iterable[Mapping[str, Any]], math_ops: float | None) -> str:
    layers = [r for r in layers if r.get("params") or r.get("math_ops")]
    if not layers:
        return ""
    headers = ("layer", "type", "params", "non-zero", "param storage", "math ops", "% of ops", "p bits", "m bits")
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = []
    for r in layers:
        share = f"{100 * r['math_ops'] / math_ops:.1f}%" if math_ops else "-"
        cells = (r.get("name") or "(root)", r.get("type", ""), format_count(r.get("params")),
                 format_count(r.get("nonzero_params")), one_decimal(r.get("param_storage")),
                 one_decimal(r.get("math_ops")), share, bits(r.get("param_bits") or ()),
                 bits(r.get("mult_bits") or ()))
        body.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    nonzero = [r.get("nonzero_params") for r in layers]
    total = ("total", "", format_count(sum(r.get("params") or 0 for r in layers)),
             format_count(None if None in nonzero else sum(nonzero)),
             one_decimal(sum(r.get("param_storage") or 0 for r in layers)),
             one_decimal(sum(r.get("math_ops") or 0 for r in layers)), "100.0%" if math_ops else "-",
             bits(sorted({b for r in layers for b in r.get("param_bits") or ()})),
             bits(sorted({b for r in layers for b in r.get("mult_bits") or ()})))
    body.append('<tr class="ms-total ms-total-last">' + "".join(f"<td>{escape(str(c))}</td>" for c in total)
                + "</tr>")
    return (f"<h2>Per layer ({len(layers)} layers that store values or compute; storage and operations in "
            f"32-bit equivalents, per example)</h2>"
            f'<div class="ms-scroll"><table class="ms-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def detailed_results_html(row: Mapping[str, Any], paths: Mapping[str, str] | None = None) -> str:
    """The page for one leaderboard ``row`` (as :func:`~micronet_score.organizer.scoring.score_entry` returns it,
    ideally with ``details``). ``paths`` maps absolute folders to the names shown instead (``{"/…/res": "res"}``).
    """
    paths = dict(paths or {})
    name = str(row.get("name") or "submission")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>MicroNet score: {escape(name)}</title><style>{CSS}{_PAGE_CSS}</style></head>"
            f"<body class='ms'><h1>MicroNet score</h1>"
            f"<p class='ms-sub'>{escape(name)}</p>{_banner(row, paths)}{_facts(row, paths)}"
            f"{_layer_table(row.get('layers') or (), row.get('math_ops'))}</body></html>\n")
