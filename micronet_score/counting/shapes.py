"""Output shapes computed in Python for the operators models use most, so that counting on the meta device
does not pay for PyTorch's meta kernels (which validate and decompose at length).

Each function receives the call's arguments (all tensors on the meta device) and returns the output like the
real kernel would: a new meta tensor, a tuple of them, or the mutated input for in-place operators. Operators
not listed here run their meta kernel as usual. Views run torch's own view kernels on the meta device (real
strides, faster than Python); elementwise results keep a non-contiguous input's layout, as torch's
``preserve_format`` does; other outputs are contiguous. Each function refuses what the real kernel refuses
(sizes, dimensions, indices, dtypes): a count never prices a forward that cannot run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

aten = torch.ops.aten
ENABLED = True  # tests turn it off to compare against the meta kernels
ShapeFn = Callable[..., Any]
SHAPES: dict[Any, ShapeFn] = {}


_META = torch.device("meta")  # a device object: torch.empty parses a device string on every call


def _empty(shape: Sequence[int], like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    if min(shape, default=0) < 0:
        raise RuntimeError(f"computed output size {tuple(shape)} is negative: the input is too small")
    return torch.empty(shape, dtype=dtype or like.dtype, device=_META)


def _wrap_dim(dim: int, n: int) -> int:
    """``dim`` of an ``n``-d tensor as torch wraps it (a 0-d tensor takes -1 and 0); IndexError, as torch
    raises, outside [-n, n - 1]."""
    m = max(n, 1)
    if not -m <= dim < m:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-m}, {m - 1}], but got {dim})")
    return dim % m


def broadcast_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """The shape two shapes broadcast to (numpy's rule, as ``torch.broadcast_shapes``, which is much slower
    for plain sizes); RuntimeError when they do not broadcast."""
    if a == b:
        return tuple(a)
    n = max(len(a), len(b))
    pa = (1,) * (n - len(a)) + tuple(a)
    pb = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise RuntimeError(f"shapes {tuple(a)} and {tuple(b)} cannot be broadcast together (size {x} "
                               f"against {y})")
    return tuple(out)


def _shape(*ops: Any) -> Callable[[ShapeFn], ShapeFn]:
    def deco(fn: ShapeFn) -> ShapeFn:
        for op in ops:
            if op is not None:
                SHAPES[op] = fn
        return fn

    return deco


def _op(packet: Any, overload: str) -> Any:
    return getattr(packet, overload, None)


def _conv_out(size: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _tuple(value: Sequence[int], n: int) -> list[int]:
    value = list(value)
    return value * n if len(value) == 1 else value


def _conv_checks(x, w, bias, stride, padding, dilation, transposed, output_padding, groups, d) -> None:
    """What the real convolution refuses beyond channels and sizes (ATen's ``check_shape_forward``)."""
    if groups <= 0:
        raise RuntimeError(f"convolution: non-positive groups ({groups}) is not supported")
    if w.shape[0] < groups or w.shape[0] % groups:
        raise RuntimeError(f"convolution: given groups={groups}, expected the weight's dimension 0 (size "
                           f"{w.shape[0]}) to be at least {groups} and divisible by {groups}")
    if min(stride) <= 0 or min(dilation) <= 0 or min(padding) < 0:
        raise RuntimeError(f"convolution: stride {stride} and dilation {dilation} must be positive, padding "
                           f"{padding} non-negative")
    if transposed and any(o >= s and o >= dl for o, s, dl in zip(_tuple(output_padding, d), stride, dilation)):
        raise RuntimeError(f"convolution: output padding {tuple(output_padding)} must be smaller than either "
                           f"stride {stride} or dilation {dilation}")
    if bias is not None:
        channels = w.shape[1] * groups if transposed else w.shape[0]
        if bias.dim() != 1 or bias.shape[0] != channels:
            raise RuntimeError(f"convolution: expected bias to be 1-dimensional with {channels} elements, got "
                               f"{tuple(bias.shape)}")


@_shape(aten.convolution.default)
def convolution(x, w, bias, stride, padding, dilation, transposed, output_padding, groups):
    d = x.dim() - 2
    if x.dim() != w.dim():
        raise RuntimeError(f"convolution: expected a {w.dim()}-d input for a {w.dim()}-d weight, got {tuple(x.shape)}")
    stride, padding, dilation = _tuple(stride, d), _tuple(padding, d), _tuple(dilation, d)
    kernel = w.shape[2:]
    _conv_checks(x, w, bias, stride, padding, dilation, transposed, output_padding, groups, d)
    if transposed:
        if x.shape[1] != w.shape[0]:
            raise RuntimeError(f"convolution: input has {x.shape[1]} channels, weight expects {w.shape[0]}")
        output_padding = _tuple(output_padding, d)
        spatial = [(x.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel[i] - 1)
                   + output_padding[i] + 1 for i in range(d)]
        if min(spatial, default=1) <= 0:
            raise RuntimeError(f"transposed convolution: input {tuple(x.shape)} gives an output of size {spatial}")
        channels = w.shape[1] * groups
    else:
        if x.shape[1] != w.shape[1] * groups:
            raise RuntimeError(f"convolution: input has {x.shape[1]} channels, weight expects {w.shape[1] * groups}")
        spatial = [_conv_out(x.shape[2 + i], kernel[i], stride[i], padding[i], dilation[i]) for i in range(d)]
        if min(spatial, default=1) <= 0:
            raise RuntimeError(f"convolution: input {tuple(x.shape)} is smaller than the kernel")
        channels = w.shape[0]
    return _empty((x.shape[0], channels, *spatial), x)


def _matmul_check(a, b, batched: bool) -> None:
    if not a.dim() == b.dim() == (3 if batched else 2):
        raise RuntimeError(f"matrix product of shapes {tuple(a.shape)}, {tuple(b.shape)}")
    if a.shape[-1] != b.shape[-2]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({'x'.join(map(str, a.shape))} and "
               f"{'x'.join(map(str, b.shape))})")
    if batched and a.shape[0] != b.shape[0]:
        raise RuntimeError(f"batch sizes differ: {a.shape[0]} and {b.shape[0]}")


def _expands(bias: torch.Tensor, out: torch.Tensor) -> None:
    """The added term must expand to the product's shape (it is not broadcast the other way)."""
    if broadcast_shape(bias.shape, out.shape) != tuple(out.shape):
        raise RuntimeError(f"the added tensor of shape {tuple(bias.shape)} cannot expand to the product's shape "
                           f"{tuple(out.shape)}")


@_shape(aten.addmm.default)
def addmm(bias, a, b, **_):
    _matmul_check(a, b, False)
    out = _empty((a.shape[0], b.shape[1]), a)
    _expands(bias, out)
    return out


@_shape(aten.mm.default)
def mm(a, b):
    _matmul_check(a, b, False)
    return _empty((a.shape[0], b.shape[1]), a)


@_shape(aten.bmm.default)
def bmm(a, b):
    _matmul_check(a, b, True)
    return _empty((a.shape[0], a.shape[1], b.shape[2]), a)


@_shape(aten.baddbmm.default)
def baddbmm(bias, a, b, **_):
    _matmul_check(a, b, True)
    out = _empty((a.shape[0], a.shape[1], b.shape[2]), a)
    _expands(bias, out)
    return out


def _like(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A meta tensor of ``x``'s shape laid out as an elementwise result of ``x`` is: contiguous when ``x`` is,
    else with ``x``'s strides when they are dense (a transpose), as torch's ``preserve_format`` does (so a later
    ``view`` fails or works as on real tensors)."""
    if x.is_contiguous():
        return _empty(x.shape, x, dtype)
    return torch.empty_like(x, dtype=dtype or x.dtype, device=_META)


def _same(x, *args, memory_format=None, **kwargs):
    if memory_format is None or memory_format is torch.preserve_format:
        return _like(x)
    return torch.empty(x.shape, dtype=x.dtype, device=_META, memory_format=memory_format)


def _inplace(x, *args, **kwargs):
    return x


for _name in ("relu", "hardtanh", "silu", "sigmoid", "gelu", "hardswish", "hardsigmoid", "tanh", "leaky_relu",
              "elu", "exp", "sqrt", "rsqrt", "neg", "abs", "clone", "erf", "log", "reciprocal", "clamp",
              "clamp_min", "clamp_max"):
    _packet = getattr(aten, _name, None)
    if _packet is not None:
        for _overload in _packet.overloads():
            if _overload in ("default", "Tensor", "Scalar") and "out" not in _overload:
                SHAPES[getattr(_packet, _overload)] = _same
    _inplace_packet = getattr(aten, _name + "_", None)
    if _inplace_packet is not None:
        SHAPES[_inplace_packet.default] = _inplace


def _abs(x):
    """|x|: a complex tensor's magnitudes are real (complex64 -> float32)."""
    return _like(x, x.dtype.to_real())


SHAPES[aten.abs.default] = _abs


def _softmax(x, dim, half_to_float=False):
    _wrap_dim(dim, x.dim())
    return _empty(x.shape, x, torch.float32 if half_to_float and x.dtype is torch.float16 else None)


SHAPES[aten._softmax.default] = _softmax
SHAPES[aten._log_softmax.default] = _softmax
# Views (and the copies reshape makes) run torch's own kernels on the meta device: they only compute sizes and
# strides, faster than a Python shape function, and their outputs are real views with real strides, so a
# ``view`` of a transposed tensor fails here as it fails on real tensors.
for _op in (aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.t.default, aten.transpose.int,
            aten.permute.default, aten.unsqueeze.default, aten.squeeze.dim, aten.squeeze.default, aten.expand.default,
            aten.slice.Tensor, aten.select.int, aten.detach.default, aten.alias.default):
    SHAPES[_op] = _op


def _broadcast(a, b):
    if isinstance(b, torch.Tensor):
        shape = broadcast_shape(a.shape, b.shape)
        dtype = a.dtype if a.dtype is b.dtype else torch.result_type(a, b)
        for t in (a, b):  # the first operand of the result's shape sets its layout, as torch's iterator does
            if tuple(t.shape) == shape:
                return _like(t, dtype)
        return _empty(shape, a, dtype)
    return _like(a, torch.result_type(a, b))


for _name in ("add", "sub", "mul", "div"):
    _packet = getattr(aten, _name)
    SHAPES[_packet.Tensor] = lambda a, b, **kw: _broadcast(a, b)
    SHAPES[_packet.Scalar] = lambda a, b, **kw: _broadcast(a, b)
    SHAPES[getattr(aten, _name + "_").Tensor] = _inplace
    SHAPES[getattr(aten, _name + "_").Scalar] = _inplace


def _norm_channels(x, weight, mean) -> None:
    if x.dim() < 2:
        raise RuntimeError(f"batch norm needs a batch and channels, got {tuple(x.shape)}")
    for t in (weight, mean):
        if isinstance(t, torch.Tensor) and t.numel() != x.shape[1]:
            raise RuntimeError(f"batch norm over {x.shape[1]} channels with {t.numel()} parameters")


def _batch_norm(x, weight=None, bias=None, mean=None, *args, **kwargs):
    _norm_channels(x, weight, mean)
    channels = x.shape[1]
    return _empty(x.shape, x), _empty((channels,), x), _empty((channels,), x)


def _batch_norm_no_training(x, weight=None, bias=None, mean=None, *args, **kwargs):
    _norm_channels(x, weight, mean)
    return _empty(x.shape, x), _empty((0,), x), _empty((0,), x)


SHAPES[aten.native_batch_norm.default] = _batch_norm
SHAPES[aten._native_batch_norm_legit_no_training.default] = _batch_norm_no_training


@_shape(aten.native_layer_norm.default)
def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if tuple(x.shape[x.dim() - len(normalized_shape):]) != tuple(normalized_shape):
        raise RuntimeError(f"layer norm over {tuple(normalized_shape)} of an input {tuple(x.shape)}")
    stat = (*x.shape[: x.dim() - len(normalized_shape)], *([1] * len(normalized_shape)))
    return _empty(x.shape, x), _empty(stat, x), _empty(stat, x)


def _reduced(x, dims, keepdim=False, dtype=None):
    if dims is None or (isinstance(dims, Sequence) and len(dims) == 0):
        dims = list(range(x.dim()))
    wrapped = [_wrap_dim(d, x.dim()) for d in (dims if isinstance(dims, Sequence) else [dims])]
    dims = set(wrapped)
    if len(dims) != len(wrapped):
        raise RuntimeError(f"a dim appears multiple times in the list of dims {list(wrapped)}")
    shape = [1 if i in dims else s for i, s in enumerate(x.shape)] if keepdim else \
        [s for i, s in enumerate(x.shape) if i not in dims]
    return _empty(shape, x, dtype)


SHAPES[aten.mean.dim] = lambda x, dims, keepdim=False, dtype=None: _reduced(x, dims, keepdim, dtype)
SHAPES[aten.sum.dim_IntList] = lambda x, dims, keepdim=False, dtype=None: _reduced(x, dims, keepdim, dtype)


def _pool_out(x, kernel, stride, padding, dilation, ceil_mode, d):
    kernel = _tuple(kernel, d)
    stride = _tuple(stride, d) if stride else kernel
    padding = _tuple(padding, d)
    dilation = _tuple(dilation, d)
    if x.dim() not in (d + 1, d + 2) or min(x.shape[1:], default=1) <= 0:
        raise RuntimeError(f"pooling: expected a {d + 1}-d or {d + 2}-d input with positive sizes, got {tuple(x.shape)}")
    for k, st, p, dl in zip(kernel, stride, padding, dilation):  # ATen's pool2d_shape_check
        if k <= 0 or st <= 0 or dl <= 0 or p < 0:
            raise RuntimeError(f"pooling: kernel {kernel}, stride {stride} and dilation {dilation} must be positive, "
                               f"padding {padding} non-negative")
        if p > k // 2 or p > ((k - 1) * dl + 1) // 2:
            raise RuntimeError(f"pooling: pad should be at most half of the (effective) kernel size, got padding "
                               f"{padding}, kernel {kernel}, dilation {dilation}")
    spatial = []
    for i in range(d):
        size = x.shape[x.dim() - d + i]
        numerator = size + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1
        out = (numerator + (stride[i] - 1 if ceil_mode else 0)) // stride[i] + 1
        if ceil_mode and (out - 1) * stride[i] >= size + padding[i]:
            out -= 1
        spatial.append(out)
    return (*x.shape[: x.dim() - d], *spatial)


@_shape(aten.max_pool2d_with_indices.default)
def max_pool2d(x, kernel, stride=(), padding=(0,), dilation=(1,), ceil_mode=False):
    shape = _pool_out(x, kernel, stride, padding, dilation, ceil_mode, 2)
    if min(shape[-2:], default=1) <= 0:
        raise RuntimeError(f"max pool: input {tuple(x.shape)} is smaller than the window")
    return _empty(shape, x), _empty(shape, x, torch.int64)


@_shape(aten.avg_pool2d.default)
def avg_pool2d(x, kernel, stride=(), padding=(0,), ceil_mode=False, count_include_pad=True, divisor=None):
    shape = _pool_out(x, kernel, stride, padding, (1,), ceil_mode, 2)
    if min(shape[-2:], default=1) <= 0:
        raise RuntimeError(f"avg pool: input {tuple(x.shape)} is smaller than the window")
    return _empty(shape, x)


@_shape(aten._adaptive_avg_pool2d.default)
def adaptive_avg_pool2d(x, output_size):
    return _empty((*x.shape[:-2], *_tuple(output_size, 2)), x)


@_shape(aten.cat.default)
def cat(tensors, dim=0):
    kept = [t for t in tensors if not (t.dim() == 1 and t.shape[0] == 0)]  # legacy empty tensors are skipped
    if not kept:
        return _empty((0,), tensors[0])
    tensors = kept
    first = tensors[0]
    if first.dim() == 0:
        raise RuntimeError("zero-dimensional tensor cannot be concatenated")
    dim = _wrap_dim(dim, first.dim())
    rest = first.shape[:dim] + first.shape[dim + 1:]
    for t in tensors[1:]:
        if t.dim() != first.dim() or t.shape[:dim] + t.shape[dim + 1:] != rest:
            raise RuntimeError(f"cat: sizes of tensors must match except in dimension {dim}: {tuple(first.shape)} "
                               f"and {tuple(t.shape)}")
    shape = list(first.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return _empty(shape, first)


@_shape(aten._to_copy.default)
def to_copy(x, dtype=None, **_):
    return _empty(x.shape, x, dtype)


def _fake_quant_with_mask(x, *args, **kwargs):
    return _empty(x.shape, x), _empty(x.shape, x, torch.bool)


for _name in ("fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine",
              "_fake_quantize_learnable_per_tensor_affine", "_fake_quantize_learnable_per_channel_affine"):
    _packet = getattr(aten, _name, None)
    if _packet is not None:
        for _overload in _packet.overloads():
            SHAPES[getattr(_packet, _overload)] = _same
for _name in ("fake_quantize_per_tensor_affine_cachemask", "fake_quantize_per_channel_affine_cachemask",
              "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams", "_fused_moving_avg_obs_fq_helper"):
    _packet = getattr(aten, _name, None)
    if _packet is not None:
        for _overload in _packet.overloads():
            SHAPES[getattr(_packet, _overload)] = _fake_quant_with_mask


# ------------------------------------------------------------------------------------------- dtype checks
# On the meta device torch checks shapes but not dtypes: a float64 input into float32 convolution weights runs
# there, while the real kernel refuses it. A count must not price a forward that cannot run, so the operators
# that combine activations with weights check their operands' dtypes as the CPU and CUDA kernels do (measured
# against them in tests/counting/test_shapes_dtypes.py): products need one dtype; norms accept a float16 or
# bfloat16 input with float32 parameters (mixed precision), else one dtype.
_REDUCED = (torch.float16, torch.bfloat16)


def _dtype_error(name: str, x: torch.Tensor, w: torch.Tensor) -> RuntimeError:
    return RuntimeError(f"{name}: an input of dtype {x.dtype} with weights of dtype {w.dtype}, which the real kernel "
                        f"refuses; convert the input with .to({w.dtype}) or the model with .to({x.dtype})")


def _one_dtype(name: str, args: tuple, positions: tuple[int, ...]) -> torch.Tensor | None:
    """The first floating tensor among ``args[positions]``, after checking the others share its dtype."""
    first = None
    for i in positions:
        t = args[i] if i < len(args) else None
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            if first is None:
                first = t
            elif t.dtype is not first.dtype:
                raise _dtype_error(name, first, t)
    return first


def _same_dtype(name: str, positions: tuple[int, ...]) -> Callable[[tuple], None]:
    def check(args: tuple) -> None:
        _one_dtype(name, args, positions)
    return check


def _norm_dtype(name: str, params: tuple[int, ...]) -> Callable[[tuple], None]:
    def check(args: tuple) -> None:
        x, first = args[0], _one_dtype(name, args, params)
        if first is not None and x.dtype is not first.dtype and \
                not (x.dtype in _REDUCED and first.dtype is torch.float32):
            raise _dtype_error(name, x, first)
    return check


DTYPE_CHECKS: dict[Any, Callable[[tuple], None]] = {
    aten.convolution.default: _same_dtype("convolution", (0, 1, 2)),
    aten.addmm.default: _same_dtype("addmm", (0, 1, 2)),
    aten.mm.default: _same_dtype("mm", (0, 1)),
    aten.bmm.default: _same_dtype("bmm", (0, 1)),
    aten.baddbmm.default: _same_dtype("baddbmm", (0, 1, 2)),
    aten.native_batch_norm.default: _norm_dtype("batch norm", (1, 2, 3, 4)),
    aten._native_batch_norm_legit_no_training.default: _norm_dtype("batch norm", (1, 2, 3, 4)),
    aten.native_layer_norm.default: _norm_dtype("layer norm", (2, 3)),
    aten.native_group_norm.default: _norm_dtype("group norm", (1, 2)),
}


def check_dtypes(func: Any, args: tuple) -> None:
    """Raise what the real kernel would for operands of dtypes it refuses (see ``DTYPE_CHECKS``)."""
    check = DTYPE_CHECKS.get(func)
    if check is not None:
        check(args)


def pure(func: Any) -> ShapeFn | None:
    """The table's function for ``func`` when it reads only its arguments' shapes and dtypes and returns new
    meta tensors, so real tensors (weights) may be passed as they are; None for in-place operators and
    operators the table does not list."""
    fn = SHAPES.get(func) if ENABLED else None
    return None if fn is _inplace else fn


def compute(func: Any, args: tuple, kwargs: dict) -> Any:
    """The output of ``func`` on meta ``args`` from the table, or NotImplemented."""
    fn = SHAPES.get(func)
    if fn is None:
        return NotImplemented
    return fn(*args, **kwargs)
