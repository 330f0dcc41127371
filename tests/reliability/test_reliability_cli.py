"""The command line given bad input: exit status 2 (usage mistakes) or 1 (the count itself failed), one
``micronet-score: error: ...`` line on stderr, and nothing on stdout (no half-printed table or JSON)."""

from __future__ import annotations

import textwrap

import pytest

from micronet_score.cli import main

FACTORIES = '''
import torch
from torch import nn


def good(width=4):
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU())


def boom(**kwargs):
    raise RuntimeError("factory exploded")


def not_a_module():
    return 42


class Fails(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(3, 3)

    def forward(self, x):
        raise ValueError("forward exploded")


def failing():
    return Fails()


class Determinant(nn.Module):
    def forward(self, x):
        return torch.linalg.det(x.view(-1, 2, 2, 2)).abs()  # (an FFT here until the spec priced FFTs)


def determinant():
    return Determinant()


not_callable = 3
'''


@pytest.fixture
def factories(tmp_path):
    path = tmp_path / "factories.py"
    path.write_text(textwrap.dedent(FACTORIES))
    (tmp_path / "broken.py").write_text("raise ImportError('broken on import')\n")
    return path


def _fails(capsys, argv: list[str], status: int, *needles: str) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == status, (code, out, err)
    assert out == "", "nothing may be printed to stdout when the command fails"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("micronet-score: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_a_good_factory_works(capsys, factories):
    assert main(["count", f"{factories}:good", "--input", "1,3,8,8", "--arg", "width=2"]) == 0
    out, err = capsys.readouterr()
    assert "Conv2d" in out and err == ""


def test_nonexistent_module(capsys):
    _fails(capsys, ["count", "no_such_package_xyz.nets:build", "--input", "1,3,8,8"], 2,
           "cannot import module 'no_such_package_xyz.nets'")


def test_nonexistent_file(capsys, tmp_path):
    _fails(capsys, ["count", f"{tmp_path}/missing.py:build", "--input", "1,3,8,8"], 2, "no file")


def test_nonexistent_factory_in_an_existing_file(capsys, factories):
    _fails(capsys, ["count", f"{factories}:nope", "--input", "1,3,8,8"], 2, "no callable 'nope'")
    _fails(capsys, ["count", f"{factories}:not_callable", "--input", "1,3,8,8"], 2, "no callable")


def test_file_that_fails_to_import(capsys, factories):
    _fails(capsys, ["count", f"{factories.parent / 'broken.py'}:build", "--input", "1,3"], 2,
           "ImportError", "broken on import")


def test_factory_that_raises(capsys, factories):
    _fails(capsys, ["count", f"{factories}:boom", "--input", "1,3,8,8"], 2, "RuntimeError", "factory exploded")


def test_factory_returning_something_else(capsys, factories):
    _fails(capsys, ["count", f"{factories}:not_a_module", "--input", "1,3,8,8"], 2, "not a torch.nn.Module")


def test_unknown_model_name(capsys):
    _fails(capsys, ["count", "nope", "--input", "1,3,8,8"], 2, "'nope'", "micronet-score models")


@pytest.mark.parametrize("shape", ["1,3,a", "1,,3", "0,3,8,8", "-1,3", "", "1.5,3", "1;3", "[1, 3]"])
def test_malformed_input_shape(capsys, factories, shape):
    _fails(capsys, ["count", f"{factories}:good", f"--input={shape}"], 2, "--input")


def test_missing_input_for_a_factory(capsys, factories):
    _fails(capsys, ["count", f"{factories}:good"], 2, "needs --input")


@pytest.mark.parametrize("arg, needle", [("width", "name=value"), ("1x=2", "name=value"),
                                         ("nope=1", "nope")])
def test_malformed_or_unknown_builder_arguments(capsys, arg, needle):
    _fails(capsys, ["count", "resnet18-cifar", "--arg", arg], 2, needle)


def test_unknown_rule_set(capsys, factories):
    # a usage error, like an unknown model (issue 11): exit 2
    _fails(capsys, ["count", f"{factories}:good", "--input", "1,3,8,8", "--rules", "nope"], 2,
           "unknown rule set 'nope'")


def test_input_shape_the_model_cannot_take(capsys, factories):
    _fails(capsys, ["count", f"{factories}:good", "--input", "1,5,8,8"], 1, "module '0' (Conv2d)", "(1, 5, 8, 8)")


def test_forward_that_raises(capsys, factories):
    _fails(capsys, ["count", f"{factories}:failing", "--input", "1,3", "--json"], 1, "ValueError: forward exploded")


def test_strict_mode_with_an_operator_without_cost(capsys, factories):
    _fails(capsys, ["count", f"{factories}:determinant", "--input", "1,8", "--strict"], 1, "aten._linalg_det")
    assert main(["count", f"{factories}:determinant", "--input", "1,8"]) == 0  # listed, not fatal, when not strict
    out, _ = capsys.readouterr()
    assert "aten._linalg_det" in out


def test_bad_options_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["count", "resnet18-cifar", "--bits", "eight"])
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "--bits" in err


@pytest.mark.parametrize("extra, code, needle", [
    (["--weights", "/nonexistent/weights.pt"], 1, "does not exist"),
    (["--rules", "/nonexistent/rules.toml"], 2, "does not exist"),  # unknown rules, like a missing model file
    # a malformed value is a usage error (2), refused before the model is even built
    (["--rules", "micronet-2019-cifar100", "--accuracy", "1.5", "--json"], 2, "accuracy"),
])
def test_bad_files_and_values_fail_before_anything_is_printed(capsys, factories, extra, code, needle):
    _fails(capsys, ["count", f"{factories}:good", "--input", "1,3,8,8", *extra], code, needle)
