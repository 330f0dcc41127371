"""scan_checkpoint: non-zeros of small generated checkpoints known by hand, chunking, and clear errors."""

from __future__ import annotations

import doctest
import json
import os
import struct
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from micronet_score.checkpoint import CheckpointError, CheckpointStats, scan_checkpoint
from micronet_score.errors import MicronetError
from micronet_score.io import scan as scan_module

safetensors_torch = pytest.importorskip("safetensors.torch")


def _tensors() -> dict[str, torch.Tensor]:
    """Tensors whose non-zeros are known by hand (written next to each)."""
    w = torch.zeros(6, 5)
    w[0, 0] = 1.0
    w[2, 1:4] = torch.tensor([2.0, -3.0, 4.0])
    w[5, 4] = -0.0  # a negative zero is a zero
    return {
        "conv.weight": w,  # 4 non-zeros of 30
        "conv.bias": torch.tensor([0.0, float("nan"), float("inf"), -1.0]),  # NaN and Inf are non-zeros: 3 of 4
        "cube": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) % 5,  # zeros at 0,5,10,15,20: 19 of 24
        "half": torch.tensor([0.0, 1.5, -0.0, 0.25], dtype=torch.float16),  # 2 of 4
        "brain": torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.bfloat16),  # 1 of 4
        "codes": torch.tensor([0, -3, 7, 0, 0], dtype=torch.int8),  # 2 of 5
        "flags": torch.tensor([True, False, True]),  # 2 of 3
        "step": torch.tensor(7, dtype=torch.int64),  # a scalar: 1 of 1
        "empty": torch.zeros(0, 3),  # 0 of 0
    }


EXPECTED = {"conv.weight": (30, 4), "conv.bias": (4, 3), "cube": (24, 19), "half": (4, 2), "brain": (4, 1),
            "codes": (5, 2), "flags": (3, 2), "step": (1, 1), "empty": (0, 0)}


def _check(stats: CheckpointStats, expected=EXPECTED) -> None:
    got = {t.name: (t.numel, t.nonzeros) for t in stats.tensors}
    assert got == expected
    assert (stats.numel, stats.nonzeros) == (sum(n for n, _ in expected.values()),
                                             sum(z for _, z in expected.values()))
    assert stats.zeros == stats.numel - stats.nonzeros
    assert stats.seconds >= 0 and stats.bytes_read > 0


@pytest.fixture
def tensors():
    return _tensors()


# ---------------------------------------------------------------------- counts known by hand
@pytest.mark.parametrize("chunk_bytes", [1, 7, 16, 64 << 20])
def test_safetensors_counts(tmp_path, tensors, chunk_bytes):
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(tensors, str(path))
    stats = scan_checkpoint(path, chunk_bytes=chunk_bytes)
    assert stats.format == "safetensors"
    _check(stats)
    assert stats["conv.weight"].shape == (6, 5) and stats["conv.weight"].dtype == "float32"
    assert stats["brain"].dtype == "bfloat16" and stats["step"].shape == ()
    assert stats.bytes_read == sum(t.nbytes for t in tensors.values())
    assert stats.file_bytes == os.path.getsize(path)


@pytest.mark.parametrize("chunk_bytes", [1, 7, 16, 64 << 20])
def test_torch_zip_counts(tmp_path, tensors, chunk_bytes):
    path = tmp_path / "model.pt"
    torch.save(tensors, path)
    stats = scan_checkpoint(path, chunk_bytes=chunk_bytes)
    assert stats.format == "torch-zip" and stats.source_key is None
    _check(stats)
    assert [t.name for t in stats.tensors] == list(tensors)  # the state dict's order
    assert stats.bytes_read == sum(t.nbytes for t in tensors.values())


