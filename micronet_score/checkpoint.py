"""Count the values and non-zeros of a checkpoint file without loading it all into memory.

:func:`scan_checkpoint` reads a safetensors file tensor by tensor (``safetensors.safe_open``) or a PyTorch zip
checkpoint (``torch.save`` since 1.6) memory-mapped with ``torch.load(mmap=True, weights_only=True)``, and counts
the non-zeros of every tensor in chunks of at most ``chunk_bytes``. On Linux the pages of the file mapping are
handed back to the kernel after each chunk (``madvise(MADV_DONTNEED)`` on the read-only file mapping, which
the next access re-reads from the page cache), so the peak resident memory stays near one chunk plus the
interpreter whatever the checkpoint's size.

A value counts as non-zero when it compares unequal to zero: ``-0.0`` is a zero, NaN is not; a quantized value
is zero when it equals its zero point. Nothing in the file is ever executed: torch checkpoints are unpickled
with ``weights_only=True``, and a file that needs more is refused with the way out in the message.

>>> import tempfile, os, torch
>>> from micronet_score.checkpoint import scan_checkpoint
>>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
>>> torch.save({"w": torch.tensor([[0.0, 1.0], [2.0, 0.0]]), "b": torch.zeros(3)}, path)
>>> stats = scan_checkpoint(path)
>>> stats.numel, stats.nonzeros, stats["w"].nonzeros
(7, 2, 2)
"""

from __future__ import annotations

import ctypes
import json
import math
import mmap
import os
import pickle
import struct
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.errors import CheckpointError

__all__ = ["CheckpointError", "CheckpointStats", "TensorStats", "scan_checkpoint"]

DEFAULT_CHUNK_BYTES = 16 << 20
_ZIP_MAGIC = b"PK\x03\x04"
_STATE_DICT_KEYS = ("state_dict", "model")


class _Counts:
    """``zeros`` and ``density`` of anything with ``numel`` and ``nonzeros``."""

    numel: int
    nonzeros: int

    @property
    def zeros(self) -> int:
        return self.numel - self.nonzeros

    @property
    def density(self) -> float:
        """Non-zeros over values (1.0 for an empty tensor)."""
        return self.nonzeros / self.numel if self.numel else 1.0


