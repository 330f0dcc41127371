"""Keeping a scan's resident memory near one chunk: file pages handed back to the kernel as they are counted."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from typing import Any

import torch

__all__ = ["PageReleaser"]

class PageReleaser:
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
