"""Where entries are scored: in this process, in local processes, or on a Dask distributed cluster.

Everything goes through the :class:`concurrent.futures.Executor` interface (``submit`` and futures). These serve
``leaderboard(executor=...)`` and ``--scheduler``; by default the leaderboard runs each entry in its own child
process with limits instead (:mod:`micronet_score.organizer.runner`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

from micronet_score.organizer.errors import SubmissionError


class SerialExecutor(Executor):
    """Runs each submitted call at once, in this process.

    >>> SerialExecutor().submit(pow, 2, 10).result()
    1024
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


class DaskExecutor(Executor):
    """A Dask distributed ``Client`` (at ``address``, or one passed in) behind the Executor interface."""

    def __init__(self, address: str | None = None, client: Any = None) -> None:
        if client is None:
            try:
                from distributed import Client
            except ImportError:
                raise SubmissionError("--scheduler needs dask distributed: pip install "
                                      "'dask[distributed]' (in a clone: pip install -e '.[cluster]')") from None
            try:
                client = Client(address, timeout="30s")
            except Exception as exc:
                raise SubmissionError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None
            self._owned = True
        else:
            self._owned = False
        self.client = client
        self._executor = client.get_executor(pure=False)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait)
        if self._owned:
            self.client.close()


def make_executor(workers: int = 1, scheduler: str | None = None) -> Executor:
    """A Dask executor when ``scheduler`` is given, a process pool when ``workers > 1``, else serial."""
    if scheduler:
        return DaskExecutor(scheduler)
    if workers < 1:
        raise SubmissionError(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        return SerialExecutor()
    import multiprocessing

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
