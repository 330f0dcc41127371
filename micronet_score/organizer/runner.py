"""Each leaderboard entry in its own child process: at most ``workers`` at once, each under a wall-time and a
memory limit, each row handed back as soon as its entry finishes.

A child that dies fails only its own entry, with the cause ("worker died: killed by SIGSEGV (segmentation
fault)"); an entry that calls ``exit()`` or ``os._exit()`` fails itself, never the board. Failures of the machinery
(a process that cannot be started or dies before the entry's code runs, a child stopped from outside by
SIGTERM) are reported with ``stored=False``:
they are no entry's result, and a rerun retries them. Children are started by a fork server that has already
imported torch (Linux; elsewhere they are spawned), end with their parent (``kill -9`` included), and on Ctrl-C
are ended at once while the rows already handed back stay with the caller.

Rows travel back as JSON (never pickle: a hostile entry's process cannot run code in the parent).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from micronet_score.organizer.fingerprint import local_modules_loaded
from micronet_score.organizer.limits import OUTSIDE_SIGNALS, describe_exit, signal_name

MAX_ROW_BYTES = 1 << 20  # a row is a few hundred bytes; a child that sends more is refused
CODE_FILES = "code_files"  # kept in the store (to see whether a row is stale), never in published files
BEGIN = b"begin"  # the child's first message: set up, about to run the entry's code
REAP_SECONDS = 5.0  # how long a child that sent its row may take to exit before it is killed

# (key, row, stored): stored=False for machinery failures, which must not be kept as the entry's result
OnResult = Callable[[str, dict[str, Any], bool], None]


class BoardInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) while entries were running: ``scored`` rows were kept, ``left`` entries were not scored."""

    def __init__(self, scored: int, left: int, where: str = "") -> None:
        super().__init__(scored, left, where)
        self.scored, self.left, self.where = scored, left, where

    def __str__(self) -> str:
        kept = f" (kept in {self.where})" if self.where else ""
        return (f"interrupted: {self.scored} entr{'y' if self.scored == 1 else 'ies'} scored in this run"
                f"{kept}, {self.left} not scored; run the same command to resume")


@dataclass
class _Job:
    key: str
    task: Mapping[str, Any]
    process: Any
    reader: Any
    started: float
    row: dict[str, Any] | None = None
    closed: bool = False  # the child closed its end without a row
    began: bool = False  # the child said it is about to run the entry's code


def machinery_row(task: Mapping[str, Any], cause: str) -> dict[str, Any]:
    """The (unstored) row of an entry that was not scored because the machinery failed."""
    return failure_row(task, f"not scored: {cause}; the same command retries it")


def failure_row(task: Mapping[str, Any], error: str) -> dict[str, Any]:
    """The row of an entry whose process failed (its own fault: stored): every row field, no result."""
    from micronet_score.organizer.scoring import ROW_FIELDS

    entry = task.get("entry") or {}
    row: dict[str, Any] = {field: None for field in ROW_FIELDS}
    row.update(name=str(entry.get("name", "?")), model=entry.get("model"), args=entry.get("args") or {},
               weights=entry.get("weights"), weights_sha256=None, error=error, published=False)
    return row


def _context() -> Any:
    import multiprocessing

    if sys.platform.startswith("linux"):
        from multiprocessing import forkserver

        ctx = multiprocessing.get_context("forkserver")
        # the fork server imports torch and the scorer once; each child is a fork of it (milliseconds, not seconds)
        ctx.set_forkserver_preload(["micronet_score.organizer.scoring"])
        # started with SIGINT ignored (kept across exec): a Ctrl-C to the terminal's whole process group while it
        # imports torch would print its traceback. It ignores SIGINT for good once ready, as do its children.
        # (The spawn takes milliseconds; a Ctrl-C within them is lost.)
        main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            forkserver.ensure_running()
        finally:
            if main:
                signal.signal(signal.SIGINT, old)
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - macOS, Windows


