"""A scoring program for Codabench / CodaLab competitions.

Codabench runs it with ``INPUT_DIR`` holding ``res/`` (the participant's upload: a ``save_submission`` folder or a
``submission.toml`` with ``model``/``weights``/``args``/``compress`` or ``program``, paths inside ``res/``) and ``ref/`` (the organizer's
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
from micronet_score.organizer.submissions import SUBMISSION_FILE, check_submission, model_list, read_toml
from micronet_score.render.codabench import detailed_results_html


def run_codabench(input_dir: str | Path, output_dir: str | Path, *, device: str = "cpu",
                  entry_timeout: float | None = None, entry_memory: int | None = None) -> dict[str, Any]:
    """Score the submission in ``input_dir/res`` against ``input_dir/ref/challenge.toml``; returns the row.

    The submission is checked as :func:`~micronet_score.organizer.submissions.check_submission` says (no
    ``input``/``preprocessing``/``rules``, weights inside ``res/``, Python code only with ``allow_code = true``
    in ``challenge.toml``, then in a child process without the reference data); it is counted on one example
    of the test data.

    Raises :class:`SubmissionError` when the submission cannot be scored (after writing the HTML with the reason).
    """
    res, ref = Path(input_dir) / "res", Path(input_dir) / "ref"
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    challenge = read_toml(ref / "challenge.toml")
    if "rules" not in challenge or not isinstance(challenge.get("data"), dict) or "path" not in challenge["data"]:
        raise SubmissionError(f"{ref / 'challenge.toml'}: needs rules = \"...\" and a [data] table with path")
    allow = challenge.get("allow_code", False)
    if not isinstance(allow, bool):
        raise SubmissionError(f"{ref / 'challenge.toml'}: allow_code must be true or false")
    try:
        found = check_submission(read_toml(res / SUBMISSION_FILE), res, allow_code=allow,
                                 models=model_list(challenge, "challenge.toml"))
    except SubmissionError as exc:  # the participant sees it: no path of this machine
        reason = redact(str(exc), roots(base=res.resolve().parent, out=out))
        (out / "detailed_results.html").write_text(_detail_html({"error": reason}), encoding="utf-8")
        raise SubmissionError(f"submission not scored: {reason}") from None
    entry = {"name": "submission", **found}
    rules = str(challenge["rules"])
    if rules.endswith(".toml") and not Path(rules).is_absolute():
        rules = str(ref / rules)
    data = dict(challenge["data"])
    data["path"] = str((ref / str(data["path"])).resolve())
    row = score_entry({"entry": entry, "base": str(res.resolve()), "rules": rules, "data": data,
                       "batch_size": int(challenge.get("batch_size", 256)), "device": device, "details": True,
                       "allow_code": allow, "entry_timeout": challenge.get("entry_timeout") or entry_timeout,
                       "entry_memory": int(float(challenge["entry_memory"]) * (1 << 30))
                       if challenge.get("entry_memory") else entry_memory})
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
