"""The scoring program of a Codabench / CodaLab competition: ``micronet-score codabench score INPUT OUTPUT``.

Codabench runs it with ``INPUT_DIR`` holding ``res/`` (what is scored: the ingestion program's output, or, in a
competition without one, the participant's upload: a ``save_submission`` folder or a ``submission.toml`` with
``model``/``weights``/``args``/``compress`` or ``program``, paths inside ``res/``) and ``ref/`` (the organizer's
``challenge.toml``: the manifest's ``rules`` and ``[data]``, paths relative to ``ref/``). It writes
``OUTPUT_DIR/scores.json`` and ``OUTPUT_DIR/detailed_results.html``. It never runs a submission's code: a
``file.py:factory`` model is refused even where ``allow_code = true`` (the ingestion program,
:mod:`micronet_score.organizer.codabench_ingest`, exports such code to ``model.pt2`` first), and an exported
program is loaded by :func:`micronet_score.io.exported.load_exported`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from micronet_score.organizer.codabench_ingest import submission_root
from micronet_score.organizer.errors import SubmissionError
from micronet_score.organizer.redact import redact, roots
from micronet_score.organizer.scoring import score_entry
from micronet_score.organizer.submissions import (
    SUBMISSION_FILE,
    check_submission,
    is_code,
    model_list,
    read_toml,
)
from micronet_score.render.codabench import detailed_results_html


def run_codabench(input_dir: str | Path, output_dir: str | Path, *, device: str = "cpu",
                  entry_timeout: float | None = None, entry_memory: int | None = None) -> dict[str, Any]:
    """Score the submission in ``input_dir/res`` against ``input_dir/ref/challenge.toml``; returns the row.

    The submission is checked as :func:`~micronet_score.organizer.submissions.check_submission` says (no
    ``input``/``preprocessing``/``rules``, weights inside ``res/``, a model from the challenge's list); Python
    code is refused here whatever ``allow_code`` says (it must have been exported by the ingestion program). It
    is counted on one example of the test data. ``entry_timeout``/``entry_memory`` are accepted for the old
    command line and unused: no code runs here.

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
    top, res = res, submission_root(res)  # a zipped folder: its only subfolder
    try:
        if not (res / SUBMISSION_FILE).exists():
            raise SubmissionError(f"res/ holds no {SUBMISSION_FILE}: upload a zip with {SUBMISSION_FILE} at its "
                                  "root (where the competition has an ingestion program, see its log)")
        found = check_submission(read_toml(res / SUBMISSION_FILE), res, allow_code=allow,
                                 models=model_list(challenge, "challenge.toml"))
        if "program" not in found and is_code(str(found["model"])):
            raise SubmissionError(f"model = {found['model']!r} is Python code: the scoring program never runs a "
                                  "submission's code; where the challenge sets allow_code = true, the ingestion "
                                  "program (micronet-score codabench ingest) exports it to model.pt2 first")
    except SubmissionError as exc:  # the participant sees it: no path of this machine
        reason = redact(str(exc), roots(base=top.resolve().parent, out=out))
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
                       "allow_code": False})  # never: code was refused above
    public = redact(row, roots(base=top.resolve().parent, data=data["path"], out=out))  # what the participant sees
    shown = {str(folder): folder.name for folder in (top, ref, top.resolve(), ref.resolve())}
    (out / "detailed_results.html").write_text(_detail_html(public, shown), encoding="utf-8")
    if row.get("error"):
        raise SubmissionError(f"submission not scored: {public['error']}")
    scores = {k: row[k] for k in ("score", "accuracy", "param_term", "ops_term")}
    (out / "scores.json").write_text(json.dumps(scores) + "\n", encoding="utf-8")
    return row


def _detail_html(row: dict[str, Any], paths: dict[str, str] | None = None) -> str:
    return detailed_results_html(row, paths)
