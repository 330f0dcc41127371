"""Issue 12's file items: compressed and lying zips, expanded tensors, non-regular files, limits, odd paths.

Each test builds its reproducer in a temporary directory; the expected numbers are written next to them.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile

import pytest
import torch
from torch import nn

from micronet_score.cli import main
from micronet_score.errors import CheckpointError, MicronetError
from micronet_score.io import load_weights, read_state_dict, scan_checkpoint


def _rezip(src, dst, *, compress=zipfile.ZIP_DEFLATED, replace=None):
    """Copy a torch.save zip record by record, compressed, optionally replacing some records' bytes."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=compress) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new
            zout.writestr(info.filename, data, compress_type=compress)


def test_deflated_zip_is_counted_from_inflated_values(tmp_path):
    w = torch.zeros(4, 8)
    w[0, :3] = 1.0
    w[2, 5:] = -2.0
    w[3, 0], w[3, 7] = 0.5, 7.0  # 3 + 3 + 2 = 8 non-zeros of 32
    torch.save({"w": w}, tmp_path / "plain.pt")
    _rezip(tmp_path / "plain.pt", tmp_path / "deflated.pt")
    with zipfile.ZipFile(tmp_path / "deflated.pt") as z:  # the reproducer really is compressed
        assert any(i.compress_type == zipfile.ZIP_DEFLATED and i.filename.endswith("data/0") for i in z.infolist())
    stats = scan_checkpoint(tmp_path / "deflated.pt")
    assert (stats["w"].numel, stats["w"].nonzeros) == (32, 8)
    assert torch.equal(read_state_dict(tmp_path / "deflated.pt")["w"], w)


def test_storage_declared_larger_than_its_record_is_refused(tmp_path):
    torch.save({"w": torch.arange(1.0, 5.0)}, tmp_path / "w.pt")  # 4 float32: 16 bytes declared
    _rezip(tmp_path / "w.pt", tmp_path / "short.pt", compress=zipfile.ZIP_STORED,
           replace={"data/0": struct.pack("<2f", 1.0, 2.0)})  # the record holds 8
    for read in (scan_checkpoint, read_state_dict):
        with pytest.raises(CheckpointError, match="declared as 16 bytes but its record holds 8"):
            read(tmp_path / "short.pt")


def test_expanded_tensor_of_2_62_elements_is_counted_over_its_storage(tmp_path):
    huge = torch.tensor([[3.0]]).expand(2**31, 2**31)  # one stored value, 2**62 logical ones
    torch.save({"weight": huge, "bias": torch.tensor([0.0])}, tmp_path / "expanded.pt")
    assert os.path.getsize(tmp_path / "expanded.pt") < 4096
    stats = scan_checkpoint(tmp_path / "expanded.pt")  # returns at once
    assert (stats["weight"].numel, stats["weight"].nonzeros, stats["weight"].nbytes) == (2**62, 2**62, 4)
    assert (stats.numel, stats.nonzeros) == (2**62 + 1, 2**62)
    with pytest.raises(CheckpointError, match=r"1 shape mismatch.*\(2147483648, 2147483648\) vs model \(1, 1\)"):
        load_weights(nn.Linear(1, 1), tmp_path / "expanded.pt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_named_pipe_is_refused_before_open_blocks(tmp_path):
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)  # open() for reading would wait for a writer forever
    for call in (lambda: scan_checkpoint(fifo), lambda: load_weights(nn.Linear(1, 1), fifo)):
        with pytest.raises(CheckpointError, match="is a named pipe, not a regular file"):
            call()


