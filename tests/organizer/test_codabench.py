"""The Codabench ingestion and scoring programs on directories laid out as Codabench lays them out (a code
submission goes through ``codabench ingest``, which exports it; ``codabench INPUT OUTPUT`` is the scoring program's
old spelling)."""

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


def _ingest(tmp_path, upload, inp):
    """The ingestion program (allow_code, the 8x8 input) writes what is scored into ``inp/res``."""
    data = tmp_path / "input_data"
    data.mkdir(exist_ok=True)
    (data / "challenge.toml").write_text('allow_code = true\ninput = [1, 3, 8, 8]\n')
    shutil.rmtree(inp / "res", ignore_errors=True)
    return main(["codabench", "ingest", str(data), str(upload), str(inp / "res")])


def test_codabench_scores_a_saved_submission(tmp_path, challenge, capsys):
    inp = _layout(tmp_path, challenge)
    model = build_model("net.py:const", {"cls": 1}, challenge)
    shutil.copy(challenge / "net.py", tmp_path / "net.py")
    save_submission(model, tmp_path / "upload", model_name="net.py:const", args={"cls": 1})
    shutil.copy(challenge / "net.py", tmp_path / "upload" / "net.py")
    assert _ingest(tmp_path, tmp_path / "upload", inp) == 0
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
    upload = tmp_path / "upload"
    upload.mkdir()
    shutil.copy(challenge / "net.py", upload / "net.py")
    shutil.copy(challenge / "subs" / "const3.pt", upload / "w.pt")
    (upload / "submission.toml").write_text('model = "net.py:const"\nweights = "w.pt"\nargs = { cls = 3 }\n')
    assert _ingest(tmp_path, upload, inp) == 0
    assert main(["codabench", "score", str(inp), str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["accuracy"] == 5 / 50
    capsys.readouterr()
    (upload / "w.pt").write_bytes(b"not a checkpoint")
    assert _ingest(tmp_path, upload, inp) == 1  # the export fails: nothing for the scoring program
    err = capsys.readouterr().err
    assert "w.pt" in err and err.count("\n") == 1 and not (inp / "res" / "submission.toml").exists()
    assert main(["codabench", "score", str(inp), str(tmp_path / "out2")]) == 1
    err = capsys.readouterr().err
    assert "not scored" in err and "holds no submission.toml" in err and err.count("\n") == 1
    page = (tmp_path / "out2" / "detailed_results.html").read_text()
    assert "Not scored" in page and "submission.toml" in page and str(tmp_path) not in page
