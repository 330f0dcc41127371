"""A scoring program for Codabench / CodaLab competitions.

Codabench runs it with ``INPUT_DIR`` holding ``res/`` (the participant's upload: a ``save_submission`` folder or a
``submission.toml`` with one manifest entry's keys, paths relative to ``res/``) and ``ref/`` (the organizer's
``challenge.toml``: the manifest's ``rules`` and ``[data]``, paths relative to ``ref/``). It writes
``OUTPUT_DIR/scores.json`` and ``OUTPUT_DIR/detailed_results.html``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from micronet_score.organizer.errors import SubmissionError
from micronet_score.organizer.redact import redact, roots
from micronet_score.organizer.scoring import score_entry
from micronet_score.organizer.submissions import SUBMISSION_FILE, read_toml
from micronet_score.render.codabench import detailed_results_html


def run_codabench(input_dir: str | Path, output_dir: str | Path, *, device: str = "cpu") -> dict[str, Any]:
    """Score the submission in ``input_dir/res`` against ``input_dir/ref/challenge.toml``; returns the row.

    Raises :class:`SubmissionError` when the submission cannot be scored (after writing the HTML with the reason).
    """
    res, ref = Path(input_dir) / "res", Path(input_dir) / "ref"
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    challenge = read_toml(ref / "challenge.toml")
    if "rules" not in challenge or not isinstance(challenge.get("data"), dict) or "path" not in challenge["data"]:
        raise SubmissionError(f"{ref / 'challenge.toml'}: needs rules = \"...\" and a [data] table with path")
    entry = dict(read_toml(res / SUBMISSION_FILE))
    entry.setdefault("name", "submission")
    rules = str(challenge["rules"])
    if rules.endswith(".toml") and not Path(rules).is_absolute():
        rules = str(ref / rules)
    data = dict(challenge["data"])
    data["path"] = str((ref / str(data["path"])).resolve())
    row = score_entry({"entry": entry, "base": str(res.resolve()), "rules": rules, "data": data,
                       "batch_size": int(challenge.get("batch_size", 256)), "device": device, "details": True})
    public = redact(row, roots(base=res.resolve().parent, data=data["path"], out=out))  # what the participant sees
    shown = {str(folder): folder.name for folder in (res, ref, res.resolve(), ref.resolve())}
    (out / "detailed_results.html").write_text(_detail_html(public, shown), encoding="utf-8")
    if row.get("error"):
        raise SubmissionError(f"submission not scored: {public['error']}")
    scores = {k: row[k] for k in ("score", "accuracy", "param_term", "ops_term")}
    (out / "scores.json").write_text(json.dumps(scores) + "\n", encoding="utf-8")
    return row


def _detail_html(row: dict[str, Any], paths: dict[str, str] | None = None) -> str:
    return detailed_results_html(row, paths)
