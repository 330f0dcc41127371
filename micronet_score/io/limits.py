"""Limits on what reading one file may cost, which an organizer can raise.

``max_header_bytes`` bounds the metadata parsed before any tensor is read: a safetensors JSON header, or the
pickle (``data.pkl``) of a torch zip checkpoint. ``max_inflated_bytes`` bounds the bytes decompressed from
deflate-compressed records of a torch zip (``torch.save`` never compresses, so only a re-zipped file has
any). Both are checked against what the file declares before anything is parsed or inflated.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_HEADER_BYTES", "DEFAULT_MAX_INFLATED_BYTES", "Limits"]

DEFAULT_MAX_HEADER_BYTES = 100 << 20
DEFAULT_MAX_INFLATED_BYTES = 256 << 20


@dataclass(frozen=True)
class Limits:
    """The two limits, in bytes. ``Limits(max_inflated_bytes=2 << 30)`` lets 2 GiB be inflated.

    >>> Limits().max_header_bytes == 100 * 2**20
    True
    """

    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED_BYTES

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_inflated_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int (bytes), got {value!r}")
