"""The hostile board demo (examples/hostile_board), small: one honest entry and four hostile ones, each row checked.

The full demo (12 entries, interrupted and resumed, stale code fixed between runs) is
``python examples/hostile_board/run_demo.py FOLDER``; its table is in examples/hostile_board/README.md.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hostile_board"
COMMAND = ("leaderboard", "challenge.toml", "--out", "board", "--workers", "2", "--entry-timeout", "60",
           "--entry-memory", "4GiB")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # run_demo imports make_board by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo():
    return _load("make_board"), _load("run_demo")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the segfault's signal and RLIMIT_AS are Linux's")
def test_small_hostile_board_gives_each_entry_its_row(demo, tmp_path):
    make_board, run_demo = demo
    make_board.make_board(tmp_path, images=40, small=True)
    code, _, err = run_demo.run_board(tmp_path, COMMAND)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads((tmp_path / "board" / "leaderboard.json").read_text())}
    assert sorted(rows) == sorted(make_board.SMALL)
    honest = rows["honest-dense"]
    assert honest["error"] is None and honest["rank"] == 1 and honest["total"] == 40
    # densenet-seed at 10 classes has 205,186 parameters, all 32-bit: 205,186 x 32/32 / 5.6e6
    assert honest["param_term"] == pytest.approx(205_186 / 5.6e6, rel=1e-12)
    expected = json.loads((tmp_path / "expected.json").read_text())["honest-dense"]
    assert (honest["correct"], honest["ops_term"]) == (expected["correct"], pytest.approx(expected["ops_term"]))
    for name in ("input-chooser", "worker-killer", "system-exit", "segfault"):
        assert rows[name]["score"] is None and rows[name]["rank"] is None, name
    assert rows["input-chooser"]["error"] == (
        "subs/input-chooser/submission.toml: key 'input' is not accepted in a submission (accepted: model, "
        "weights, args, compress, program); the organizer sets the counting input, preprocessing and rules")
    assert rows["worker-killer"]["error"] == ("the model's code process ended without an exported program "
                                              "(exit status 3)")
    assert rows["system-exit"]["error"] == "the model's code raised SystemExit(0)"
    assert rows["segfault"]["error"] == "the model's code process ended without an exported program (signal 11)"
    assert run_demo.check_rows(list(rows.values()), json.loads((tmp_path / "expected.json").read_text()),
                               fixed=False) == dict.fromkeys(rows, "")
    # every row is the entry's own result: stored, so the same command scores nothing again
    code, _, err = run_demo.run_board(tmp_path, COMMAND)
    assert code == 0 and "scored 0 new entries" in err


def _one_code_entry(make_board, folder: Path, rules: str, name: str) -> tuple[dict, dict]:
    """A board of ``name`` alone (``centroid-stale``, fixed; or ``label-reader``): its row and the expectations."""
    import micronet_score as ms

    make_board.make_board(folder, images=40, train_steps=0, rules=rules)
    (folder / "subs" / "centroid" / "stale.py").write_text(make_board.STALE_FIXED.lstrip())
    text = (folder / "challenge.toml").read_text()
    head, *entries = text.split("\n[[entry]]\n")
    (folder / "one.toml").write_text(head + "".join("\n[[entry]]\n" + e for e in entries
                                                    if e.startswith(f'name = "{name}"')))
    board = ms.leaderboard(folder / "one.toml", folder / "board", entry_timeout=120, entry_memory="4GiB")
    return board.rows[0], json.loads((folder / "expected.json").read_text())


@pytest.mark.xfail(strict=True, reason="known bug: a file.py entry (allow_code) is exported, and a leaf-module "
                   "convention (imta-2023, imta-2025) refuses to count an exported program, so every code entry "
                   "of a CIFAR-10 course board fails")
def test_code_entry_is_scored_under_imta_2025(demo, tmp_path):
    make_board, _ = demo
    row, expected = _one_code_entry(make_board, tmp_path, "imta-2025", "centroid-stale")
    # 40 parameters (a 3 -> 10 linear layer) at 32 bits: 40 / 5.6e6
    assert row["error"] is None and row["param_term"] == pytest.approx(40 / 5.6e6)
    assert row["correct"] == expected["centroid-stale fixed"]["correct"]


@pytest.mark.xfail(strict=True, reason="known hole (docs/organizers.md, what remains possible): the code child "
                   "runs as the organizer's user and finds the test set next to its own folder")
def test_label_reader_gets_no_more_than_its_model_without_the_labels(demo, tmp_path):
    make_board, _ = demo
    row, expected = _one_code_entry(make_board, tmp_path, "operators", "label-reader")
    assert row["correct"] <= expected["label-reader without the labels"]["correct"], row
