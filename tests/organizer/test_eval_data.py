"""`micronet-score eval` and `ms.score` say when the data is not the rule set's task, read the format from the
content, refuse to score without an accuracy, and say which preprocessing they used."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest

import micronet_score as ms
from micronet_score.cli import main
from micronet_score.rules import RuleSet
from micronet_score.rules.task import DatasetMismatchWarning

# always predicts the last class: zero weights, bias 0, 1, ..., classes - 1
NET = ("import torch\n\ndef build(classes=10):\n"
       "    net = torch.nn.Sequential(torch.nn.Conv2d(3, classes, 32), torch.nn.Flatten())\n"
       "    with torch.no_grad():\n"
       "        net[0].weight.zero_()\n"
       "        net[0].bias.copy_(torch.arange(classes, dtype=torch.float32))\n"
       "    return net\n")


@pytest.fixture
def net(tmp_path):
    (tmp_path / "net.py").write_text(NET)
    return f"{tmp_path / 'net.py'}:build"


def _cifar10(folder, n=4):
    folder.mkdir()
    batch = {b"labels": [9, 0, 1, 2][:n], b"data": np.zeros((n, 3072), np.uint8)}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    return folder


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_cifar10_data_under_cifar100_rules_is_refused_with_a_way_out(tmp_path, net, capsys):
    data = _cifar10(tmp_path / "cifar-10-batches-py")
    argv = ["eval", net, "--data", str(data), "--rules", "micronet-2019-cifar100"]
    assert main(argv) == 2
    err = _err(capsys)
    assert "scores CIFAR-100 (100 classes) but the data is CIFAR-10 (10 classes)" in err
    assert "--allow-dataset-mismatch" in err
    assert main([*argv, "--allow-dataset-mismatch"]) == 3  # scored: 1 of 4 right (the label 9) fails
    out = capsys.readouterr().out
    assert "warning: rule set 'micronet-2019-cifar100' scores CIFAR-100" in out and "1 of 4" in out


def test_npz_needs_no_dataset_option_even_under_a_cifar_rule_set(tmp_path, net, capsys):
    # the rule set's data_format (cifar100) used to be taken as the format: "has no 'test' file"
    np.savez(tmp_path / "t.npz", x=np.zeros((3, 3, 32, 32), np.uint8), y=np.array([0, 99, 2]))
    assert main(["eval", net, "--arg", "classes=100", "--data", str(tmp_path / "t.npz"),
                 "--rules", "micronet-2019-cifar100"]) == 3
    out = capsys.readouterr().out
    assert "1 of 3" in out  # the net always predicts 99
    assert "preprocessing: scale 1/255, mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762) " \
           "(rule set micronet-2019-cifar100)" in out


def test_no_score_without_data_or_accuracy(net, capsys):
    assert main(["eval", net, "--input", "1,3,32,32", "--rules", "micronet-2019-cifar100"]) == 2
    assert "pass --data (the test set) or --accuracy" in _err(capsys)
    assert main(["eval", net, "--input", "1,3,32,32", "--rules", "micronet-2019-cifar100",
                 "--accuracy", "8000/10000"]) == 0
    assert "passes" in capsys.readouterr().out.lower()


def test_json_records_the_preprocessing_and_without_rules_says_none_applied(tmp_path, net, capsys):
    np.savez(tmp_path / "t.npz", x=np.zeros((2, 3, 32, 32), np.uint8), y=np.array([0, 1]))
    assert main(["eval", net, "--data", str(tmp_path / "t.npz"), "--input", "1,3,32,32", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["preprocessing"]["scale"] == 1 / 255 and payload["preprocessing"]["mean"] is None
    assert payload["preprocessing"]["from"].startswith("no rule set")
    assert payload["rules"] is None and payload["note"] == "no rule set applied (pass --rules to score)"
    assert payload["data"] == {"path": str(tmp_path / "t.npz"), "format": "npz", "classes": None, "examples": 2}
    assert main(["eval", net, "--data", str(tmp_path / "t.npz"), "--input", "1,3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "rules: none applied" in out and "preprocessing: scale 1/255 (no rule set" in out


def test_score_warns_when_told_a_dataset_of_another_task():
    report = ms.count(ms.models.build("densenet-seed"), (1, 3, 32, 32), shapes_only=True)
    with pytest.warns(DatasetMismatchWarning, match=r"scores CIFAR-100 \(100 classes\) but the data is CIFAR-10"):
        ms.score(report, rules="micronet-2019-cifar100", accuracy=0.9, dataset="CIFAR-10")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ms.score(report, rules="micronet-2019-cifar100", accuracy=0.9, dataset="cifar100")
        ms.score(report, rules="micronet-2019-cifar100", accuracy=0.9)  # not told: nothing to say
        # a custom rule set naming no well-known dataset is never checked
        custom = RuleSet("my-course", 5.6e6, 2.8e8, threshold=0.5)
        ms.score(report, rules=custom, accuracy=0.9, dataset="CIFAR-10")
    with pytest.warns(DatasetMismatchWarning, match="data is of 10 classes"):
        ms.score(report, rules="micronet-2019-cifar100", accuracy=0.9, dataset=10)