def _child_main(task: Mapping[str, Any], writer: Any, memory: int | None, parent_pid: int, lifeline: Any) -> None:
    """In the child: limits first, then the entry; the row goes back as JSON, and the process ends at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends its children
    with contextlib.suppress(AttributeError, OSError):  # not on Windows
        os.setpgid(0, 0)  # own process group: a timeout ends what the entry started too
    from micronet_score.organizer.limits import apply_memory_limit, die_with_parent

    die_with_parent(parent_pid, lifeline.fileno())
    from micronet_score.organizer.scoring import score_entry

    limited = apply_memory_limit(memory)
    before = set(sys.modules)
    writer.send_bytes(BEGIN)  # from here on, whatever happens is the entry's doing
    try:
        row = score_entry({**task, "memory_limit": memory if limited else None})
        # the code this process imported, and what the entry's export child reported it ran
        row[CODE_FILES] = {**(row.get(CODE_FILES) or {}), **local_modules_loaded(before, str(task.get("base", ".")))}
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... raised by the entry's code
        detail = " ".join(str(exc).split())[:200]
        row = failure_row(task, f"the entry's code raised {type(exc).__name__}"
                                + (f"({detail})" if detail else "") + " while being scored")
    try:
        payload = json.dumps(row, default=str).encode()
    except (TypeError, ValueError) as exc:
        payload = json.dumps(failure_row(task, f"its row cannot be written as JSON: {exc}"), default=str).encode()
    writer.send_bytes(payload)
    writer.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # nothing the entry registered (atexit, threads) runs after its row is sent


def _kill(process: Any) -> None:
    if process.pid is None:
        return
    for kill in (lambda: os.killpg(process.pid, signal.SIGKILL), process.kill):
        with contextlib.suppress(AttributeError, OSError):
            kill()
    process.join(REAP_SECONDS)


def run_entries(todo: Sequence[tuple[str, Mapping[str, Any]]], on_result: OnResult, *, workers: int = 1,
                timeout: float | None = None, memory: int | None = None) -> int:
    """Score each ``(key, task)`` of ``todo`` in a child process, at most ``workers`` at once, and call
    ``on_result(key, row, stored)`` as each ends. ``timeout``: seconds of wall time per entry (None: none);
    ``memory``: bytes of address space per entry (None: none). Returns the number of rows with ``stored=True``;
    Ctrl-C ends the running children and raises :class:`BoardInterrupted`."""
    from multiprocessing.connection import wait

    pending = deque(todo)
    running: list[_Job] = []
    kept = 0
    ctx = None
    lifeline = None  # (read, write): only this process holds the write end; children see EOF when it dies

    def finish(job: _Job, row: dict[str, Any], stored: bool) -> None:
        nonlocal kept
        running.remove(job)
        row["name"] = str(job.task["entry"].get("name", "?"))  # a child cannot take another entry's name
        on_result(job.key, row, stored)
        kept += stored

    try:
        while pending or running:
            while pending and len(running) < workers:
                key, task = pending.popleft()
                job = None
                reader = writer = None
                try:
                    if ctx is None or lifeline is None:
                        ctx = _context()
                        lifeline = ctx.Pipe(duplex=False)
                    reader, writer = ctx.Pipe(duplex=False)
                    process = ctx.Process(target=_child_main, args=(task, writer, memory, os.getpid(), lifeline[0]),
                                          name=f"micronet-entry-{task['entry'].get('name', '?')}", daemon=False)
                    job = _Job(key, task, process, reader, time.monotonic())
                    running.append(job)
                    process.start()  # the first start also starts the fork server (seconds): not the entry's time
                    job.started = time.monotonic()
                    writer.close()
                except Exception as exc:  # the machinery, not the entry: not stored, retried by a rerun
                    if job is not None:
                        running.remove(job)
                    for end in (reader, writer):
                        if end is not None:
                            end.close()
                    on_result(key, machinery_row(task, f"could not start a process ({type(exc).__name__}: "
                                                       f"{' '.join(str(exc).split())[:200]})"), False)
            if not running:
                continue
            now = time.monotonic()
            wait_for = 1.0
            if timeout is not None:
                wait_for = min(wait_for, max(0.0, min(j.started + timeout for j in running) - now))
            wait([j.reader for j in running if j.row is None and not j.closed]
                 + [j.process.sentinel for j in running], wait_for)
            for job in list(running):
                _step(job, timeout, finish)
    except KeyboardInterrupt:
        for job in running:
            _kill(job.process)
        raise BoardInterrupted(kept, len(running) + len(pending)) from None
    finally:
        for job in running:  # an error of our own: leave no child behind
            _kill(job.process)
        for end in lifeline or ():
            end.close()
    return kept


def _step(job: _Job, timeout: float | None, finish: Callable[[_Job, dict[str, Any], bool], None]) -> None:
    """Look at one running child: its row, its end, or its deadline."""
    if job.row is None and not job.closed and job.reader.poll():
        try:
            data = job.reader.recv_bytes(MAX_ROW_BYTES)
            if data == BEGIN and not job.began:
                job.began = True
                _step(job, timeout, finish)
                return
            row = json.loads(data)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            job.row = row
        except EOFError:  # closed without a row: the process is ending; its exit status tells why
            job.closed = True
        except (OSError, ValueError) as exc:
            _kill(job.process)
            finish(job, failure_row(job.task, f"worker sent an unreadable row ({type(exc).__name__})"), True)
            return
    if job.row is not None:
        job.process.join(REAP_SECONDS)
        if job.process.exitcode is None:
            _kill(job.process)
        finish(job, job.row, True)
        return
    if job.process.exitcode is not None:
        if not job.closed and job.reader.poll():  # the row came with the end
            _step(job, timeout, finish)
            return
        code = job.process.exitcode
        if not job.began:  # ended before the entry's code ran: our failure (an import, a limit too small)
            finish(job, machinery_row(job.task, f"its process {describe_exit(code)} before the entry began"),
                   False)
        elif code < 0 and signal_name(-code) in OUTSIDE_SIGNALS:
            finish(job, machinery_row(job.task, f"its process was stopped from outside ({describe_exit(code)})"),
                   False)
        else:
            finish(job, failure_row(job.task, f"worker died: {describe_exit(code)} before reporting a result"), True)
        return
    if timeout is not None and time.monotonic() - job.started >= timeout:
        _kill(job.process)
        if not job.began:  # the entry's code never ran: an overloaded machine, not the entry
            finish(job, machinery_row(job.task, f"its process did not begin within {timeout:g} s"), False)
            return
        seconds = f"{timeout:g}" if math.isfinite(timeout) else str(timeout)
        finish(job, failure_row(job.task, f"timed out after {seconds} s"), True)