def test_directory_says_it_is_a_directory(tmp_path, capsys):
    for call in (lambda: scan_checkpoint(tmp_path), lambda: load_weights(nn.Linear(1, 1), tmp_path)):
        with pytest.raises(CheckpointError, match="is a directory"):
            call()
    assert main(["scan", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="a character device")
def test_device_is_refused():
    with pytest.raises(CheckpointError, match="is a device"):
        scan_checkpoint("/dev/zero")


def test_zip_bomb_is_refused_before_inflating_and_the_limit_can_be_raised(tmp_path, capsys):
    """64 MiB of zeros deflate to about 64 KiB; with a 16 MiB limit nothing is inflated."""
    torch.save({"w": torch.zeros(16 << 20)}, tmp_path / "zeros.pt")  # 16 Mi float32 = 64 MiB
    _rezip(tmp_path / "zeros.pt", tmp_path / "bomb.pt")
    (tmp_path / "zeros.pt").unlink()
    assert os.path.getsize(tmp_path / "bomb.pt") < 1 << 20
    limit = 16 << 20
    for read in (scan_checkpoint, read_state_dict):
        with pytest.raises(CheckpointError, match=r"would inflate to 67,10\d,\d{3} bytes, over the limit of "
                                                  r"16,777,216 \(max_inflated_bytes\)"):  # 64 MiB + metadata
            read(tmp_path / "bomb.pt", max_inflated_bytes=limit)
    assert main(["scan", str(tmp_path / "bomb.pt"), "--max-inflated-mb", "16"]) == 1
    assert "--max-inflated-mb" in capsys.readouterr().err
    stats = scan_checkpoint(tmp_path / "bomb.pt", max_inflated_bytes=80 << 20)  # raised: read, all zeros
    assert (stats.numel, stats.nonzeros) == (16 << 20, 0)


def test_safetensors_header_over_the_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big_header.safetensors"
    with open(path, "wb") as f:  # a 400 MB header, as a sparse file: nothing is written but its first bytes
        f.write(struct.pack("<Q", 400_000_000) + b"{")
        f.truncate(8 + 400_000_000)
    with pytest.raises(CheckpointError, match="header declares 400,000,000 bytes, over the limit of 104,857,600"):
        scan_checkpoint(path)
    with pytest.raises(CheckpointError, match="over the limit"):
        read_state_dict(path)
    header = json.dumps({"__metadata__": {"pad": "x" * 4096},
                         "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    small = tmp_path / "small.safetensors"
    small.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<f", 2.0))
    with pytest.raises(CheckpointError, match="max_header_bytes"):
        scan_checkpoint(small, max_header_bytes=1024)
    assert scan_checkpoint(small).nonzeros == 1


@pytest.mark.parametrize("kind", ["int key", "meta"])
def test_scan_refuses_entries_without_names_or_values(tmp_path, kind):
    state = {0: torch.ones(2)} if kind == "int key" else {"w": torch.empty(2, device="meta")}
    torch.save(state, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="not a name" if kind == "int key" else "meta tensor") as info:
        scan_checkpoint(tmp_path / "odd.pt")
    assert isinstance(info.value, MicronetError) and "\n" not in str(info.value)


def test_checkpoint_at_a_path_that_is_not_utf8_loads(tmp_path):
    raw = os.path.join(os.fsencode(tmp_path), b"w\xff\xfe.pt")
    src = nn.Linear(2, 3)
    try:
        with open(raw, "wb") as f:
            torch.save(src.state_dict(), f)
    except OSError:
        pytest.skip("the file system refuses names that are not UTF-8")
    for path in (raw, os.fsdecode(raw)):  # bytes, and str with surrogate escapes
        assert torch.equal(load_weights(nn.Linear(2, 3), path).weight, src.weight)
        assert scan_checkpoint(path).numel == 9
    with pytest.raises(CheckpointError, match=r"w\\xff\\xfe.pt does not match"):
        load_weights(nn.Linear(3, 3), raw)  # the name shown with escapes, printable anywhere


def test_no_terminal_escape_codes_in_messages(tmp_path):
    torch.save({"\x1b[2Jweight": torch.zeros(1, 1), "bias": torch.zeros(1)}, tmp_path / "ansi.pt")
    with pytest.raises(CheckpointError) as info:
        load_weights(nn.Linear(1, 1), tmp_path / "ansi.pt")
    assert "\x1b" not in str(info.value) and "[2Jweight" in str(info.value)


def test_zip_bomb_that_understates_its_size_is_refused_without_inflating(tmp_path):
    """The bomb's directory claims its 64 MiB record inflates to 1,024 bytes: the pickle's declared storage
    size (64 MiB) is checked against that claim, so nothing is inflated."""
    torch.save({"w": torch.zeros(16 << 20)}, tmp_path / "zeros.pt")
    _rezip(tmp_path / "zeros.pt", tmp_path / "bomb.pt")
    data = bytearray((tmp_path / "bomb.pt").read_bytes())
    with zipfile.ZipFile(tmp_path / "bomb.pt") as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data/0"))
    struct.pack_into("<I", data, info.header_offset + 22, 1024)  # local header: uncompressed size
    central = data.find(b"PK\x01\x02")
    while central != -1:  # central directory entries: uncompressed size at +24, name length at +28
        length = struct.unpack_from("<H", data, central + 28)[0]
        if bytes(data[central + 46:central + 46 + length]).endswith(b"data/0"):
            struct.pack_into("<I", data, central + 24, 1024)
        central = data.find(b"PK\x01\x02", central + 4)
    (tmp_path / "lying.pt").write_bytes(bytes(data))
    for read in (scan_checkpoint, read_state_dict):
        with pytest.raises(CheckpointError, match="declared as 67,108,864 bytes but its record holds 1,024"):
            read(tmp_path / "lying.pt")
