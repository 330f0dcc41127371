"""Reading a PyTorch checkpoint (``torch.save``'s zip format, or the legacy pickle) without running its code.

Before ``torch.load`` sees a zip, :func:`inspect_zip` reads its directory and its pickle's opcodes (never
executing them) and checks what the file declares: no record name given twice (torch reads the first record of
a name, the zip directory keeps the last), the pickle within ``max_header_bytes``, every storage the
pickle names present with at least the bytes it declares (a short record would make a memory-mapped load read
the zip's own metadata as weights), and deflate-compressed records (``torch.save`` writes none; a re-zipped
file may) within ``max_inflated_bytes`` in total. A file with compressed records is then loaded without
memory mapping, so the tensors hold the inflated values and never the compressed bytes.

The unpickling is ``torch.load(weights_only=True)``: a file that asks for any other global is refused with the
globals it asks for, read from the opcodes; ``allow_globals=("mod.Class",)`` opts named ones in through
``torch.serialization.safe_globals``.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from micronet_score.errors import CheckpointError
from micronet_score.io.files import OpenedFile, clean
from micronet_score.io.limits import Limits
from micronet_score.io.pickle_scan import Global, inspect_pickle

__all__ = ["ZipSummary", "inspect_zip", "load_torch", "resolve_globals", "unsafe_globals"]

_LEGACY_PICKLES = 4  # torch's legacy format: magic number, protocol, system info, then the object


@dataclass(frozen=True)
class ZipSummary:
    """What :func:`inspect_zip` learned: the bytes of compressed records to inflate, and the pickle's globals."""

    inflated_bytes: int
    globals: tuple[str, ...]


def inspect_zip(opened: OpenedFile, limits: Limits) -> ZipSummary:
    """Check a torch zip's declared sizes against its records and ``limits`` (see the module docstring)."""
    name = opened.name
    try:
        with zipfile.ZipFile(opened.path) as archive:
            infos: dict[str, zipfile.ZipInfo] = {}
            for info in archive.infolist():
                if info.filename in infos:
                    raise CheckpointError(f"{name}: the zip archive holds two records named "
                                          f"{clean(info.filename)!r}; readers disagree on which one counts (torch "
                                          "reads the first), so the file is refused: re-save it with torch.save")
                infos[info.filename] = info
            pkl = next((n for n in infos if n == "data.pkl" or n.endswith("/data.pkl")), None)
            if pkl is None:
                raise CheckpointError(f"{name} is a zip archive without data.pkl: not written by torch.save "
                                      "(a torch checkpoint holds <archive>/data.pkl and <archive>/data/<key>)")
            prefix = pkl[: -len("data.pkl")]
            for info in infos.values():
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise CheckpointError(f"{name}: record {clean(info.filename)!r} uses zip compression method "
                                          f"{info.compress_type}, which torch cannot read; re-save the "
                                          "checkpoint with torch.save")
            header = infos[pkl]
            if header.file_size > limits.max_header_bytes:
                raise CheckpointError(
                    f"{name}: its pickle (data.pkl) declares {header.file_size:,} bytes, over the limit of "
                    f"{limits.max_header_bytes:,} (max_header_bytes); if you trust the file, raise it "
                    "(max_header_bytes= in Python, --max-header-mb on the command line)")
            inflated = sum(i.file_size for i in infos.values() if i.compress_type != zipfile.ZIP_STORED)
            if inflated > limits.max_inflated_bytes:
                raise CheckpointError(
                    f"{name}: its compressed records would inflate to {inflated:,} bytes, over the limit of "
                    f"{limits.max_inflated_bytes:,} (max_inflated_bytes); torch.save never compresses, so this "
                    "file was re-zipped. If you trust it, raise the limit (max_inflated_bytes= in Python, "
                    "--max-inflated-mb on the command line) or re-save it with torch.save")
            contents = inspect_pickle(archive.read(pkl))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise CheckpointError(f"{name}: a zip archive that cannot be read ({clean(exc)}): truncated, corrupt, "
                              "or not written by torch.save") from exc
    for pid in contents.persistent_ids:
        _check_storage(name, pid, prefix, infos)
    return ZipSummary(inflated, tuple(contents.globals))


def _check_storage(name: str, pid: Any, prefix: str, infos: dict[str, zipfile.ZipInfo]) -> None:
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
        raise CheckpointError(f"{name}: its pickle loads an object that is not a tensor storage ({clean(pid)!r});"
                              " not a torch.save checkpoint")
    _, kind, key, _, numel = pid
    if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
        raise CheckpointError(f"{name}: a storage of its pickle has no valid key or size; the file is corrupt")
    record = infos.get(f"{prefix}data/{key}")
    if record is None:
        raise CheckpointError(f"{name}: its pickle names storage {clean(key)!r} but the archive has no record "
                              "data/{key}; the file is truncated or corrupt")
    need = numel * _itemsize(kind)
    if record.file_size < need:
        raise CheckpointError(f"{name}: storage {clean(key)!r} is declared as {need:,} bytes but its record holds "
                              f"{record.file_size:,}; the file is corrupt (or crafted), refused")


