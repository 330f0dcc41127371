"""Count the values and non-zeros of a checkpoint file without loading it all into memory.

:func:`scan_checkpoint` reads a safetensors file tensor by tensor (``safetensors.safe_open``) or a PyTorch zip
checkpoint (``torch.save`` since 1.6) memory-mapped with ``torch.load(mmap=True, weights_only=True)``, and counts
the non-zeros of every tensor in chunks of at most ``chunk_bytes``. On Linux the pages of the file mapping are
handed back to the kernel after each chunk, so the peak resident memory stays near one chunk plus the
interpreter whatever the checkpoint's size (a zip with deflate-compressed records is the exception: those are
inflated in memory, within ``max_inflated_bytes``).

A value counts as non-zero when it compares unequal to zero: ``-0.0`` is a zero, NaN is not; a quantized value
is zero when it equals its zero point. An expanded (stride-0) tensor is counted over its storage. Nothing in the
file is ever executed (see :mod:`micronet_score.io.torch_zip`).

>>> import tempfile, os, torch
>>> from micronet_score.io import scan_checkpoint
>>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
>>> torch.save({"w": torch.tensor([[0.0, 1.0], [2.0, 0.0]]), "b": torch.zeros(3)}, path)
>>> stats = scan_checkpoint(path)
>>> stats.numel, stats.nonzeros, stats["w"].nonzeros
(7, 2, 2)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from micronet_score.errors import CheckpointError
from micronet_score.io.files import OpenedFile, clean, open_regular
from micronet_score.io.limits import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_INFLATED_BYTES, Limits
from micronet_score.io.nonzeros import count_values
from micronet_score.io.pages import PageReleaser
from micronet_score.io.safetensors_reader import check_header, open_safetensors, slice_chunks
from micronet_score.io.sniff import sniff
from micronet_score.io.stats import CheckpointStats, TensorStats
from micronet_score.io.torch_zip import inspect_zip, load_torch
from micronet_score.io.unwrap import unwrap

__all__ = ["DEFAULT_CHUNK_BYTES", "scan_checkpoint"]

DEFAULT_CHUNK_BYTES = 16 << 20


def scan_checkpoint(path: str | bytes | os.PathLike[str], *, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                    allow_globals: Sequence[str] = (), max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES) -> CheckpointStats:
    """Count values and non-zeros of every tensor in the checkpoint at ``path``, chunk by chunk.

    The format is read from the file's first bytes: safetensors (needs the ``safetensors`` package) or a PyTorch
    zip checkpoint holding a state dict (a mapping of names to tensors) or a dict with one under
    ``"state_dict"``, ``"model"`` or ``"model_state_dict"``. ``chunk_bytes`` bounds the tensor bytes read per
    step. ``allow_globals`` names classes (``"mod.Class"``) a torch pickle may use beyond tensors;
    ``max_header_bytes`` and ``max_inflated_bytes`` are the limits of :class:`~micronet_score.io.Limits`.
    Raises :class:`~micronet_score.errors.CheckpointError` for anything else (not a regular file, not a
    checkpoint, truncated, legacy pickle format, objects other than tensors, globals a weights-only load
    refuses, sizes over the limits); a missing file raises its subclass that is also a FileNotFoundError.
    """
    if not isinstance(chunk_bytes, int) or isinstance(chunk_bytes, bool) or chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be a positive int, got {chunk_bytes!r}")
    limits = Limits(max_header_bytes, max_inflated_bytes)
    with open_regular(path) as opened:
        kind = sniff(opened)
        if kind == "pickle":
            raise CheckpointError(
                f"{opened.name} is a pickle (torch's legacy pre-1.6 format, or pickle.dump), which cannot be "
                "memory-mapped: re-save it once with torch.save(state_dict, path) (zip format, the default since "
                "torch 1.6) or safetensors.torch.save_file, then scan that file")
        start = time.perf_counter()
        if kind == "safetensors":
            tensors, source_key = _scan_safetensors(opened, chunk_bytes, limits), None
        else:
            tensors, source_key = _scan_torch(opened, chunk_bytes, limits, allow_globals)
        seconds = time.perf_counter() - start
    distinct = [t for t in tensors if t.alias_of is None]
    return CheckpointStats(
        path=opened.name, format=kind, tensors=tuple(tensors), numel=sum(t.numel for t in distinct),
        nonzeros=sum(t.nonzeros for t in distinct), bytes_read=sum(t.nbytes for t in distinct),
        file_bytes=opened.size, seconds=seconds, source_key=source_key,
    )


# ---------------------------------------------------------------------- safetensors
def _scan_safetensors(opened: OpenedFile, chunk_bytes: int, limits: Limits) -> list[TensorStats]:
    names = check_header(opened, limits)
    releaser = PageReleaser(opened.path)
    try:
        handle = open_safetensors(opened)
        releaser.capture()
        out = []
        try:
            for name in names:
                out.append(_safetensors_entry(opened, handle, name, chunk_bytes, releaser))
        finally:
            del handle
        return out
    finally:
        releaser.close()


def _safetensors_entry(opened: OpenedFile, handle: Any, name: str, chunk_bytes: int,
                       releaser: PageReleaser) -> TensorStats:
    try:
        part = handle.get_slice(name)
        shape = tuple(int(s) for s in part.get_shape())
        numel = math.prod(shape)
        if numel == 0 or len(shape) == 0:
            whole = handle.get_tensor(name)
            nonzeros, dtype, nbytes = count_values(whole), whole.dtype, whole.nbytes
        else:
            nonzeros, dtype, nbytes = 0, None, 0
            for chunk in slice_chunks(part, shape, chunk_bytes):
                nonzeros += count_values(chunk)
                dtype, nbytes = chunk.dtype, nbytes + chunk.nbytes
                releaser.consumed(chunk, chunk.nbytes, chunk_bytes)
                del chunk
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{opened.name}: cannot read tensor {clean(name)!r} ({type(exc).__name__}: "
                              f"{clean(exc)}); the file is truncated or corrupt") from None
    return TensorStats(name, shape, _dtype_name(dtype), numel, nonzeros, nbytes)


# ---------------------------------------------------------------------- torch zip
def _scan_torch(opened: OpenedFile, chunk_bytes: int, limits: Limits,
                allow_globals: Sequence[str]) -> tuple[list[TensorStats], str | None]:
    summary = inspect_zip(opened, limits)
    releaser = PageReleaser(opened.path)
    try:
        obj = load_torch(opened, mmap=summary.inflated_bytes == 0, allow_globals=allow_globals)
        releaser.capture()
        state_dict, source_key = unwrap(opened.name, obj)
        seen: dict[tuple[Any, ...], str] = {}
        out: list[TensorStats] = []
        try:
            for name, t in state_dict.items():
                key = _alias_key(t)
                shape = tuple(int(s) for s in t.shape)
                if key is not None and key in seen:
                    first = next(s for s in out if s.name == seen[key])
                    out.append(TensorStats(name, shape, _dtype_name(t.dtype), first.numel, first.nonzeros,
                                           first.nbytes, alias_of=seen[key]))
                    continue
                out.append(_torch_entry(opened, name, t, chunk_bytes, releaser))
                if key is not None:
                    seen[key] = name
        finally:
            del state_dict, obj
        return out, source_key
    finally:
        releaser.close()


def _torch_entry(opened: OpenedFile, name: str, t: torch.Tensor, chunk_bytes: int,
                 releaser: PageReleaser) -> TensorStats:
    shape = tuple(int(s) for s in t.shape)
    stored, repeats = _stored_view(opened, name, t)
    nonzeros = nbytes = 0
    for chunk in _tensor_chunks(stored, chunk_bytes):
        nonzeros += count_values(chunk)
        size = chunk.numel() * chunk.element_size()  # sparse layouts: the stored values only
        nbytes += size
        releaser.consumed(chunk, size, chunk_bytes)
        del chunk
    return TensorStats(name, shape, _dtype_name(t.dtype), t.numel(), nonzeros * repeats, nbytes)


def _stored_view(opened: OpenedFile, name: str, t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``t`` without its stride-0 (expanded) dimensions, and how many times the view repeats it."""
    if t.layout != torch.strided or t.is_quantized or t.dim() == 0:
        return t, 1
    index: list[Any] = []
    repeats = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride == 0 and size > 1:
            index.append(slice(0, 1))
            repeats *= size
        else:
            index.append(slice(None))
    stored = t[tuple(index)] if repeats > 1 else t
    capacity = t.untyped_storage().nbytes() // max(t.element_size(), 1)
    if stored.numel() > capacity:
        raise CheckpointError(f"{opened.name}: tensor {clean(name)!r} is a view whose {stored.numel():,} values "
                              f"overlap in a storage of {capacity:,}; save a copy (t.clone()) instead of the view")
    return stored, repeats


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


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.") if dtype is not None else "unknown"
