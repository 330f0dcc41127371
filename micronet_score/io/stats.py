"""What a checkpoint scan found: frozen data, rendered by :mod:`micronet_score.render.checkpoint`."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CheckpointStats", "TensorStats"]


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
    twice by ``torch.save``); such an entry is not read again and is left out of the totals. ``numel`` is the
    tensor's logical size: a stride-0 (expanded) tensor is counted over its storage and multiplied out.
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
    """What :func:`~micronet_score.io.scan.scan_checkpoint` found: one :class:`TensorStats` per entry, in
    file order, and totals.

    ``numel``/``nonzeros``/``bytes_read`` sum the distinct tensors (aliases excluded); ``seconds`` is the wall
    time of the scan; ``source_key`` names the entry the state dict was found under (``"state_dict"``,
    ``"model"`` or ``"model_state_dict"``), ``None`` when the file is the state dict itself.
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
        from micronet_score.render.checkpoint import checkpoint_table

        return checkpoint_table(self)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data: the totals and one entry per tensor."""
        return {
            "path": self.path, "format": self.format, "source_key": self.source_key, "numel": self.numel,
            "nonzeros": self.nonzeros, "density": self.density, "bytes_read": self.bytes_read,
            "file_bytes": self.file_bytes, "seconds": self.seconds,
            "tensors": [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "numel": t.numel,
                         "nonzeros": t.nonzeros, "nbytes": t.nbytes, "alias_of": t.alias_of}
                        for t in self.tensors],
        }
