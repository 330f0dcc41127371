"""Limits for a child process that runs an entry's code: memory (``RLIMIT_AS``), ending with its parent, and a
one-line description of how a child ended.

Shared by the leaderboard's entry runner and by any other step that runs code in a child process.

>>> parse_memory("8GiB"), parse_memory("512 MiB"), parse_memory("none")
(8589934592, 536870912, None)
>>> format_memory(8 << 30), describe_exit(3), describe_exit(-9)
('8 GiB', 'exited with status 3', 'killed by SIGKILL (out of memory?)')
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import threading
from typing import Any

from micronet_score.organizer.errors import SubmissionError

DEFAULT_ENTRY_MEMORY = "8GiB"
DEFAULT_ENTRY_TIMEOUT = 600.0

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
          "t": 1 << 40, "tib": 1 << 40, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12}

# signals that describe what the child did (or what was done to it for its use of memory), with a hint
_SIGNAL_HINTS = {"SIGKILL": "out of memory?", "SIGSEGV": "segmentation fault", "SIGBUS": "bus error",
                 "SIGABRT": "aborted", "SIGFPE": "arithmetic error", "SIGILL": "illegal instruction"}
# signals sent from outside (Ctrl-C, a service stop): the entry is not to blame
OUTSIDE_SIGNALS = frozenset({"SIGINT", "SIGTERM", "SIGHUP"})


def parse_memory(text: str | int | None) -> int | None:
    """``text`` (``"8GiB"``, ``"512MiB"``, ``"8G"`` (binary), ``"8GB"`` (decimal), a plain number of bytes) in
    bytes; ``None``, ``"none"``, ``"unlimited"`` or ``0``: no limit (``None``)."""
    if text is None or isinstance(text, bool):
        if isinstance(text, bool):
            raise SubmissionError(f"memory limit {text!r} is not a size; use e.g. 8GiB or none")
        return None
    if isinstance(text, int):
        if text < 0:
            raise SubmissionError(f"memory limit {text} is negative; use e.g. 8GiB or none")
        return text or None
    raw = str(text).strip()
    if raw.lower() in ("none", "unlimited", "0"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", raw)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise SubmissionError(f"memory limit {raw!r} is not a size; use e.g. 8GiB, 512MiB or none")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise SubmissionError(f"memory limit {raw!r} is zero; use e.g. 8GiB, or none for no limit")
    return value


def format_memory(nbytes: int) -> str:
    """``nbytes`` for people: ``8 GiB``, ``1.5 GiB``, ``512 MiB``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size:
            return f"{nbytes / size:.4g} {unit}"
    return f"{nbytes} bytes"


def apply_memory_limit(nbytes: int | None) -> bool:
    """Cap this process's address space at ``nbytes`` (``RLIMIT_AS``; a larger allocation fails with
    ``MemoryError`` / torch's "can't allocate memory"). ``None``: no change. Returns whether a limit was set
    (False where the platform has no ``resource`` module or does not enforce ``RLIMIT_AS``, as macOS)."""
    if nbytes is None:
        return False
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return False
    if not hasattr(resource, "RLIMIT_AS") or sys.platform == "darwin":  # pragma: no cover
        return False
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = nbytes if hard == resource.RLIM_INFINITY else min(nbytes, hard)
    if sys.platform.startswith("linux"):
        # glibc reserves 64 MiB of address space per malloc arena, up to 8 per core: on a many-core machine that
        # alone could reach the limit with little memory used. Four arenas are plenty for one evaluation.
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None).mallopt(-8, 4)  # -8 = M_ARENA_MAX
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    return True


def die_with_parent(parent_pid: int | None = None, lifeline: int | None = None, poll: float = 0.5) -> None:
    """End this process when its parent ends, ``kill -9`` included: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on
    Linux, plus a daemon thread that watches ``lifeline`` (the read end of a pipe whose write end only the parent
    holds: end of file when the parent is gone, even while it is an unreaped zombie) and polls ``os.getppid()``
    and ``parent_pid`` (the process that started the work, when not the direct parent, as with a fork server)."""
    import select

    if os.name != "posix":  # pragma: no cover - select() takes only sockets on Windows
        lifeline = None
    original = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the thread below still watches
            pass

    def orphaned() -> bool:
        if os.getppid() != original:
            return True
        if lifeline is not None:
            try:
                ready, _, _ = select.select([lifeline], [], [], 0)
                if ready and not os.read(lifeline, 1):
                    return True
            except (OSError, ValueError):
                return True
        if parent_pid is not None:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:  # pragma: no cover - the pid was reused by another user's process
                return True
        return False

    if orphaned():  # the parent died before the watch began
        os._exit(70)

    def watch() -> None:
        while True:
            if lifeline is not None:
                with contextlib.suppress(OSError, ValueError):
                    select.select([lifeline], [], [], poll)
            else:
                threading.Event().wait(poll)
            if orphaned():
                os._exit(70)

    threading.Thread(target=watch, name="micronet-parent-watch", daemon=True).start()


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9 (or ``signal 42`` for a number without a name)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(exitcode: Any) -> str:
    """How a child ended, from ``multiprocessing``'s ``exitcode`` (negative: the signal that killed it)."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        name = signal_name(-exitcode)
        hint = _SIGNAL_HINTS.get(name)
        return f"killed by {name}" + (f" ({hint})" if hint else "")
    return f"exited with status {exitcode}"
