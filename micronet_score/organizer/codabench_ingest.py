"""The ingestion program of a Codabench competition: ``micronet-score codabench ingest INPUT_DATA SUBMISSION OUTPUT``.

Codabench (v2) runs it in the prediction step with the input data (``/app/input_data``: no labels), the
participant's upload (``/app/ingested_program``) and an output folder (``/app/output``) that becomes the scoring
program's ``res/``; the reference data (the labels) is only mounted in the scoring step.

The challenge's settings for this step are ``INPUT_DATA/challenge.toml`` (the organizer's input data; a
``[data]`` table there is refused: the ingestion program is never told where the test data is):
``allow_code``, ``models``, ``input`` (the shape of one test example, e.g. ``[1, 3, 32, 32]``; default: the
rule set's ``input_size`` when ``rules`` is given), ``entry_timeout`` (seconds) and ``entry_memory`` (a size
such as ``"8GiB"``, or a number of GiB).

- A weights-only or ``.pt2`` submission is checked (:func:`check_submission`, the challenge's model list) and
  copied through unchanged (``submission.toml`` and the file it names).
- A code submission (``model = "net.py:build"``) is exported only where ``allow_code = true``: in a child process
  (:func:`~micronet_score.organizer.entry_code.export_in_child`: no reference data, time and memory limits); the
  output is ``model.pt2`` and ``submission.toml`` with ``program = "model.pt2"``.

An upload holding ``metadata.yaml``/``metadata`` (a command Codabench itself runs in the prediction step) is
refused. Whatever lands in ``OUTPUT`` is checked again by the scoring program, which never runs a submission's code.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from micronet_score.organizer.errors import SubmissionError
from micronet_score.organizer.submissions import (
    PROGRAM_FILE,
    SUBMISSION_FILE,
    check_submission,
    is_code,
    model_list,
    read_toml,
    to_toml,
)

CHALLENGE_FILE = "challenge.toml"


def submission_root(folder: Path) -> Path:
    """The folder holding ``submission.toml``: ``folder`` itself, or its only subfolder (never a symbolic link)
    when the participant zipped a folder rather than its files."""
    if (folder / SUBMISSION_FILE).exists() or not folder.is_dir():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
    if len(subs) == 1 and not subs[0].is_symlink() and (subs[0] / SUBMISSION_FILE).is_file():
        return subs[0]
    return folder


def ingestion_settings(input_data: Path) -> dict[str, Any]:
    """``INPUT_DATA/challenge.toml`` checked: what the ingestion program may know (never the test data)."""
    where = f"input data's {CHALLENGE_FILE}"
    challenge = read_toml(input_data / CHALLENGE_FILE)
    if "data" in challenge:
        raise SubmissionError(f"{where}: has a [data] table; the ingestion program is never told where the test "
                              "data is: keep [data] in the reference data's challenge.toml only")
    allow = challenge.get("allow_code", False)
    if not isinstance(allow, bool):
        raise SubmissionError(f"{where}: allow_code must be true or false")
    return challenge


def counting_shape(challenge: Mapping[str, Any]) -> tuple[int, ...]:
    """The shape a code submission is exported on: ``input``, else the rule set's ``input_size``."""
    given = challenge.get("input")
    if given is None and challenge.get("rules"):
        from micronet_score import rules as rules_mod

        given = rules_mod.get(str(challenge["rules"])).input_size
    if not isinstance(given, (list, tuple)) or not given or \
            not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in given):
        raise SubmissionError(f"input data's {CHALLENGE_FILE}: input = [1, 3, 32, 32] (the shape of one test "
                              f"example) is needed to export a code submission; got {given!r}")
    return tuple(int(s) for s in given)


def _limits(challenge: Mapping[str, Any], timeout: float | None, memory: int | None) -> tuple[float, int | None]:
    from micronet_score.organizer.entry_code import DEFAULT_TIMEOUT_S
    from micronet_score.organizer.limits import parse_memory

    seconds = float(challenge.get("entry_timeout") or timeout or DEFAULT_TIMEOUT_S)
    if "entry_memory" in challenge:
        value = challenge["entry_memory"]
        # a number is GiB (as the reference challenge.toml's), a string a size such as "8GiB" or "none"
        memory = int(float(value) * (1 << 30)) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else parse_memory(value)
    return seconds, memory


def run_ingestion(input_data: str | Path, submission: str | Path, output: str | Path, *,
                  entry_timeout: float | None = None, entry_memory: int | None = 8 << 30) -> dict[str, Any]:
    """Check the upload in ``submission`` and write what the scoring program scores to ``output``; returns
    ``{"kind": "weights" | "program" | "code", "notes": [...]}``. Raises :class:`SubmissionError` (one line) when
    the upload is refused or its code fails."""
    from micronet_score.organizer.entry_code import export_in_child

    challenge = ingestion_settings(Path(input_data))
    base = submission_root(Path(submission))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    command = next((name for name in ("metadata.yaml", "metadata") if os.path.lexists(base / name)), None)
    if command:  # Codabench runs an upload's command in the prediction step: this competition takes none
        raise SubmissionError(f"the upload holds {command!r}, a command for Codabench to run; this competition "
                              "takes weights, an exported program or model code in submission.toml: drop it")
    entry = check_submission(read_toml(base / SUBMISSION_FILE), base, allow_code=challenge.get("allow_code", False),
                             models=model_list(challenge, CHALLENGE_FILE))
    if "program" in entry or not is_code(str(entry["model"])):  # nothing to run: copied through unchanged
        shutil.copyfile(base / SUBMISSION_FILE, out / SUBMISSION_FILE)
        rel = str(entry.get("program") or entry["weights"])
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile((base / rel).resolve(), target)
        return {"kind": "program" if "program" in entry else "weights", "notes": []}
    shape = counting_shape(challenge)
    timeout, memory = _limits(challenge, entry_timeout, entry_memory)
    recipe = {k: entry[k] for k in ("model", "weights", "args", "compress") if entry.get(k) is not None}
    _, notes, _ = export_in_child(recipe, base, shape, timeout=timeout, memory=memory, keep=out / PROGRAM_FILE)
    (out / SUBMISSION_FILE).write_text(to_toml({"program": PROGRAM_FILE}), encoding="utf-8")
    return {"kind": "code", "notes": list(notes)}
