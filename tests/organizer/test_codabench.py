"""The Codabench scoring program on a directory laid out as Codabench lays it out."""

from __future__ import annotations

import json
import re
import shutil

from micronet_score.cli import main
from micronet_score.organizer import save_submission
from micronet_score.organizer.builders import build_model


def _layout(tmp_path, challenge):
    inp = tmp_path / "input"
    (inp / "ref").mkdir(parents=True)
    shutil.copy(challenge / "test.npz", inp / "ref" / "test.npz")
    (inp / "ref" / "challenge.toml").write_text('rules = "micronet-2019-cifar100"\nallow_code = true\n'
                                                '[data]\npath = "test.npz"\ndataset = "npz"\n')
    return inp


def test_codabench_scores_a_saved_submission(tmp_path, challenge, capsys):
    inp = _layout(tmp_path, challenge)
    model = build_model("net.py:const", {"cls": 1}, challenge)
    shutil.copy(challenge / "net.py", tmp_path / "net.py")
    save_submission(model, inp / "res", model_name="net.py:const", args={"cls": 1})
    shutil.copy(challenge / "net.py", inp / "res" / "net.py")
    assert main(["codabench", str(inp), str(tmp_path / "output")]) == 0
    scores = json.loads((tmp_path / "output" / "scores.json").read_text())
    assert set(scores) == {"score", "accuracy", "param_term", "ops_term"}
    assert scores["accuracy"] == 15 / 50  # const(1) is right on the 15 ones
    page = (tmp_path / "output" / "detailed_results.html").read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", page, flags=re.S))
    assert "15 / 50 correct (30.00%)" in text and "ms-fail" in page  # 30% is under the 80% threshold
    assert "None" not in text and "{" not in text and str(tmp_path) not in page  # no empty rows, reprs, paths
    assert "Per layer (4 layers" in text  # the conv, the ReLU, the pooling and the linear layer


def test_codabench_submission_toml_and_a_broken_upload(tmp_path, challenge, capsys):
    inp = _layout(tmp_path, challenge)
    (inp / "res").mkdir()
    shutil.copy(challenge / "net.py", inp / "res" / "net.py")
    shutil.copy(challenge / "subs" / "const3.pt", inp / "res" / "w.pt")
    (inp / "res" / "submission.toml").write_text('model = "net.py:const"\nweights = "w.pt"\nargs = { cls = 3 }\n')
    assert main(["codabench", str(inp), str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["accuracy"] == 5 / 50
    (inp / "res" / "w.pt").write_bytes(b"not a checkpoint")
    assert main(["codabench", str(inp), str(tmp_path / "out2")]) == 1
    err = capsys.readouterr().err
    assert "not scored" in err and err.count("\n") == 1
    page = (tmp_path / "out2" / "detailed_results.html").read_text()
    assert "Not scored" in page and "res/w.pt" in page and str(tmp_path) not in page
