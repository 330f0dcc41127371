"""How a stored tensor is priced: dense, or sparse as its non-zero values plus a bitmask, whichever is cheaper
at the tensor's bit width; which tensors may be sparse and which bitmask formats are allowed is the
convention's choice (:class:`micronet_score.convention.StoragePolicy`).

The rules (spec sections 1-3): a sparse tensor is stored as its non-zero values plus a bitmask of the full
tensor shape, one bit per element (1/32 of a parameter); that is the default format (``"element"``). A weight
(the multiplied operand of a conv, linear or matmul; an embedding table) is stored in the cheaper of dense and
that format, so a pruned weight is charged exactly as the official counter charges it and a dense weight with a
few zeros stays dense. Biases, norm parameters and other vectors are dense: their zeros are stored values.
With ``sparse_format = "block"`` one bit may cover a block (a 512x128 matrix with 4x4 blocks needs 4,096 bits),
but only where the tensor really is block-sparse: every block all zero or all non-zero. ``"cheapest"`` searches
every candidate block shape and stores the zeros inside kept blocks.

>>> import torch
>>> w = torch.ones(8, 16); w[:, :8] = 0                     # half the weight pruned
>>> priced = price(measure(w), bits=16)
>>> priced.format, priced.values, priced.mask_bits         # 64 non-zeros, one bit for each of 128 elements
('element', 64, 128)
>>> priced.storage                                         # (64 x 16 + 128) / 32
36.0
>>> price(measure(torch.zeros(10)), bits=16).reason        # a bias of zeros stays dense
'dense: a vector (bias, norm parameter); its zeros are stored values'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from micronet_score.convention import SPARSE_FORMATS, ConventionError, StoragePolicy

# Block shapes tried on a (rows, cols) view of a weight; (1, 1) is plain unstructured sparsity.
BLOCK_CANDIDATES: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 1), (2, 2), (1, 4), (4, 1), (4, 4), (1, 8), (8, 1), (8, 8), (1, 16), (16, 1), (16, 16),
)

ROLES = ("weight", "vector")
"""What a stored tensor is: ``"weight"``, the multiplied operand of a conv/linear/matmul or an embedding table
(may be stored sparse); ``"vector"``, a bias, norm parameter, scale or any other tensor (dense)."""

PolicyLike = str | StoragePolicy

# The engine's older policy names, kept so a caller that passes them still gets the official format.
_LEGACY = {"when-zeros": StoragePolicy("element"), "cheaper": StoragePolicy("cheapest")}


_DEFAULT_POLICY = StoragePolicy()


def storage_policy(policy: PolicyLike | None) -> StoragePolicy:
    """A :class:`StoragePolicy` from one, from a sparse format name (``"element"``, ``"block"``,
    ``"cheapest"``; weights only may be sparse) or None (the default, ``"element"``)."""
    if type(policy) is StoragePolicy:
        return policy
    if policy is None:
        return _DEFAULT_POLICY
    if isinstance(policy, StoragePolicy):
        return policy
    if policy in SPARSE_FORMATS:
        return StoragePolicy(policy)
    if policy in _LEGACY:
        return _LEGACY[policy]
    raise ConventionError(f"unknown storage policy {policy!r}: use a sparse format ({', '.join(SPARSE_FORMATS)})"
                          " or a StoragePolicy")


def infer_role(t: torch.Tensor) -> str:
    """The role of ``t`` read from the tensor alone, when the caller does not say: a tensor of two or more
    dimensions is a weight, a scalar or 1-D tensor is a vector (bias, norm parameter).

    The operator engine passes the role of each stored operand (:mod:`micronet_score.counting.roles`); this
    rule is kept only for tensors it cannot classify (read only by an operator without a cost function) and
    for callers that measure a tensor outside a count. It is right for conv/linear/embedding weights and every
    bias and norm vector."""
    return "weight" if t.dim() >= 2 else "vector"


@dataclass(frozen=True)
class SparseOption:
    """One way to store a tensor sparsely: ``block`` shape, values stored (all values of kept blocks) and
    mask bits (one per block)."""

    block: tuple[int, int]
    values: int
    mask_bits: int


@dataclass(frozen=True)
class StorageStats:
    """What the pricing needs to know about one stored tensor. ``options`` is empty when the tensor may not be
    stored sparse (no zero, a vector, a convention that stores nothing sparse): it is then dense."""

    numel: int
    nonzeros: int | None  # None: values unknown (meta tensors)
    options: tuple[SparseOption, ...] = ()
    finite: bool = True
    role: str = "weight"
    sparse_allowed: bool = True  # False: the policy keeps this tensor dense whatever its zeros


@dataclass(frozen=True)
class Priced:
    """The format chosen for a tensor at a given bit width, and why (``reason``, for the report)."""

    values: int  # values stored (zeros of kept blocks included)
    mask_bits: int
    bits: int
    block: tuple[int, int] | None  # None: dense; (1, 1): one mask bit per element
    reason: str = ""

    @property
    def storage(self) -> float:
        """32-bit-equivalent parameters: values * bits / 32 + mask bits / 32."""
        return (self.values * self.bits + self.mask_bits) / 32

    @property
    def format(self) -> str:
        """``"dense"``, ``"element"`` (one mask bit per element) or ``"block"`` (one bit per block)."""
        if self.block is None:
            return "dense"
        return "element" if self.block == (1, 1) else "block"


def measure(t: torch.Tensor, policy: PolicyLike | None = None, nonzeros: int | None = None,
            finite: bool | None = None, role: str | None = None) -> StorageStats:
    """Count non-zeros of ``t`` and, where the policy allows ``t`` to be sparse, its sparse formats (nothing
    for meta tensors). ``nonzeros`` and ``finite`` may be passed in when already known; ``role`` is
    ``"weight"`` or ``"vector"`` (default: :func:`infer_role`)."""
    pol = storage_policy(policy)
    role = infer_role(t) if role is None else role
    if role not in ROLES:
        raise ConventionError(f"unknown tensor role {role!r}; use one of {ROLES}")
    allowed = pol.sparse_tensors == "all" or (pol.sparse_tensors == "weights" and role == "weight")
    numel = t.numel()
    if t.is_meta:
        return StorageStats(numel, None, role=role, sparse_allowed=allowed)
    if t.is_quantized:
        t = integer_values(t)
    if finite is None:
        finite = is_finite(t)
    if nonzeros is None:
        nonzeros = count_nonzero(t, finite=finite)
    if nonzeros == numel or numel == 0 or not allowed:
        return StorageStats(numel, nonzeros, (), finite, role, allowed)
    options = [SparseOption((1, 1), nonzeros, numel)]
    # A block bitmask stores at least the non-zeros and one bit per block of at most 256 values, so it can only
    # beat dense storage (at up to 64 bits a value) when zeros * 64 > numel / 256: skip the search otherwise.
    if pol.sparse_format != "element" and t.dim() >= 2 and (numel - nonzeros) * 64 * 256 > numel:
        blocks = _block_options(t.reshape(t.shape[0], -1) != 0)
        if pol.sparse_format == "block":  # only formats that store no zero: the tensor is block-sparse
            blocks = [o for o in blocks if o.values == nonzeros]
        options.extend(blocks)
    return StorageStats(numel, nonzeros, tuple(options), finite, role, allowed)


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
    """(no zero in ``t``, no NaN/Inf in ``t``), reading ``t`` as few times as possible and allocating nothing
    of its size. Small CPU tensors go through numpy (a torch kernel launch costs more than the work); large
    float32 weights through three reductions that each run at memory speed (see :func:`_probe_float32`)."""
    numel = t.numel()
    if numel == 0:
        return True, True
    array = numpy_view(t)
    if array is not None:  # NaN counts as non-zero and -0.0 as zero, as with t != 0
        if numel <= SMALL:
            return bool(array.all()), _finite_array(array)
        if array.dtype == np.float32:
            dense = _in_memory_order(array)
            if dense is not None:  # zeros and finiteness do not depend on the order the values are read in
                return _probe_float32(t, dense)
        return bool(array.all()), is_finite(t)
    finite = is_finite(t)
    if numel <= 1 << 16:
        return bool(torch.count_nonzero(t) == numel), finite
    # a sample first: on a pruned weight torch.count_nonzero is slow (unpredictable branches), and a zero in
    # the first slice already says "not dense"
    head = t.reshape(-1)[: 1 << 16]
    if bool(torch.count_nonzero(head) != head.numel()):
        return False, finite
    return bool(torch.count_nonzero(t) == numel), finite


#: Up to this many values, numpy's loops beat a torch kernel launch (and a count reads such tensors together).
SMALL = 1 << 14


def _probe_float32(t: torch.Tensor, array: Any) -> tuple[bool, bool]:
    """Zeros and finiteness of a contiguous float32 CPU tensor from its bit patterns, with no temporary:

    - +0.0 is the bit pattern 0, the smallest value of the bits read as unsigned 32-bit integers;
    - -0.0 is 0x80000000, the smallest value of the bits read as signed 32-bit integers;
    - the dot product of ``t`` with itself is finite when every value is (a NaN or Inf makes it NaN or Inf);
      when it is not (also when large finite values overflow it) an exact check decides.

    All three through numpy: on one thread they beat torch's reductions, and at several threads torch's
    would wake its worker threads for every weight (measured slower on a 2-core machine). A large weight is
    read in slices of :data:`CHUNK` values, the three reductions one after the other on each slice, so the
    second and third find it in the CPU cache: one pass over memory instead of three (about a third less time
    on a 2.4M-value weight). Once a slice holds a zero, the rest is only checked for finiteness.
    """
    flat = array.reshape(-1)
    zero_free = True
    finite = True
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing or NaN sum is the signal, not a problem
        for start in range(0, flat.size, CHUNK):
            part = flat[start:start + CHUNK]
            if zero_free:
                zero_free = int(np.minimum.reduce(part.view(np.uint32))) != 0 and \
                    int(np.minimum.reduce(part.view(np.int32))) != -(1 << 31)
            if finite:
                finite = bool(np.isfinite(np.dot(part, part))) or bool(np.isfinite(part).all())
            if not zero_free and not finite:
                break
    return zero_free, finite


#: Values per slice of a large float32 weight's probe: 512 KiB, read three times from the CPU cache.
CHUNK = 1 << 17


def _in_memory_order(array: Any) -> Any:
    """``array`` itself when C-contiguous; for a transpose or permutation of a contiguous block (a linear
    layer's weight seen as ``w.t()``), the same memory with its axes put back in memory order; else None."""
    if array.flags.c_contiguous:
        return array
    order = sorted(range(array.ndim), key=lambda d: array.strides[d], reverse=True)
    permuted = array.transpose(order)
    return permuted if permuted.flags.c_contiguous else None


def _finite_array(array: Any) -> bool:
    if array.dtype.kind != "f":
        return True
    return bool(np.isfinite(array).all())


_NUMPY_DTYPES = {torch.float32, torch.float64, torch.float16, torch.int8, torch.uint8, torch.int16, torch.int32,
                 torch.int64, torch.bool}


def numpy_view(t: torch.Tensor) -> Any:
    """``t`` as a numpy array sharing its memory (plain CPU tensors of numpy's dtypes), else None. numpy's
    ``all`` reads a float weight about twice as fast as ``torch.count_nonzero``.

    Through DLPack, not ``Tensor.numpy()``: ``numpy()`` marks the tensor's storage as not resizable for good,
    which would change the model (an observer that resizes its buffer in forward would then fail)."""
    if type(t) not in _PLAIN_TYPES or not t.is_cpu or t.dtype not in _NUMPY_DTYPES or t.layout != torch.strided:
        return None
    try:
        return np.from_dlpack(t.detach())
    except (RuntimeError, BufferError, TypeError):  # conjugate or negative view bits, exotic strides
        return None


_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)