@dataclass(frozen=True)
class TensorStats(_Counts):
    """One tensor of a checkpoint.

    ``alias_of``: the name of an earlier entry whose storage this one shares exactly (tied weights saved
    twice by ``torch.save``); such an entry is not read again and is left out of the totals.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    numel: int
    nonzeros: int
    nbytes: int
    alias_of: str | None = None


@dataclass(frozen=True)
class CheckpointStats(_Counts):
    """What :func:`scan_checkpoint` found: one :class:`TensorStats` per entry, in file order, and totals.

    ``numel``/``nonzeros``/``bytes_read`` sum the distinct tensors (aliases excluded); ``seconds`` is the wall
    time of the scan; ``source_key`` names the entry the state dict was found under (``"state_dict"`` or
    ``"model"``), ``None`` when the file is the state dict itself.
    """

    path: str
    format: str  # "safetensors" or "torch-zip"
    tensors: tuple[TensorStats, ...]
    numel: int
    nonzeros: int
    bytes_read: int
    file_bytes: int
    seconds: float
    source_key: str | None = None

    @property
    def sparsity(self) -> float:
        """Fraction of values that are zero."""
        return 1.0 - self.density

    @property
    def gb_per_s(self) -> float:
        """Tensor bytes read per second, in GB (10^9 bytes)."""
        return self.bytes_read / self.seconds / 1e9 if self.seconds > 0 else math.inf

    def __getitem__(self, name: str) -> TensorStats:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(f"{name!r} is not a tensor of {self.path}")

    def table(self) -> str:
        """A plain-text table: one row per tensor, then the totals."""
        rows = [("name", "shape", "dtype", "values", "non-zeros", "density")]
        for t in self.tensors:
            note = f" (= {t.alias_of})" if t.alias_of else ""
            rows.append((t.name + note, "x".join(map(str, t.shape)) or "scalar", t.dtype, f"{t.numel:,}",
                         f"{t.nonzeros:,}", f"{t.density:.4f}"))
        rows.append(("total", "", "", f"{self.numel:,}", f"{self.nonzeros:,}", f"{self.density:.4f}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        lines.append(f"{self.format}, {self.bytes_read / 1e9:.3f} GB of tensor data in {self.seconds:.3f} s "
                     f"({self.gb_per_s:.2f} GB/s)")
        return "\n".join(lines)


def scan_checkpoint(path: str | os.PathLike[str], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> CheckpointStats:
    """Count values and non-zeros of every tensor in the checkpoint at ``path``, chunk by chunk.

    The format is read from the file's first bytes: safetensors (needs the ``safetensors`` package) or a PyTorch
    zip checkpoint holding a state dict (a mapping of names to tensors) or a dict with one under ``"state_dict"``
    or ``"model"``. ``chunk_bytes`` bounds the tensor bytes read per step, and with them (on Linux) the pages of
    the file resident at once: the peak RSS stays about ``chunk_bytes`` above the interpreter's whatever the
    checkpoint's size. Counting runs on the calling thread. Raises :class:`CheckpointError` for
    anything else (not a checkpoint, truncated, legacy pickle format, objects other than tensors, classes that
    a weights-only load refuses) and :class:`FileNotFoundError` for a missing file.
    """
    path = os.fspath(path)
    if not isinstance(chunk_bytes, int) or isinstance(chunk_bytes, bool) or chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be a positive int, got {chunk_bytes!r}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a directory; pass one checkpoint file (for a sharded checkpoint, scan "
                              "each shard and add the totals)")
    file_bytes = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        kind = _sniff(path, head, file_bytes, f)
    start = time.perf_counter()
    if kind == "safetensors":
        tensors, source_key = _scan_safetensors(path, chunk_bytes), None
    else:
        tensors, source_key = _scan_torch(path, chunk_bytes)
    seconds = time.perf_counter() - start
    distinct = [t for t in tensors if t.alias_of is None]
    return CheckpointStats(
        path=path, format=kind, tensors=tuple(tensors), numel=sum(t.numel for t in distinct),
        nonzeros=sum(t.nonzeros for t in distinct), bytes_read=sum(t.nbytes for t in distinct),
        file_bytes=file_bytes, seconds=seconds, source_key=source_key,
    )


# ---------------------------------------------------------------------- format detection
def _sniff(path: str, head: bytes, size: int, f: Any) -> str:
    """"safetensors" or "torch-zip" from the first bytes, or a CheckpointError saying what the file is."""
    if head.startswith(_ZIP_MAGIC):
        return "torch-zip"
    if len(head) == 8 and f.read(1) == b"{":
        (header_len,) = struct.unpack("<Q", head)
        if 2 <= header_len <= size - 8:
            return "safetensors"
        raise CheckpointError(f"{path} looks like a truncated safetensors file: its header announces "
                              f"{header_len:,} bytes but only {size - 8:,} follow the length field")
    if head[:1] == b"\x80":
        raise CheckpointError(
            f"{path} is a pickle (torch's legacy pre-1.6 format, or pickle.dump), which cannot be memory-mapped: "
            "re-save it once with torch.save(state_dict, path) (zip format, the default since torch 1.6) or "
            "safetensors.torch.save_file, then scan that file"
        )
    if size < 8:
        raise CheckpointError(f"{path} is not a checkpoint: {size} bytes, too short for safetensors or a torch "
                              "zip archive")
    raise CheckpointError(f"{path} is not a checkpoint: it starts with {head[:8]!r}, neither a safetensors header "
                          "nor a PyTorch zip archive (torch.save)")


# ---------------------------------------------------------------------- safetensors
def _safetensors_header(path: str) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({exc}); the file is corrupt "
                              "or not a safetensors file") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object; the file is corrupt")
    return header, 8 + n


def _scan_safetensors(path: str, chunk_bytes: int) -> list[TensorStats]:
    try:
        from safetensors import safe_open
    except ImportError as exc:
        raise CheckpointError(
            f"{path} is a safetensors file and reading it needs the safetensors package: "
            "pip install safetensors (or pip install 'micronet-score[safetensors]')"
        ) from exc
    header, data_start = _safetensors_header(path)
    size = os.path.getsize(path)
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: entry {name!r} of the safetensors header has no valid "
                                  "data_offsets; the file is corrupt") from exc
        if data_start + end > size:
            raise CheckpointError(f"{path} is truncated: tensor {name!r} ends at byte {data_start + end:,} but the "
                                  f"file has {size:,} bytes")
        entries.append((begin, name))
    entries.sort()
    releaser = _PageReleaser(path)
    try:
        return _read_safetensors(path, safe_open, [name for _, name in entries], chunk_bytes, releaser)
    finally:
        releaser.close()


def _read_safetensors(path: str, safe_open: Any, names: list[str], chunk_bytes: int,
                      releaser: _PageReleaser) -> list[TensorStats]:
    try:
        handle = safe_open(path, framework="pt")
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError)
        raise CheckpointError(f"{path}: safetensors cannot open it ({type(exc).__name__}: {exc}); the file is "
                              "truncated or corrupt") from exc
    releaser.capture()
    count = _Counter()
    out = []
    try:
        for name in names:
            try:
                part = handle.get_slice(name)
                shape = tuple(int(s) for s in part.get_shape())
                numel = math.prod(shape)
                if numel == 0 or len(shape) == 0:
                    whole = handle.get_tensor(name)
                    nonzeros, dtype, nbytes = count(whole), whole.dtype, whole.nbytes
                else:
                    nonzeros, dtype, nbytes = 0, None, 0
                    for chunk in _slice_chunks(part, shape, chunk_bytes):
                        nonzeros += count(chunk)
                        dtype, nbytes = chunk.dtype, nbytes + chunk.nbytes
                        releaser.consumed(chunk, chunk.nbytes, chunk_bytes)
                        del chunk
            except CheckpointError:
                raise
            except Exception as exc:
                raise CheckpointError(f"{path}: cannot read tensor {name!r} ({type(exc).__name__}: {exc}); the "
                                      "file is truncated or corrupt") from exc
            out.append(TensorStats(name, shape, _dtype_name(dtype), numel, nonzeros, nbytes))
    finally:
        del handle
    return out


def _slice_chunks(part: Any, shape: tuple[int, ...], chunk_bytes: int) -> Iterator[torch.Tensor]:
    """Tensors of at most about ``chunk_bytes`` covering a safetensors slice, split along the leading dims."""
    itemsize = _itemsize(part.get_dtype())
    chunk_elems = max(1, chunk_bytes // itemsize)

    def walk(prefix: tuple[slice, ...], dims: tuple[int, ...]) -> Iterator[torch.Tensor]:
        inner = math.prod(dims[1:])
        if inner <= chunk_elems or len(dims) == 1:
            step = max(1, chunk_elems // max(inner, 1))
            for i in range(0, dims[0], step):
                yield part[(*prefix, slice(i, min(i + step, dims[0])))]
            return
        for i in range(dims[0]):
            yield from walk((*prefix, slice(i, i + 1)), dims[1:])

    yield from walk((), shape)


_SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
                         "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
                         "C64": 8}


def _itemsize(dtype: str) -> int:
    return _SAFETENSORS_ITEMSIZE.get(str(dtype).upper(), 8)


# ---------------------------------------------------------------------- torch zip
def _scan_torch(path: str, chunk_bytes: int) -> tuple[list[TensorStats], str | None]:
    releaser = _PageReleaser(path)
    try:
        return _read_torch(path, chunk_bytes, releaser)
    finally:
        releaser.close()


def _read_torch(path: str, chunk_bytes: int, releaser: _PageReleaser) -> tuple[list[TensorStats], str | None]:
    try:
        with warnings.catch_warnings():  # torch's own notices (TypedStorage, pickle protocol) are not the user's
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = next((line.strip() for line in str(exc).splitlines() if "Unsupported" in line
                      or "global" in line.lower()), str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        raise CheckpointError(
            f"{path} holds pickled objects that torch.load(weights_only=True) refuses ({first}). scan_checkpoint "
            "never runs code from a file. If you trust its source, either allow the class for this call: "
            "`with torch.serialization.safe_globals([TheClass]): scan_checkpoint(path)`, or load it yourself with "
            "torch.load(path, weights_only=False), save its state dict (torch.save(model.state_dict(), new_path) "
            "or safetensors.torch.save_file) and scan that file"
        ) from exc
    except RuntimeError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "central directory" in message or "zip archive" in message or "file not found" in message.lower():
            reason = "a zip archive that torch.load cannot read: truncated, corrupt, or not written by torch.save"
        else:
            reason = "torch.load failed"
        raise CheckpointError(f"{path}: {reason} ({message})") from exc
    except (EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: torch.load failed ({type(exc).__name__}: {exc}); the file is truncated "
                              "or corrupt") from exc
    releaser.capture()
    state_dict, source_key = _state_dict(path, obj)
    seen: dict[tuple[Any, ...], str] = {}
    count = _Counter()
    out = []
    try:
        for name, t in state_dict.items():
            key = _alias_key(t)
            shape = tuple(int(s) for s in t.shape)
            if key is not None and key in seen:
                first = next(s for s in out if s.name == seen[key])
                out.append(TensorStats(str(name), shape, _dtype_name(t.dtype), first.numel, first.nonzeros,
                                       first.nbytes, alias_of=seen[key]))
                continue
            nonzeros = nbytes = 0
            for chunk in _tensor_chunks(t, chunk_bytes):
                nonzeros += count(chunk)
                size = chunk.numel() * chunk.element_size()  # sparse layouts: the stored values only
                nbytes += size
                releaser.consumed(chunk, size, chunk_bytes)
                del chunk
            if key is not None:
                seen[key] = str(name)
            out.append(TensorStats(str(name), shape, _dtype_name(t.dtype), t.numel(), nonzeros, nbytes))
    finally:
        del state_dict, obj
    return out, source_key


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _state_dict(path: str, obj: Any) -> tuple[Mapping[str, torch.Tensor], str | None]:
    if _is_tensor_dict(obj):
        return obj, None
    if isinstance(obj, Mapping):
        for key in _STATE_DICT_KEYS:
            if key in obj and _is_tensor_dict(obj[key]):
                return obj[key], key
        found = ", ".join(f"{k!r}: {type(v).__name__}" for k, v in list(obj.items())[:8])
        more = ", ..." if len(obj) > 8 else ""
        raise CheckpointError(
            f"{path} holds a dict that is not a state dict ({{{found}{more}}}): scan_checkpoint reads a mapping "
            "of names to tensors, or a dict with one under 'state_dict' or 'model'. Save the tensors alone "
            "(torch.save(model.state_dict(), path)) and scan that file"
        )
    raise CheckpointError(
        f"{path} holds a {type(obj).__name__}, not a state dict: scan_checkpoint reads a mapping of names to "
        "tensors, or a dict with one under 'state_dict' or 'model'. Save the tensors alone "
        "(torch.save(model.state_dict(), path)) and scan that file"
    )


def _alias_key(t: torch.Tensor) -> tuple[Any, ...] | None:
    if t.layout != torch.strided or t.is_quantized:
        return None
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)


def _tensor_chunks(t: torch.Tensor, chunk_bytes: int) -> Iterator[torch.Tensor]:
    """Pieces of ``t`` of at most about ``chunk_bytes`` that together cover it once (no copy of ``t``)."""
    if t.layout != torch.strided:  # sparse layouts: only the stored values can be non-zero
        values = t.coalesce().values() if t.layout == torch.sparse_coo else t.values()
        yield from _tensor_chunks(values, chunk_bytes)
        return
    if t.is_quantized:
        yield t
        return
    chunk_elems = max(1, chunk_bytes // max(t.element_size(), 1))
    if t.dim() == 0 or t.numel() <= chunk_elems:
        yield t
        return
    if t.is_contiguous():
        flat = t.view(-1)
        for i in range(0, flat.numel(), chunk_elems):
            yield flat[i:i + chunk_elems]
        return
    inner = t[0].numel()
    if inner <= chunk_elems:
        step = max(1, chunk_elems // max(inner, 1))
        for i in range(0, t.shape[0], step):
            yield t[i:i + step]
        return
    for i in range(t.shape[0]):
        yield from _tensor_chunks(t[i], chunk_bytes)


# ---------------------------------------------------------------------- counting
# Elements compared per step into a reused buffer: torch's parallel grain size (at::internal::GRAIN_SIZE), so
# every step runs on the calling thread. Larger blocks let intra-op threads split the work, which doubles the
# speed on an idle machine but collapses it tenfold (OpenMP threads spinning on a barrier) as soon as another
# process holds a core; the disk is the limit of a cold scan anyway.
_BLOCK = 32768
_SIGNED = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}
_BITS_AS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_MAGNITUDE = {1: 0x7F, 2: 0x7FFF, 4: 0x7FFFFFFF, 8: 0x7FFFFFFFFFFFFFFF}


class _Counter:
    """Counts the values of a tensor that compare unequal to zero (-0.0 is zero, NaN is not).

    ``torch.count_nonzero`` on floats branches per element and slows to about 1 GB/s (0.5 GB/s for bfloat16)
    on unstructured sparsity; comparing a block into a reused bool buffer and counting that buffer is branch
    free (about 5 GB/s for float32, 2.5 GB/s for bfloat16, on one core of the benchmark machine). Floats narrower than 32 bits are compared through their bit
    patterns with the sign bit masked off (the same zeros, and float8 has no comparison kernel).
    """

    def __init__(self) -> None:
        self._bool = torch.empty(_BLOCK, dtype=torch.bool)
        self._bits: dict[torch.dtype, torch.Tensor] = {}

    def __call__(self, t: torch.Tensor) -> int:
        if t.is_quantized:  # zero is the zero point
            values = t.int_repr().to(torch.int32)
            if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                return int(torch.count_nonzero(values - int(t.q_zero_point())))
            axis = t.q_per_channel_axis()
            zp = t.q_per_channel_zero_points().reshape([-1 if d == axis else 1 for d in range(t.dim())])
            return int(torch.count_nonzero(values - zp.to(torch.int32)))
        n = t.numel()
        if n == 0:
            return 0
        if t.dtype == torch.bool:
            return int(torch.count_nonzero(t))
        values, mask = t, None
        if t.is_floating_point() and t.element_size() < 4:
            if "e8m0" in str(t.dtype):  # exponent-only format: no zero value at all
                return n
            values, mask = t.view(_BITS_AS[t.element_size()]), _MAGNITUDE[t.element_size()]
        elif t.dtype in _SIGNED:
            values = t.view(_SIGNED[t.dtype])
        if not values.is_contiguous():  # a piece of a strided tensor: bounded by the chunk size
            if mask is not None:
                values = values & mask
            return int(torch.count_nonzero(values != 0))
        flat = values.view(-1)
        total = 0
        for i in range(0, n, _BLOCK):
            block = flat[i : i + _BLOCK]
            m = block.numel()
            if mask is not None:
                block = torch.bitwise_and(block, mask, out=self._scratch(block.dtype)[:m])
            total += int(torch.count_nonzero(torch.ne(block, 0, out=self._bool[:m])))
        return total

    def _scratch(self, dtype: torch.dtype) -> torch.Tensor:
        buf = self._bits.get(dtype)
        if buf is None:
            buf = self._bits[dtype] = torch.empty(_BLOCK, dtype=dtype)
        return buf


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.") if dtype is not None else "unknown"


# ---------------------------------------------------------------------- keeping resident memory low
class _PageReleaser:
    """Keeps the scan's file mappings cheap (Linux only; elsewhere it does nothing).

    Resident memory: touched pages of a file mapping count in the resident set until unmapped.
    ``madvise(MADV_DONTNEED)`` drops them from this process every ``chunk_bytes`` read; the data stays in the
    page cache and a later access maps it again. Only mappings of this very file (same device and inode in
    /proc/self/maps) that appeared between :meth:`__init__` and :meth:`capture` are touched: those the scan's
    own ``torch.load``/``safe_open`` made, which nothing writes into. Mappings of the same file made elsewhere
    in the process are left alone.

    Read-ahead: both loaders hand out tensors that point into the mapping, so the file offset of each chunk is
    known; ``posix_fadvise(WILLNEED)`` on the next ``_PREFETCH`` bytes lets the kernel read them while this
    chunk is counted (a cold scan then runs near the disk's parallel read rate instead of page-fault speed).
    """

    _MADV_DONTNEED = 4
    _PREFETCH = 256 << 20

    def __init__(self, path: str) -> None:
        self.enabled = sys.platform.startswith("linux") and os.path.exists("/proc/self/maps")
        self.since = 0
        self.regions: list[tuple[int, int, int]] = []  # start, end, file offset of start
        self.prefetched = 0
        self._fd: int | None = None
        self._madvise: Any = None
        if self.enabled:
            try:
                st = os.stat(path)
                self.device, self.inode = (os.major(st.st_dev), os.minor(st.st_dev)), st.st_ino
                libc = ctypes.CDLL(None, use_errno=True)
                self._madvise = libc.madvise
                self._madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
                self._madvise.restype = ctypes.c_int
                if hasattr(os, "posix_fadvise"):
                    self._fd = os.open(path, os.O_RDONLY)
            except (OSError, AttributeError):
                self.enabled = False
        self._before = set(self._mapped()) if self.enabled else set()

    def capture(self) -> None:
        """Remember the mappings of the file that appeared since construction: the scan's own."""
        if self.enabled:
            self.regions = [r for r in self._mapped() if r not in self._before]
            if self._fd is not None and self.regions:
                self._prefetch(0)

    def consumed(self, chunk: torch.Tensor, nbytes: int, every: int) -> None:
        """``chunk`` (``nbytes`` bytes) was counted: read ahead of it; release pages every ``every`` bytes."""
        if not self.enabled:
            return
        if self._fd is not None and self.regions:
            end = self._file_offset(chunk.data_ptr() + nbytes) if chunk.layout == torch.strided else None
            if end is not None and end + self._PREFETCH // 2 > self.prefetched:
                self._prefetch(end)
        self.since += nbytes
        if self.since >= every:
            self.release()

    def _prefetch(self, offset: int) -> None:
        start = max(offset, self.prefetched)
        try:
            os.posix_fadvise(self._fd, start, offset + self._PREFETCH - start, os.POSIX_FADV_WILLNEED)
        except OSError:
            self._fd = None
        self.prefetched = offset + self._PREFETCH

    def release(self) -> None:
        self.since = 0
        if not self.enabled or self._madvise is None:
            return
        for start, end, _ in self.regions:
            self._madvise(start, end - start, self._MADV_DONTNEED)

    def close(self) -> None:
        self.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _file_offset(self, address: int) -> int | None:
        for start, end, offset in self.regions:
            if start <= address <= end:
                return offset + address - start
        return None

    def _mapped(self) -> list[tuple[int, int, int]]:
        regions = []
        try:
            with open("/proc/self/maps") as maps:
                for line in maps:
                    fields = line.split(maxsplit=5)
                    if len(fields) < 6 or int(fields[4]) != self.inode:
                        continue
                    major, minor = (int(x, 16) for x in fields[3].split(":"))
                    if (major, minor) != self.device:
                        continue
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    if start % mmap.PAGESIZE == 0 and end > start:
                        regions.append((start, end, int(fields[2], 16)))
        except (OSError, ValueError):
            return []
        return regions


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m micronet_score.checkpoint",
                                     description="Count values and non-zeros of checkpoint files.")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--chunk-mb", type=int, default=DEFAULT_CHUNK_BYTES >> 20)
    args = parser.parse_args(argv)
    status = 0
    for p in args.paths:
        try:
            print(scan_checkpoint(p, chunk_bytes=args.chunk_mb << 20).table())
        except (CheckpointError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(_main())
