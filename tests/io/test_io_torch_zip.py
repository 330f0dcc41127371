"""Issue 20: a torch zip with two records of one name is refused.

zipfile's directory (and so the size check) keeps the last record of a name while torch reads the first: a short
``data/0`` followed by the real one passed the check, and the memory-mapped load read the bytes after the short
record (the zip's own metadata) as weights.
"""

from __future__ import annotations

import warnings
import zipfile

import pytest
import torch
from torch import nn

from micronet_score.cli import main
from micronet_score.errors import CheckpointError
from micronet_score.io import load_weights, read_state_dict, scan_checkpoint


def _duplicated(tmp_path, suffix: str, first: bytes):
    torch.manual_seed(0)
    torch.save(nn.Linear(2, 3).state_dict(), tmp_path / "src.pt")  # data/0: weight, 6 floats = 24 bytes
    path = tmp_path / "dup.pt"
    with zipfile.ZipFile(tmp_path / "src.pt") as zin, zipfile.ZipFile(path, "w") as zout, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name"
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith(suffix):
                zout.writestr(info.filename, first)  # torch reads this one
            zout.writestr(info.filename, data)  # zipfile's directory keeps this one
    return path


@pytest.mark.parametrize(("suffix", "first"), [("data/0", b"\0" * 4), ("data.pkl", b"\x80\x02N.")])
def test_duplicate_record_names_are_refused_everywhere(tmp_path, capsys, suffix, first):
    path = _duplicated(tmp_path, suffix, first)
    for read in (lambda: load_weights(nn.Linear(2, 3), path), lambda: scan_checkpoint(path),
                 lambda: read_state_dict(path)):
        with pytest.raises(CheckpointError, match=f"two records named 'src/{suffix}'") as caught:
            read()
        assert "\n" not in str(caught.value)
    assert main(["scan", str(path)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_the_same_file_without_the_duplicate_loads(tmp_path):
    path = _duplicated(tmp_path, "no such record", b"")
    torch.manual_seed(0)
    want = nn.Linear(2, 3)
    got = load_weights(nn.Linear(2, 3), path)
    assert torch.equal(got.weight, want.weight) and torch.equal(got.bias, want.bias)