def is_finite(t: torch.Tensor) -> bool:
    """No NaN or Inf in ``t``: one fast sum, with an exact check only when the sum is not finite."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    if t.numel() <= SMALL:
        array = numpy_view(t)
        if array is not None:
            return _finite_array(array)
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
    small = numpy_view(t) if t.numel() <= SMALL else None
    if dim is None:
        if small is not None:
            return int(np.count_nonzero(small))
        return int(count_nonzero(t.reshape(1, -1) if t.dim() else t.reshape(1, 1), 0, finite).sum())
    matrix = t.movedim(dim, 0).reshape(t.shape[dim], -1) if t.dim() > 1 else t.reshape(-1, 1)
    if small is not None:  # numpy: NaN counts as non-zero, -0.0 as zero (as t != 0)
        return torch.from_numpy(np.count_nonzero(numpy_view(matrix).reshape(matrix.shape), axis=1)
                                .astype(np.int64))
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


def price(stats: StorageStats, bits: int, policy: PolicyLike | None = None) -> Priced:
    """The format that stores ``stats`` at ``bits`` bits per value: dense, or the cheapest sparse option the
    policy allows when it is strictly cheaper (a tie stays dense). The result's ``reason`` says why.

    >>> w = torch.ones(100, 10); w[0, 0] = 0                   # one accidental zero in 1,000 values
    >>> price(measure(w), bits=16).reason
    'dense: cheaper than 999 non-zeros x 16 bits + 1000 mask bits'
    """
    pol = storage_policy(policy)
    dense_bits = stats.numel * bits
    if stats.nonzeros is None:
        return Priced(stats.numel, 0, bits, None, "dense: values unknown (meta tensor), stored as dense")
    if stats.nonzeros == stats.numel or stats.numel == 0:
        return Priced(stats.numel, 0, bits, None, "dense: no zeros")
    if not stats.sparse_allowed or pol.sparse_tensors == "none" or \
            (pol.sparse_tensors == "weights" and stats.role != "weight"):
        why = ("the convention stores nothing sparse" if pol.sparse_tensors == "none" or stats.role == "weight"
               else "a vector (bias, norm parameter); its zeros are stored values")
        return Priced(stats.numel, 0, bits, None, f"dense: {why}")
    allowed = [o for o in stats.options if _allowed(o, pol.sparse_format, stats.nonzeros)]
    if not allowed:
        return Priced(stats.numel, 0, bits, None, "dense: no sparse format of the convention applies")
    best = min(allowed, key=lambda o: (o.values * bits + o.mask_bits, o.block != (1, 1)))
    cost = best.values * bits + best.mask_bits
    what = ("non-zeros" if best.values == stats.nonzeros else "values") + f" x {bits} bits + {best.mask_bits} " \
        + ("mask bits" if best.block == (1, 1) else f"{best.block[0]}x{best.block[1]} block bits")
    if cost >= dense_bits:
        return Priced(stats.numel, 0, bits, None, f"dense: cheaper than {best.values} {what}")
    kind = "element bitmask" if best.block == (1, 1) else f"{best.block[0]}x{best.block[1]} block bitmask"
    return Priced(best.values, best.mask_bits, bits, best.block,
                  f"{kind}: {best.values} {what} < dense {stats.numel} x {bits} bits")


def _allowed(option: SparseOption, sparse_format: str, nonzeros: int) -> bool:
    if option.block == (1, 1):
        return True
    if sparse_format == "block":
        return option.values == nonzeros
    return sparse_format == "cheapest"
