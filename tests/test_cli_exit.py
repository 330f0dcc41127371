"""Scripts can trust the exit status: 0 scored (and passing), 3 below the threshold, 2 usage error, 1 failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from micronet_score.cli import main

RULES = ["--rules", "micronet-2019-cifar100"]  # threshold 80%


TINY = "import torch\n\ndef build():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())\n"


@pytest.fixture
def tiny(tmp_path):
    """A one-conv model file: counting it is instant."""
    (tmp_path / "tiny.py").write_text(TINY)
    return [f"{tmp_path / 'tiny.py'}:build", "--input", "1,3,8,8"]


def _one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("accuracy, code", [("8000/10000", 0), ("0.8", 0), ("7999/10000", 3), ("0.7999", 3),
                                            ("9,010/10,000", 0)])
def test_threshold_decides_0_or_3(accuracy, code, tiny, capsys):
    assert main(["count", *tiny, *RULES, "--accuracy", accuracy]) == code
    out = capsys.readouterr().out
    assert ("FAILS" in out) == (code == 3)


@pytest.mark.parametrize("argv, message", [
    (["count", "no-such-model"], "neither a zoo model"),
    (["count", "densenet-seed", "--rules", "no-such-rules"], "unknown rule set 'no-such-rules'"),
    (["count", "densenet-seed", "--accuracy", "0.9"], "--accuracy needs --rules"),
    (["count", "densenet-seed", *RULES, "--accuracy", "10001/10000"], "correct <= total"),
    (["eval", "densenet-seed", "--rules", "nope"], "unknown rule set 'nope'"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in _one_line_error(capsys)


def test_unparsable_accuracy_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["count", "densenet-seed", *RULES, "--accuracy", "most"])
    assert exc.value.code == 2 and "not an accuracy" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["count", "densenet-seed", "--weights", "no/such/file.pt"], "does not exist"),
    (["count", "resnet18-cifar", "--input", "1,3"], "forward pass failed"),
    (["eval", "densenet-seed", "--data", "no/such/data.npz"], "does not exist"),
    (["leaderboard", "no/such/manifest.toml"], "does not exist"),
])
def test_other_failures_exit_1(argv, message, capsys):
    assert main(argv) == 1
    assert message in _one_line_error(capsys)


def test_eval_below_threshold_exits_3(tmp_path, tiny, capsys):
    import numpy as np

    # identical images get identical predictions: at most 1 of 7 distinct labels is right
    np.savez(tmp_path / "t.npz", x=np.zeros((7, 3, 8, 8), np.uint8), y=np.arange(7))
    code = main(["eval", *tiny, "--data", str(tmp_path / "t.npz"), "--dataset", "npz", *RULES])
    assert code == 3
    out = capsys.readouterr().out
    assert "of 7 (" in out and "FAILS" in out


def test_json_is_complete(tmp_path, capsys):
    import torch

    import micronet_score as ms

    torch.save(ms.models.build("densenet-seed").state_dict(), tmp_path / "w.pt")
    argv = ["count", "densenet-seed", "--weights", str(tmp_path / "w.pt"), "--arg", "seed=0", *RULES,
            "--accuracy", "9010/10000", "--json", "--shapes-only"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "densenet-seed" and data["args"] == {"seed": 0}
    assert data["weights"]["path"] == str((tmp_path / "w.pt").resolve()) and len(data["weights"]["sha256"]) == 64
    assert data["rules"] == "micronet-2019-cifar100" and data["convention"] == data["report"]["convention"]
    assert data["version"] == ms.__version__
    assert data["accuracy"] == {"correct": 9010, "total": 10000, "fraction": 0.901}
    assert data["score"]["passed"] is True and data["report"]["params"] > 0


def test_json_into_head_ends_quietly():
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        f"{sys.executable} -m micronet_score.cli count densenet-seed --json | head -n 2",
        shell=True, capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert proc.stdout.startswith("{") and proc.stderr == ""


def test_statuses_as_a_process():
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "micronet_score.cli", "eval", "densenet-seed", "--rules", "nope"],
                          capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "unknown rule set 'nope'" in proc.stderr