_STORAGE_ITEMSIZE = {"Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2,
                     "Char": 1, "Byte": 1, "Bool": 1, "ComplexFloat": 8, "ComplexDouble": 16, "QInt8": 1,
                     "QUInt8": 1, "QInt32": 4, "QUInt4x2": 1, "QUInt2x4": 1, "Untyped": 1}


def _itemsize(kind: Any) -> int:
    """Bytes per element of a storage class named in the pickle (``torch.FloatStorage``: 4)."""
    if isinstance(kind, Global) and kind.name.endswith("Storage"):
        short = kind.name.rsplit(".", 1)[1][: -len("Storage")]
        if short in _STORAGE_ITEMSIZE:
            return _STORAGE_ITEMSIZE[short]
    return 1  # unknown: check at least the declared element count as bytes


def resolve_globals(names: Sequence[str]) -> list[Any]:
    """The objects named ``mod.Class`` (imported: the caller opted them in), or a CheckpointError."""
    out = []
    for full in names:
        module, _, attr = str(full).rpartition(".")
        if not module:
            raise CheckpointError(f"allow_globals entry {full!r} must look like module.Name")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise CheckpointError(f"allow_globals entry {full!r}: cannot import it ({clean(exc)}); make its "
                                  "module importable (PYTHONPATH) or drop the entry") from exc
        out.append(obj)
    return out


def load_torch(opened: OpenedFile, *, mmap: bool, allow_globals: Sequence[str] = ()) -> Any:
    """``torch.load(weights_only=True)`` of the file, errors turned into one-line CheckpointErrors."""
    allowed = resolve_globals(allow_globals)
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(allowed):
            warnings.simplefilter("ignore")  # torch's notices (TypedStorage, pickle protocol) are not the user's
            return torch.load(opened.path, mmap=mmap, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise _refusal(opened, exc, allowed) from None
    except RuntimeError as exc:
        message = clean(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise CheckpointError(f"{opened.name}: torch.load cannot read it ({message}); the file is truncated, "
                              "corrupt, or not written by torch.save") from None
    except (EOFError, OSError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise CheckpointError(f"{opened.name}: torch.load cannot read it ({type(exc).__name__}: {clean(exc)}); "
                              "the file is truncated or corrupt") from None


def unsafe_globals(opened: OpenedFile, limits: Limits) -> list[str]:
    """Globals the file's pickle asks for that a weights-only load refuses (read from opcodes, not run)."""
    safe = _safe_names()
    return [g for g in _pickle_globals(opened, limits) if g not in safe]


def _pickle_globals(opened: OpenedFile, limits: Limits) -> list[str]:
    with open(opened.path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        return list(inspect_zip(opened, limits).globals)
    with open(opened.path, "rb") as f:
        data = f.read(limits.max_header_bytes)
    found: list[str] = []
    position = 0
    for _ in range(_LEGACY_PICKLES):  # legacy torch files are several pickles in a row
        contents = inspect_pickle(data[position:])
        found.extend(g for g in contents.globals if g not in found)
        end = _pickle_end(data[position:])
        if end is None:
            break
        position += end
    return found


def _pickle_end(data: bytes) -> int | None:
    import pickletools

    try:
        for op, _, pos in pickletools.genops(data):
            if op.name == "STOP":
                return pos + 1
    except ValueError:
        return None
    return None


def _safe_names() -> set[str]:
    names: set[str] = set()
    try:
        from torch import _weights_only_unpickler as wou

        names |= set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals())
    except (ImportError, AttributeError):  # pragma: no cover - torch internals moved
        names |= {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2"}
    return names


def _refusal(opened: OpenedFile, exc: Exception, allowed: list[Any]) -> CheckpointError:
    try:
        asked = [g for g in unsafe_globals(opened, Limits()) if g not in {_qualname(a) for a in allowed}]
    except CheckpointError:
        asked = []
    if asked:
        shown_globals = ", ".join(clean(g) for g in asked[:6]) + (", ..." if len(asked) > 6 else "")
        return CheckpointError(
            f"{opened.name} asks to import {shown_globals} while unpickling, which could run code: refused "
            "(micronet-score never runs code from a checkpoint). If you trust the file and these are plain data "
            f"classes, allow them by name: allow_globals=({asked[0]!r},) in Python, --allow-global {asked[0]} on "
            "the command line; or re-save just the state dict (torch.save(model.state_dict(), path)) or as "
            "safetensors")
    detail = next((clean(line) for line in str(exc).splitlines()
                   if line.strip() and "weights_only" not in line and "WeightsUnpickler" not in line), "")
    detail = next((clean(line) for line in str(exc).splitlines() if "Unsupported" in line), detail)
    return CheckpointError(
        f"{opened.name}: its pickle holds more than tensors and is refused ({detail or 'unsupported content'}); "
        "micronet-score never runs code from a checkpoint. Re-save just the state dict "
        "(torch.save(model.state_dict(), path)) or as safetensors")


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', ''))}"
