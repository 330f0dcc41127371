"""``micronet-score --version`` prints the package's version."""

import re
from pathlib import Path

import pytest

from micronet_score.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_version() -> str:
    # read from pyproject.toml, the version pip installs, not from the module the CLI prints
    match = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    assert match, "pyproject.toml has no version line"
    return match[1]


def test_version_flag_prints_the_package_version_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"micronet-score {_pyproject_version()}\n"