def test_special_values_every_float_dtype(tmp_path, tensors):
    """-0.0 is a zero, NaN and Inf are not, in every float dtype and both formats."""
    safetensors_torch.save_file(tensors, str(tmp_path / "m.safetensors"))
    torch.save(tensors, tmp_path / "m.pt")
    _check(scan_checkpoint(tmp_path / "m.safetensors"))
    _check(scan_checkpoint(tmp_path / "m.pt", chunk_bytes=8))
    special = torch.tensor([0.0, -0.0, float("nan"), float("-inf"), 1e-30, -2.0])  # 4 non-zeros
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        torch.save({"x": special.to(dtype)}, tmp_path / "s.pt")
        expected = int(torch.count_nonzero(special.to(dtype)))  # 1e-30 underflows to 0 in float16
        assert scan_checkpoint(tmp_path / "s.pt").nonzeros == expected == (3 if dtype == torch.float16 else 4)


@pytest.mark.parametrize("chunk_bytes", [64, 16 << 20])
def test_every_dtype_against_count_nonzero(tmp_path, chunk_bytes):
    """Chunks go through |sign(x)| summed (NaN chunks recounted by comparison): same as count_nonzero."""
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(1000, generator=gen)
    base[torch.rand(1000, generator=gen) < 0.5] = 0.0
    base[7], base[300], base[301], base[999] = float("nan"), -0.0, float("inf"), float("-inf")
    sd = {str(dtype).removeprefix("torch."): base.to(dtype) for dtype in (torch.float16, torch.bfloat16,
                                                                             torch.float32, torch.float64)}
    ints = (base.nan_to_num(0.0, 0.0, 0.0) * 100).round()
    ints[0], ints[1] = -32768, 32767
    for dtype in (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64):
        sd[str(dtype).removeprefix("torch.")] = ints.to(dtype)
    sd["complex64"] = torch.complex(base.nan_to_num(0.0), torch.zeros(1000))
    torch.save(sd, tmp_path / "dtypes.pt")
    stats = scan_checkpoint(tmp_path / "dtypes.pt", chunk_bytes=chunk_bytes)
    for name, t in sd.items():
        assert stats[name].nonzeros == int(torch.count_nonzero(t)), name


def test_same_counts_both_formats_and_chunk_sizes(tmp_path):
    gen = torch.Generator().manual_seed(0)
    big = {"a": torch.randn(37, 53, generator=gen), "b": torch.randn(3, 5, 7, 11, generator=gen)}
    for t in big.values():
        t[t.abs() < 0.7] = 0.0
    expected = {k: (v.numel(), int((v != 0).sum())) for k, v in big.items()}
    safetensors_torch.save_file(big, str(tmp_path / "x.safetensors"))
    torch.save(big, tmp_path / "x.pt")
    for name in ("x.safetensors", "x.pt"):
        for chunk in (4, 100, 1 << 20):  # one element, part of a row, everything
            _check(scan_checkpoint(tmp_path / name, chunk_bytes=chunk), expected)


def test_nested_state_dict_and_model_keys(tmp_path, tensors):
    torch.save({"epoch": 3, "state_dict": tensors, "optimizer": {"lr": 0.1}}, tmp_path / "lightning.ckpt")
    stats = scan_checkpoint(tmp_path / "lightning.ckpt")
    assert stats.source_key == "state_dict"
    _check(stats)
    torch.save({"model": tensors, "args": ["--lr", "0.1"]}, tmp_path / "m.pth")
    stats = scan_checkpoint(tmp_path / "m.pth")
    assert stats.source_key == "model"
    _check(stats)


def test_non_contiguous_and_tied_tensors(tmp_path):
    base = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])
    emb = torch.tensor([[1.0, 0.0], [0.0, 0.0], [5.0, 6.0]])
    sd = {"t": base.t(), "emb": emb, "head": emb}  # a transposed view (3 non-zeros) and a tied weight
    torch.save(sd, tmp_path / "tied.pt")
    for chunk in (4, 1 << 20):
        stats = scan_checkpoint(tmp_path / "tied.pt", chunk_bytes=chunk)
        assert stats["t"].nonzeros == 3 and stats["t"].shape == (3, 2)
        assert stats["head"].alias_of == "emb" and stats["head"].nonzeros == 3
        assert (stats.numel, stats.nonzeros) == (12, 6)  # the tied copy counts once
        assert stats.bytes_read == 12 * 4


