"""Opening a submitted file safely: regular files only, any path (non-UTF-8 included), printable names.

A named pipe would block ``open()`` forever and a device could stream without end, so the file is opened
non-blocking and checked with ``fstat`` before anything reads it. On Linux the readers are handed the path
``/proc/self/fd/N`` of that very descriptor: the file cannot be swapped between the check and the read, and a
path that is not valid UTF-8 (which torch and safetensors cannot take as a string) still loads.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from micronet_score.errors import CheckpointError

__all__ = ["CheckpointNotFoundError", "OpenedFile", "clean", "open_regular", "shown"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f]")


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at the path given (also a ``FileNotFoundError``)."""


def shown(path: str | bytes | os.PathLike[str]) -> str:
    """``path`` as printable text: bytes that are not UTF-8 appear as ``\\xff`` escapes, never raw."""
    raw = os.fsencode(path)
    return clean(raw.decode("utf-8", "backslashreplace"))


def clean(text: str) -> str:
    """``text`` without terminal escape sequences or control characters, on one line."""
    return _ANSI.sub("", str(text).replace("\n", " ").replace("\r", " ")).strip()


@dataclass(frozen=True)
class OpenedFile:
    """A regular file held open: ``path`` for readers that need a path, ``name`` for messages."""

    fd: int
    path: str
    name: str
    size: int


@contextmanager
def open_regular(path: str | bytes | os.PathLike[str]) -> Iterator[OpenedFile]:
    """Open ``path`` for reading if it is a regular file; refuse directories, pipes, sockets and devices."""
    name = shown(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CheckpointNotFoundError(f"no checkpoint at {name}: the file does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {name}: {clean(exc.strerror or exc)}") from exc
    _check_kind(st.st_mode, name)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise CheckpointError(f"cannot open {name}: {clean(exc.strerror or exc)}") from exc
    try:
        st = os.fstat(fd)
        _check_kind(st.st_mode, name)  # the file may have been replaced since the stat above
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        proc = f"/proc/self/fd/{fd}"
        reader_path = proc if os.path.exists(proc) else os.fsdecode(path)
        yield OpenedFile(fd, reader_path, name, st.st_size)
    finally:
        os.close(fd)


def _check_kind(mode: int, name: str) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise CheckpointError(f"{name} is a directory, not a checkpoint file; pass one file (for a sharded "
                              "checkpoint, pass each shard)")
    kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
    raise CheckpointError(f"{name} is {kind}, not a regular file: copy the checkpoint to a file and pass that")
