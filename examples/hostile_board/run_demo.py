"""Run the hostile board as an organizer would, interrupted once, resumed, then with one entry's code changed.

    python examples/hostile_board/run_demo.py FOLDER [--interrupt-after 40] [--small] [--no-make]

1. ``make_board.py FOLDER`` (unless ``--no-make``);
2. ``micronet-score leaderboard challenge.toml --out board --workers 2 --entry-timeout 60 --entry-memory 4GiB``,
   sent SIGINT (as Ctrl-C does, to its process group) after ``--interrupt-after`` seconds: it must exit 130;
3. the same command again: it resumes (only what the first run did not finish is scored);
4. the bug in ``subs/centroid/stale.py`` fixed, the same command once more: only that entry is scored again;
5. every row checked against what it must be (:func:`check_rows`), the table and the three wall times printed
   and written to ``board/demo.json``.

Exit status 0 when every row is right.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_board  # noqa: E402  (the script next to this file)

COMMAND = ("leaderboard", "challenge.toml", "--out", "board", "--workers", "2", "--entry-timeout", "60",
           "--entry-memory", "4GiB")
TIMEOUT_S, MEMORY = 60, "4 GiB"

#: Entry name -> a piece of the error its row must hold (these entries must fail, alone).
ERRORS = {
    "input-chooser": "input",
    "worker-killer": "exit status 3",
    "system-exit": "SystemExit",
    "hang": f"timed out after {TIMEOUT_S} s",
    "alloc-20gib": f"ran out of memory ({MEMORY}",
    "segfault": "signal 11",
}


def run_board(folder: Path, command: Sequence[str] = COMMAND, interrupt_after: float | None = None,
              python: str = sys.executable) -> tuple[int, float, str]:
    """Run ``micronet-score`` with ``command`` in ``folder``; (exit status, wall seconds, stderr and the
    "scored N new entries" line)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])])}
    started = time.monotonic()
    proc = subprocess.Popen([python, "-m", "micronet_score.cli", *command], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=interrupt_after)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal sends it to the whole process group
        out, err = proc.communicate(timeout=120)
    scored = [line for line in out.splitlines() if line.startswith("scored ")]
    return proc.returncode, time.monotonic() - started, "\n".join([err.strip(), *(s.split(";")[0] for s in scored)]).strip()


def check_rows(rows: Sequence[Mapping[str, Any]], expected: Mapping[str, Mapping[str, Any]],
               fixed: bool) -> dict[str, str]:
    """Entry name -> what is wrong with its row ("" when right). ``expected``: ``make_board``'s expected.json
    (the participants' own in-process scores); ``fixed``: whether stale.py has been fixed."""
    problems: dict[str, str] = {}
    for row in rows:
        name = str(row["name"])
        wrong = []
        if name in ERRORS:
            if row.get("score") is not None or ERRORS[name] not in str(row.get("error")):
                wrong.append(f"expected a failure with {ERRORS[name]!r}, got score {row.get('score')} / "
                             f"error {row.get('error')!r}")
        elif name == "label-reader":
            honest = expected["label-reader without the labels"]
            if row.get("error") is None and row.get("correct", 0) > honest["correct"]:
                wrong.append(f"read the labels: {row['correct']}/{row['total']} where its model without them "
                             f"gets {honest['correct']}/{honest['total']}")
        else:
            want = expected[f"{name} fixed" if name == "centroid-stale" and fixed else name]
            if row.get("error") is not None:
                wrong.append(f"innocent entry failed: {row['error']}")
            else:
                for key in ("correct", "total", "param_term", "ops_term", "score"):
                    got, ref = row.get(key), want[key]
                    if got is None or abs(float(got) - float(ref)) > 1e-12 * max(1.0, abs(float(ref))):
                        wrong.append(f"{key} {got} != {ref} (its own ms.score)")
        problems[name] = "; ".join(wrong)
    return problems


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.6f}"


def table(rows: Sequence[Mapping[str, Any]], problems: Mapping[str, str]) -> str:
    """The rows as a Markdown table, with the check's verdict."""
    lines = ["| rank | entry | correct | param_term | ops_term | score | error | check |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ok = "right" if not problems.get(str(row["name"])) else f"WRONG: {problems[str(row['name'])]}"
        correct = "" if row.get("correct") is None else f"{row['correct']}/{row['total']}"
        error = str(row.get("error") or "").replace("|", "\\|")
        lines.append(f"| {row.get('rank') or ''} | {row['name']} | {correct} | {_fmt(row.get('param_term'))} | "
                     f"{_fmt(row.get('ops_term'))} | {_fmt(row.get('score'))} | {error} | {ok} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--interrupt-after", type=float, default=40.0, help="seconds before the first run's SIGINT")
    parser.add_argument("--small", action="store_true", help="the test's five entries (make_board --small)")
    parser.add_argument("--no-make", action="store_true", help="use the board already in FOLDER")
    parser.add_argument("--rules", choices=(make_board.RULES, "operators"), default=make_board.RULES,
                        help="make_board.py's rule set: imta-2025, or CIFAR-10 counted operator by operator")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not args.no_make:
        make_board.make_board(folder, small=args.small, rules=args.rules)
    expected = json.loads((folder / "expected.json").read_text())
    runs = []
    code, wall, err = run_board(folder, interrupt_after=args.interrupt_after)
    runs.append({"run": "interrupted", "exit": code, "wall_s": round(wall, 1), "stderr": err})
    code, wall, err = run_board(folder)
    runs.append({"run": "resumed", "exit": code, "wall_s": round(wall, 1), "stderr": err})
    stale = folder / "subs" / "centroid" / "stale.py"
    if stale.exists():
        stale.write_text(make_board.STALE_FIXED.lstrip())
        code, wall, err = run_board(folder)
        runs.append({"run": "stale code fixed", "exit": code, "wall_s": round(wall, 1), "stderr": err})
    rows = json.loads((folder / "board" / "leaderboard.json").read_text())
    problems = check_rows(rows, expected, fixed=stale.exists())
    for run in runs:
        print(f"{run['run']}: exit {run['exit']}, {run['wall_s']} s" + (f"; stderr: {run['stderr']}"
                                                                         if run["stderr"] else ""))
    print(table(rows, problems))
    (folder / "board" / "demo.json").write_text(json.dumps({"runs": runs, "problems": problems}, indent=1))
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
