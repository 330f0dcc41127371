"""The command line: a thin layer over the API, with one-line errors."""

import json
import sys
import textwrap

import pytest

from micronet_score.cli import main


def test_count_zoo_model_with_rules(capsys):
    assert main(["count", "resnet18-cifar", "--rules", "micronet-2019-cifar100", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "layer1" in out and "total" in out and "micronet-2019-cifar100: score" in out
    # 555,980,288 mults per example for the CIFAR ResNet-18 (555,422,720 conv/linear MACs + ReLU, pool, adds)
    assert "555,980,288" in out


def test_count_json(capsys):
    assert main(["count", "resnet18-cifar", "--json", "--rules", "micronet-2019-cifar100"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["report"]["params"] == 11_169_162 and data["score"]["rules"] == "micronet-2019-cifar100"


def test_count_factory_from_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "mynet.py").write_text(textwrap.dedent("""
        import torch
        def build(width=4):
            return torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.ReLU())
        def broken():
            raise RuntimeError("no weights here")
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["count", "mynet:build", "--input", "1,3,8,8", "--arg", "width=2"]) == 0
    assert "1,944" in capsys.readouterr().out  # 27 * 2 * 36 conv mults
    assert main(["count", "mynet.py:build", "--input", "1x3x8x8"]) == 0
    assert main(["count", "mynet:broken", "--input", "1,3,8,8"]) == 2
    assert "RuntimeError: no weights here" in capsys.readouterr().err
    sys.modules.pop("mynet", None)


def test_a_token_model_of_ones_own_counts_on_its_example_inputs(tmp_path, capsys, monkeypatch):
    (tmp_path / "tokennet.py").write_text(textwrap.dedent("""
        import torch
        class Bag(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bag = torch.nn.EmbeddingBag(100, 8, mode="sum")
            def forward(self, ids):
                return self.bag(ids)
        class WithExamples(Bag):
            def example_inputs(self):
                return torch.randint(100, (3, 5), generator=torch.Generator().manual_seed(0))
        def plain():
            return Bag()
        def with_examples():
            return WithExamples()
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["count", "tokennet:with_examples", "--strict"]) == 0
    out = capsys.readouterr().out
    assert "32 adds per example" in out  # 3 bags of 5 rows of 8 values: (5 - 1) * 8 adds each
    # a shape gives random floats: the error says what the input should be
    assert main(["count", "tokennet:plain", "--input", "3,5"]) == 1
    err = capsys.readouterr().err
    assert "token ids is floating point" in err and "example_inputs()" in err and err.count("\n") == 1
    sys.modules.pop("tokennet", None)


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["count", "no.such.module:f", "--input", "1,3"], 2, "cannot import module 'no.such.module'"),
        (["count", "resnet18-cifar", "--input", "1,3,x"], 2, "is not a shape"),
        (["count", "resnet18-cifar", "--input", "1,0,32,32"], 2, "positive"),
        (["count", "not-a-model"], 2, "neither a zoo model"),
        (["count", "resnet18-cifar", "--input", "1,3"], 1, "forward pass failed in module 'conv1'"),
        (["count", "resnet18-cifar", "--rules", "nope"], 2, "unknown rule set 'nope'"),
    ],
)
def test_errors_are_one_line(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_models_and_rules_listing(capsys):
    assert main(["models"]) == 0
    assert "efficientnet-b0" in capsys.readouterr().out
    assert main(["rules"]) == 0
    assert "micronet-2019-imagenet" in capsys.readouterr().out


def test_accuracy_is_checked_before_counting(capsys):
    assert main(["count", "resnet18-cifar", "--rules", "micronet-2019-cifar100", "--accuracy", "90"]) == 2
    assert "fraction" in capsys.readouterr().err
    assert main(["count", "resnet18-cifar", "--accuracy", "0.9"]) == 2
    assert main(["count", "resnet18-cifar", "--rules", "micronet-2019-cifar100", "--accuracy", "0.8"]) == 0
    assert "passes the threshold" in capsys.readouterr().out