def test_sparse_and_quantized_tensors(tmp_path):
    sparse = torch.tensor([[0.0, 1.0], [2.0, 0.0]]).to_sparse()  # 2 of 4
    with warnings.catch_warnings():  # torch may warn (once per process) that quantized tensors are deprecated
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(torch.tensor([0.0, 1.0, 2.0, 0.0]), 0.1, 3, torch.qint8)  # 2 of 4
    torch.save({"sparse": sparse, "q": q}, tmp_path / "sq.pt")
    stats = scan_checkpoint(tmp_path / "sq.pt")
    assert {t.name: (t.numel, t.nonzeros) for t in stats.tensors} == {"sparse": (4, 2), "q": (4, 2)}


def test_float8_and_unsigned(tmp_path):
    f8 = torch.tensor([0.0, -0.0, 1.0, 2.0]).to(torch.float8_e4m3fn)  # count_nonzero has no float8 kernel
    u16 = torch.tensor([0, 3, 65535], dtype=torch.uint16)
    safetensors_torch.save_file({"f8": f8, "u16": u16}, str(tmp_path / "f8.safetensors"))
    stats = scan_checkpoint(tmp_path / "f8.safetensors", chunk_bytes=1)
    assert {t.name: (t.numel, t.nonzeros) for t in stats.tensors} == {"f8": (4, 2), "u16": (3, 2)}


def test_table_and_doctest(tmp_path, tensors):
    torch.save(tensors, tmp_path / "m.pt")
    text = scan_checkpoint(tmp_path / "m.pt").table()
    assert "conv.weight" in text and "total" in text and "GB/s" in text
    assert doctest.testmod(scan_module).failed == 0


# ---------------------------------------------------------------------- bad files
def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint") as info:
        scan_checkpoint(tmp_path / "absent.pt")
    assert isinstance(info.value, CheckpointError)
    with pytest.raises(CheckpointError, match="is a directory"):
        scan_checkpoint(tmp_path)


@pytest.mark.parametrize("content", [b"", b"abc", b"hello, this is a text file\n" * 10, b"\x00" * 64])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a checkpoint|truncated safetensors") as info:
        scan_checkpoint(path)
    assert isinstance(info.value, MicronetError) and isinstance(info.value, ValueError)


def test_truncated_safetensors(tmp_path, tensors):
    path = tmp_path / "m.safetensors"
    safetensors_torch.save_file(tensors, str(path))
    data = path.read_bytes()
    for cut in (len(data) - 5, len(data) // 2, 20):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated"):
            scan_checkpoint(path)


def test_corrupt_safetensors_header(tmp_path):
    path = tmp_path / "bad.safetensors"
    header = b"{not json at all}"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        scan_checkpoint(path)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 4)  # 4 of the 8 data bytes
    with pytest.raises(CheckpointError, match="truncated"):
        scan_checkpoint(path)


