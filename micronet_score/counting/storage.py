"""How a stored tensor is priced: dense, or sparse as its values plus a bitmask (one bit per element, or per
block for block sparsity), whichever is cheaper at the tensor's bit width.

The rules (spec section 1): a sparse tensor is stored as its non-zero values plus a bitmask of the full tensor
shape, one bit per element (1/32 of a parameter); with block sparsity one bit covers a block (a 512x128 matrix
with 4x4 blocks needs 4,096 bits) and every value of a kept block is stored. The format is read from the
tensor: for each candidate block shape over the weight viewed as a matrix (out_channels, everything else) the
kept blocks are counted, and the cheapest format that represents the tensor exactly is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Block shapes tried on a (rows, cols) view of a weight; (1, 1) is plain unstructured sparsity.
BLOCK_CANDIDATES: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 1), (2, 2), (1, 4), (4, 1), (4, 4), (1, 8), (8, 1), (8, 8), (1, 16), (16, 1), (16, 16),
)


@dataclass(frozen=True)
class SparseOption:
    """One way to store a tensor sparsely: ``block`` shape, values stored (all values of kept blocks) and
    mask bits (one per block)."""

    block: tuple[int, int]
    values: int
    mask_bits: int


@dataclass(frozen=True)
class StorageStats:
    """What the pricing needs to know about one stored tensor."""

    numel: int
    nonzeros: int | None  # None: values unknown (meta tensors)
    options: tuple[SparseOption, ...] = ()
    finite: bool = True


@dataclass(frozen=True)
class Priced:
    """The format chosen for a tensor at a given bit width."""

    values: int  # values stored (zeros of kept blocks included)
    mask_bits: int
    bits: int
    block: tuple[int, int] | None  # None: dense

    @property
    def storage(self) -> float:
        """32-bit-equivalent parameters: values * bits / 32 + mask bits / 32."""
        return (self.values * self.bits + self.mask_bits) / 32


def measure(t: torch.Tensor, policy: str = "cheaper", nonzeros: int | None = None) -> StorageStats:
    """Count non-zeros (unless given) and kept blocks of ``t`` (nothing for meta tensors)."""
    numel = t.numel()
    if t.is_meta:
        return StorageStats(numel, None)
    if t.is_quantized:
        t = integer_values(t)
    if nonzeros is None:
        nonzeros = int(torch.count_nonzero(t))
    finite = _finite(t)
    if nonzeros == numel or numel == 0:
        return StorageStats(numel, nonzeros, (), finite)
    options = [SparseOption((1, 1), nonzeros, numel)]
    if policy == "cheaper" and t.dim() >= 2:
        matrix = (t != 0).reshape(t.shape[0], -1)
        rows, cols = matrix.shape
        for br, bc in BLOCK_CANDIDATES:
            if rows % br or cols % bc or (br == rows and bc == cols):
                continue
            kept = int(matrix.reshape(rows // br, br, cols // bc, bc).any(dim=3).any(dim=1).sum())
            options.append(SparseOption((br, bc), kept * br * bc, (rows // br) * (cols // bc)))
    return StorageStats(numel, nonzeros, tuple(options), finite)


def _finite(t: torch.Tensor) -> bool:
    """No NaN or Inf in ``t``: one reduction, with an exact check only when the sum is not finite."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    if bool(torch.isfinite(t.sum(dtype=torch.float64))):
        return True
    return bool(torch.isfinite(t).all())


def integer_values(t: torch.Tensor) -> torch.Tensor:
    """The integers a quantized tensor stores, zero point removed (0 exactly where the real value is 0)."""
    return t.int_repr().to(torch.int32) - _zero_point(t)


def _zero_point(t: torch.Tensor) -> torch.Tensor | int:
    if t.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return int(t.q_zero_point())
    zp = t.q_per_channel_zero_points()
    shape = [1] * t.dim()
    shape[t.q_per_channel_axis()] = -1
    return zp.reshape(shape)


def price(stats: StorageStats, bits: int, policy: str = "cheaper") -> Priced:
    """The format that stores ``stats`` at ``bits`` bits per value.

    ``policy``: ``"cheaper"`` picks the cheapest of dense and the sparse options (block ones included);
    ``"when-zeros"`` stores any tensor with a zero as values plus a one-bit-per-element mask (the official
    counter's rule); ``"nonzeros-only"`` stores only the non-zeros and no mask (course conventions that
    ignore the mask cost).
    """
    dense = Priced(stats.numel, 0, bits, None)
    if stats.nonzeros is None or not stats.options:
        return dense
    if policy == "nonzeros-only":
        return Priced(stats.nonzeros, 0, bits, None)
    if policy == "when-zeros":
        return Priced(stats.nonzeros, stats.numel, bits, (1, 1))
    best = dense
    for option in stats.options:
        candidate = Priced(option.values, option.mask_bits, bits, option.block)
        if candidate.storage < best.storage:
            best = candidate
    return best
