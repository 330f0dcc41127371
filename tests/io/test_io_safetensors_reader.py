"""Issue 20: malformed safetensors headers are one CheckpointError line in every reader.

Each case is a file built byte by byte: an 8-byte little-endian header length, the JSON header, the data. The
readers are ``load_weights``, ``scan_checkpoint`` and ``micronet-score scan``; none may raise anything else.
"""

from __future__ import annotations

import json
import struct

import pytest
from torch import nn

from micronet_score.cli import main
from micronet_score.errors import CheckpointError
from micronet_score.io import load_weights, scan_checkpoint

_GOOD = {"weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]},
         "bias": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}


def _file(tmp_path, header: bytes | str | dict, data: bytes = b"\0" * 8, name: str = "bad.safetensors"):
    raw = header if isinstance(header, bytes) else (header if isinstance(header, str) else json.dumps(header))
    raw = raw.encode() if isinstance(raw, str) else raw
    path = tmp_path / name
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _with(**entry) -> dict:
    header = json.loads(json.dumps(_GOOD))
    header["weight"].update(entry)
    return header


CASES = {
    # 100,000 nested arrays: json.loads raised RecursionError
    "nested 100,000 deep": '{"weight": ' + "[" * 100_000 + "]" * 100_000 + "}",
    # 1e400 is a float infinity to json; int(inf) raised OverflowError
    "offset 1e400": '{"weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 1e400]}}',
    "offset NaN": '{"weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, NaN]}}',
    "negative offsets": _with(data_offsets=[-4, 0]),
    "begin after end": _with(data_offsets=[4, 0]),
    "fractional offset": _with(data_offsets=[0, 4.5]),
    "offsets as a string": _with(data_offsets="04"),
    "three offsets": _with(data_offsets=[0, 4, 8]),
    "boolean offset": _with(data_offsets=[False, True]),
    "offset beyond the file": _with(data_offsets=[0, 4096]),
    "entry not an object": {"weight": [0, 4]},
    "header a list": '[{"weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}}]',
    "header a number": "12345678",
    "duplicate names": '{"weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}, '
                       '"weight": {"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]}, '
                       '"bias": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
    "negative shape": _with(shape=[-1, -4]),
    "shape not a list": _with(shape="11"),
    "unknown dtype": _with(dtype="F33"),
    "size disagrees with shape": _with(shape=[3, 1]),
    "metadata not strings": {**_GOOD, "__metadata__": {"k": {"deep": 1}}},
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_header_is_one_checkpoint_error_line_everywhere(tmp_path, capsys, case):
    path = _file(tmp_path, CASES[case])
    with pytest.raises(CheckpointError) as loading:
        load_weights(nn.Linear(1, 1), path)
    with pytest.raises(CheckpointError) as scanning:
        scan_checkpoint(path)
    for caught in (loading, scanning):
        assert "\n" not in str(caught.value) and "bad.safetensors" in str(caught.value)
    assert main(["scan", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_header_longer_than_the_file_is_refused(tmp_path, capsys):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**64 - 1) + b'{"w": 1}')  # announces 18 EB, 8 bytes follow
    with pytest.raises(CheckpointError, match="truncated"):
        scan_checkpoint(path)
    with pytest.raises(CheckpointError, match="truncated"):
        load_weights(nn.Linear(1, 1), path)
    assert main(["scan", str(path)]) == 1


def test_the_well_formed_file_these_cases_start_from_loads(tmp_path):
    import torch

    path = _file(tmp_path, _GOOD, struct.pack("<ff", 3.0, 0.0), name="good.safetensors")
    model = load_weights(nn.Linear(1, 1), path)
    assert model.weight.item() == 3.0 and model.bias.item() == 0.0
    stats = scan_checkpoint(path)
    assert (stats.numel, stats.nonzeros) == (2, 1)  # weight 3.0, bias 0.0
    assert torch.equal(model.bias, torch.zeros(1))
