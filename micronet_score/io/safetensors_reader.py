"""Reading safetensors files: the header checked (size within the limit and the file, then JSON with one level of
entries and no repeated name, offsets two whole numbers within the file) before ``safetensors`` parses it, and tensors read whole (loading) or in slices (scanning)."""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterator
from typing import Any

import torch

from micronet_score.errors import CheckpointError
from micronet_score.io.files import OpenedFile, clean
from micronet_score.io.limits import Limits

__all__ = ["check_header", "load_safetensors", "open_safetensors", "slice_chunks"]

_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
             "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}


def check_header(opened: OpenedFile, limits: Limits) -> list[str]:
    """The tensor names in file order, after checking the header against ``limits`` and the file's size."""
    name = opened.name
    (n,) = struct.unpack("<Q", os.pread(opened.fd, 8, 0))
    if n > limits.max_header_bytes:
        raise CheckpointError(f"{name}: its safetensors header declares {n:,} bytes, over the limit of "
                              f"{limits.max_header_bytes:,} (max_header_bytes); if you trust the file, raise it "
                              "(max_header_bytes= in Python, --max-header-mb on the command line)")
    if n > opened.size - 8:
        raise CheckpointError(f"{name} is truncated: its safetensors header announces {n:,} bytes but only "
                              f"{max(opened.size - 8, 0):,} follow the length field")
    raw = os.pread(opened.fd, n, 8)
    try:
        header = json.loads(raw, object_pairs_hook=_unique, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise CheckpointError(f"{name}: the safetensors header is not valid JSON ({clean(exc)}); the file is "
                              "corrupt or not a safetensors file") from None
    except RecursionError:
        raise CheckpointError(f"{name}: the safetensors header nests too deeply to parse (a safetensors header "
                              "is one level of entries); the file is corrupt or crafted") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: the safetensors header is not a JSON object; the file is corrupt")
    data_start = 8 + n
    entries = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(v) for v in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise CheckpointError(f"{name}: entry {clean(key)!r} of the safetensors header has no valid "
                                  "data_offsets (two whole numbers, 0 <= begin <= end); the file is corrupt")
        begin, end = offsets
        if data_start + end > opened.size:
            raise CheckpointError(f"{name} is truncated: tensor {clean(key)!r} ends at byte {data_start + end:,} "
                                  f"but the file has {opened.size:,} bytes")
        entries.append((begin, key))
    return [key for _, key in sorted(entries)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a name given twice is refused (readers disagree on which one wins)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the name {clean(key)!r} appears twice")
        out[key] = value
    return out


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _module(name: str) -> Any:
    try:
        import safetensors
    except ImportError:
        raise CheckpointError(f"{name} is a safetensors file and reading it needs the safetensors package: "
                              "pip install safetensors") from None
    return safetensors


def open_safetensors(opened: OpenedFile) -> Any:
    """A ``safe_open`` handle on the file (torch tensors)."""
    safetensors = _module(opened.name)
    try:
        return safetensors.safe_open(opened.path, framework="pt")
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError)
        raise CheckpointError(f"{opened.name}: safetensors cannot open it ({type(exc).__name__}: {clean(exc)}); "
                              "the file is truncated or corrupt") from None


def load_safetensors(opened: OpenedFile, limits: Limits) -> dict[str, torch.Tensor]:
    """Every tensor of the file, by name."""
    names = check_header(opened, limits)
    handle = open_safetensors(opened)
    out = {}
    for key in names:
        try:
            out[key] = handle.get_tensor(key)
        except Exception as exc:
            raise CheckpointError(f"{opened.name}: cannot read tensor {clean(key)!r} ({type(exc).__name__}: "
                                  f"{clean(exc)}); the file is truncated or corrupt") from None
    return out


def slice_chunks(part: Any, shape: tuple[int, ...], chunk_bytes: int) -> Iterator[torch.Tensor]:
    """Tensors of at most about ``chunk_bytes`` covering a safetensors slice, split along the leading dims."""
    itemsize = _ITEMSIZE.get(str(part.get_dtype()).upper(), 8)
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