def test_truncated_torch_zip(tmp_path, tensors):
    path = tmp_path / "m.pt"
    torch.save(tensors, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        scan_checkpoint(path)


def test_zip_that_is_not_a_torch_checkpoint(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="not written by torch.save"):
        scan_checkpoint(tmp_path / "a.zip")


def test_legacy_pickle_format(tmp_path, tensors):
    torch.save(tensors, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy"):
        scan_checkpoint(tmp_path / "old.pt")


def test_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        scan_checkpoint(tmp_path / "list.pt")
    torch.save({"w": torch.zeros(2), "epoch": 3}, tmp_path / "mixed.pt")
    with pytest.raises(CheckpointError, match="not a state dict.*'epoch': int"):
        scan_checkpoint(tmp_path / "mixed.pt")


def test_unsafe_pickle_is_refused_and_never_executed(tmp_path):
    """A pickle whose custom class would run code on load: refused, naming the global it asks for, with no
    advice to turn weights_only off and no terminal escape codes."""
    marker = tmp_path / "executed"
    script = textwrap.dedent(f"""
        import os, torch

        class Payload:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))

        torch.save({{"w": torch.zeros(2), "evil": Payload()}}, {str(tmp_path / "evil.pt")!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as info:
        scan_checkpoint(tmp_path / "evil.pt")
    message = str(info.value)
    assert "posix.system" in message and "never runs code" in message and "--allow-global" in message
    assert "weights_only=False" not in message and "\x1b" not in message
    assert not marker.exists()


class Config:
    """A harmless class pickled next to a state dict (a stand-in for a training config)."""

    def __init__(self, lr: float = 0.1) -> None:
        self.lr = lr


def test_custom_class_refused_then_allowed_with_safe_globals(tmp_path, tensors):
    torch.save({"state_dict": tensors, "config": Config(0.5)}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="Config"):
        scan_checkpoint(tmp_path / "c.pt")
    stats = scan_checkpoint(tmp_path / "c.pt", allow_globals=[f"{__name__}.Config"])  # the way out named
    assert stats.source_key == "state_dict"
    _check(stats)


def test_safetensors_not_installed(tmp_path, tensors, monkeypatch):
    path = tmp_path / "m.safetensors"
    safetensors_torch.save_file(tensors, str(path))
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(CheckpointError, match="pip install safetensors"):
        scan_checkpoint(path)


def test_bad_chunk_size(tmp_path, tensors):
    torch.save(tensors, tmp_path / "m.pt")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="chunk_bytes"):
            scan_checkpoint(tmp_path / "m.pt", chunk_bytes=bad)


def test_cli_scan(tmp_path, tensors, capsys):
    from micronet_score.cli import main

    torch.save(tensors, tmp_path / "m.pt")
    (tmp_path / "bad.pt").write_bytes(b"nope")
    assert main(["scan", str(tmp_path / "m.pt")]) == 0
    assert "conv.weight" in capsys.readouterr().out
    assert main(["scan", str(tmp_path / "m.pt"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["numel"], data["nonzeros"]) == (75, 34)  # the sums of EXPECTED
    assert data["tensors"][0]["name"] == "conv.weight"
    assert main(["scan", str(tmp_path / "bad.pt")]) == 1
    err = capsys.readouterr().err
    assert "not a checkpoint" in err and err.count("\n") == 1


# ---------------------------------------------------------------------- memory stays low
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_peak_rss_stays_near_one_chunk(tmp_path, fmt):
    """A 192 MB checkpoint scanned with 8 MB chunks raises the peak resident set by far less than its size."""
    path = tmp_path / f"big.{fmt}"
    sd = {f"layer{i}.weight": torch.zeros(4096, 4096) for i in range(3)}  # 3 x 64 MiB
    for i, t in enumerate(sd.values()):
        t[i::5, ::3] = 1.0
    expected = sum(int((t != 0).sum()) for t in sd.values())
    if fmt == "pt":
        torch.save(sd, path)
    else:
        safetensors_torch.save_file(sd, str(path))
    del sd
    script = textwrap.dedent(f"""
        import torch
        from micronet_score.checkpoint import scan_checkpoint

        def kib(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1])

        scan_checkpoint({str(path)!r}, chunk_bytes=1 << 20)  # imports and first-use allocations
        before = kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
            f.write("5")
        stats = scan_checkpoint({str(path)!r}, chunk_bytes=8 << 20)
        print(stats.nonzeros, kib("VmHWM") - before)
    """)
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    nonzeros, peak_kib = (int(v) for v in out.split())
    assert nonzeros == expected
    assert peak_kib < 64 * 1024, f"peak RSS rose by {peak_kib / 1024:.0f} MiB for a 192 MiB file"
