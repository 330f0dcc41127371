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
from typing import Any

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


def measure(t: torch.Tensor, policy: str = "cheaper", nonzeros: int | None = None,
            finite: bool | None = None) -> StorageStats:
    """Count non-zeros and kept blocks of ``t`` (nothing for meta tensors); ``nonzeros`` and ``finite`` may be
    passed in when already known."""
    numel = t.numel()
    if t.is_meta:
        return StorageStats(numel, None)
    if t.is_quantized:
        t = integer_values(t)
    if finite is None:
        finite = is_finite(t)
    if nonzeros is None:
        nonzeros = count_nonzero(t, finite=finite)
    if nonzeros == numel or numel == 0:
        return StorageStats(numel, nonzeros, (), finite)
    options = [SparseOption((1, 1), nonzeros, numel)]
    # A block bitmask stores at least the non-zeros and one bit per block of at most 256 values, so it can only
    # beat dense storage (at up to 64 bits a value) when zeros * 64 > numel / 256: skip the search otherwise.
    if policy == "cheaper" and t.dim() >= 2 and (numel - nonzeros) * 64 * 256 > numel:
        options.extend(_block_options(t.reshape(t.shape[0], -1) != 0))
    return StorageStats(numel, nonzeros, tuple(options), finite)


def _block_options(mask: torch.Tensor) -> list[SparseOption]:
    """Kept blocks for every candidate shape of a (rows, cols) boolean mask.

    Along a row, blocks of 2, 4 and 8 neighbours are read at once by viewing the mask's bytes as int16, int32
    and int64 (a block is kept when its word is not zero); 16 pairs two int64 words. Rows are merged by
    or-ing pairs of rows. No reduction kernel runs except the final counts.
    """
    rows, cols = mask.shape
    data = mask.contiguous().view(torch.uint8)
    by_cols: dict[int, torch.Tensor] = {1: mask}
    for width, dtype in ((2, torch.int16), (4, torch.int32), (8, torch.int64)):
        if cols % width:
            break
        by_cols[width] = data.view(dtype) != 0
    if 8 in by_cols and cols % 16 == 0:
        by_cols[16] = by_cols[8].contiguous().view(torch.uint8).view(torch.int16) != 0
    options = []
    for bc, level in by_cols.items():
        if (1, bc) in BLOCK_CANDIDATES and not (rows == 1 and bc == cols):
            options.append(SparseOption((1, bc), int(level.sum()) * bc, rows * (cols // bc)))
        height, current = 1, level
        while height < 16 and rows % (height * 2) == 0:
            pairs = current.reshape(rows // (height * 2), 2, cols // bc)
            current = pairs[:, 0] | pairs[:, 1]
            height *= 2
            if (height, bc) in BLOCK_CANDIDATES and not (height == rows and bc == cols):
                kept = int(current.sum())
                options.append(SparseOption((height, bc), kept * height * bc, (rows // height) * (cols // bc)))
    return options


def probe(t: torch.Tensor) -> tuple[bool, bool]:
    """(no zero in ``t``, no NaN/Inf in ``t``) from two reads and no temporary: a count of non-zeros (fast on
    dense weights, the common case) and the finiteness sum."""
    if t.numel() == 0:
        return True, True
    finite = is_finite(t)
    if t.numel() <= 1 << 16:
        return bool(torch.count_nonzero(t) == t.numel()), finite
    # a sample first: on a pruned weight torch.count_nonzero is slow (unpredictable branches), and a zero in
    # the first slice already says "not dense"
    head = t.reshape(-1)[: 1 << 16]
    if bool(torch.count_nonzero(head) != head.numel()):
        return False, finite
    return bool(torch.count_nonzero(t) == t.numel()), finite


def is_finite(t: torch.Tensor) -> bool:
    """No NaN or Inf in ``t``: one fast sum, with an exact check only when the sum is not finite."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    if bool(torch.isfinite(t.sum(dtype=torch.float32))):
        return True
    return bool(torch.isfinite(t).all())


def count_nonzero(t: torch.Tensor, dim: int | None = None, finite: bool = True) -> Any:
    """Non-zeros of ``t`` (an int), or per index along ``dim`` (an int64 tensor).

    Branch-free and in cache-sized chunks: |sign(x)| summed over slices of about 256K values, which is several
    times faster than ``torch.count_nonzero`` on weights whose zeros are scattered and never allocates a
    temporary as large as the weight. Falls back to the exact comparison when ``t`` holds NaN (torch's
    sign(NaN) is 0, yet NaN is not zero).
    """
    if dim is None:
        return int(count_nonzero(t.reshape(1, -1) if t.dim() else t.reshape(1, 1), 0, finite).sum())
    matrix = t.movedim(dim, 0).reshape(t.shape[dim], -1) if t.dim() > 1 else t.reshape(-1, 1)
    rows, length = matrix.shape
    exact = torch.float64 if length >= 2**24 else torch.float32
    branch_free = finite and (t.is_floating_point() or t.dtype in _INTEGER)
    counts = torch.empty(rows, dtype=torch.int64, device=t.device)
    step = max(1, (1 << 18) // max(length, 1))
    for start in range(0, rows, step):
        part = matrix[start:start + step]
        if branch_free:
            counts[start:start + step] = part.sign().abs_().sum(dim=1, dtype=exact).to(torch.int64)
        else:
            counts[start:start + step] = (part != 0).sum(dim=1)
    return counts


_INTEGER = {torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64}


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
