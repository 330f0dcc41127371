"""Torch-function shortcuts: the library calls models make most, sent to the tracer as the one aten operator
the dispatcher would have produced, without the trip through the dispatcher.

The torch-function mode of a count (:class:`~micronet_score.counting.sdpa.AttentionMode`) sees each library
call before it is decomposed. For the calls below, in their plain form, the operator and arguments the
dispatcher would hand the tracer are known exactly (``F.conv2d(x, w, b, 1, 1)`` becomes
``aten.convolution.default(x, w, b, [1, 1], [1, 1], [1, 1], False, [0, 0], 1)``), so the mode hands them to
the tracer's ``__torch_dispatch__`` itself (:func:`direct`): the tracer runs the same code on the same
operator and arguments, so the count is the same, without the C++ argument parsing, the decomposition and the
dispatch back into Python (about 12 us a call, a tenth of a count of a small DenseNet). Each lowering is
checked against what the dispatcher really produces (``tests/counting/test_shortcuts.py`` records it).

``F.batch_norm`` in inference mode decomposes, in C++, through ``torch.batch_norm`` and
``_batch_norm_impl_index`` into one ``aten.native_batch_norm`` call plus an empty "reserve" tensor that no one
reads: its lowering is that one operator.

A call takes the normal path when anything is unusual: a form not listed (in-place, ``out=``, keywords,
strings for padding, scalars for operands), a tensor that is not a plain CPU or meta tensor (subclasses,
quantized, nested, sparse), or a context that changes what the dispatcher would do (autograd on, autocast,
a functorch transform, another torch-function or dispatch mode besides the count's). Errors are torch's own
or the tracer's, as on the normal path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

ENABLED = True  # tests turn it off to compare against the normal path
aten = torch.ops.aten
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_KEYS = frozenset({"weight", "bias", "training", "momentum", "eps"})
_PYTHON_KEY = torch._C.DispatchKeySet(torch._C.DispatchKey.Python)
_current_level = torch._C._functorch.maybe_current_level


class Lowered(NamedTuple):
    """The operator the dispatcher would produce for a library call, its arguments as the dispatcher passes
    them, and which output the library call returns (None: all of it)."""

    op: Any
    args: tuple
    pick: int | None = None


def autocast_on() -> bool:
    """True inside a ``torch.autocast`` region of any device type."""
    check = getattr(torch._C, "_is_any_autocast_enabled", None)
    if check is not None:
        return bool(check())
    return any(torch.is_autocast_enabled(d) for d in ("cpu", "cuda"))  # pragma: no cover - older torch


def plain_context() -> bool:
    """True when nothing between a library call and the count's dispatch mode would change the operators: no
    autograd, no autocast, no functorch transform, and no mode besides the count's two (called from inside the
    torch-function mode, which torch has taken off its stack while it runs)."""
    return not torch.is_grad_enabled() and torch._C._len_torch_function_stack() == 0 and \
        torch._C._len_torch_dispatch_stack() == 1 and _current_level() is None and not autocast_on()


def _plain(t: Any) -> bool:
    """A plain strided CPU or meta tensor (a Parameter included), not quantized or nested."""
    return type(t) in _PLAIN and (t.is_cpu or t.is_meta) and t.layout is torch.strided and \
        not t.is_quantized and not t.is_nested


def _pair(v: Any) -> list[int] | None:
    """An ``int[2]`` argument as the dispatcher passes it (a list of two ints), or None for anything else."""
    if type(v) is int:
        return [v, v]
    if isinstance(v, (tuple, list)) and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:
        return [v[0], v[1]]
    return None


def _conv2d(args: tuple, kwargs: dict | None) -> Lowered | None:
    """``torch.conv2d(x, w, b, stride, padding, dilation, groups)`` on a batched real input: the dispatcher
    passes ``aten.convolution`` every argument, the defaults filled in."""
    if kwargs or not 2 <= len(args) <= 7:
        return None
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else None
    if not _plain(x) or not _plain(w) or x.dim() != 4 or w.dim() != 4 or x.is_complex() or \
            (b is not None and (not _plain(b) or b.dtype != x.dtype)):  # torch.conv2d checks the bias dtype
        return None
    stride = _pair(args[3]) if len(args) > 3 else [1, 1]
    padding = _pair(args[4]) if len(args) > 4 else [0, 0]
    dilation = _pair(args[5]) if len(args) > 5 else [1, 1]
    groups = args[6] if len(args) > 6 else 1
    if stride is None or padding is None or dilation is None or type(groups) is not int:
        return None
    return Lowered(aten.convolution.default, (x, w, b, stride, padding, dilation, False, [0, 0], groups))


def _batch_norm(args: tuple, kwargs: dict | None) -> Lowered | None:
    """``F.batch_norm`` in inference mode. ``F.batch_norm`` hands a torch-function mode ``(input, running_mean,
    running_var)`` and the keywords ``weight``, ``bias``, ``training``, ``momentum``, ``eps``."""
    if len(args) != 3 or not kwargs or kwargs.keys() != _KEYS or kwargs["training"] is not False:
        return None
    x, mean, var = args
    weight, bias, eps = kwargs["weight"], kwargs["bias"], kwargs["eps"]
    if not _plain(x) or x.dim() < 2 or x.numel() == 0 or not isinstance(eps, float) or eps < 0.0:
        return None
    channels = x.shape[1]
    for t in (mean, var, weight, bias):
        if t is None:
            if mean is None or var is None:
                return None
            continue
        if not _plain(t) or t.dim() != 1 or t.shape[0] != channels:
            return None
    return Lowered(aten.native_batch_norm.default, (x, weight, bias, mean, var, False, kwargs["momentum"], eps), 0)


def _unary(op: Any) -> Callable[[tuple, dict | None], Lowered | None]:
    """A one-tensor function (``torch.relu(x)``, ``x.sigmoid()``)."""
    def lower(args: tuple, kwargs: dict | None) -> Lowered | None:
        if kwargs or len(args) != 1 or not _plain(args[0]):
            return None
        return Lowered(op, (args[0],))
    return lower


def _activation(op: Any) -> Callable[[tuple, dict | None], Lowered | None]:
    """An ``F.*`` activation, which hands a torch-function mode ``(input,)`` and ``inplace``: out of place only."""
    def lower(args: tuple, kwargs: dict | None) -> Lowered | None:
        if len(args) != 1 or not _plain(args[0]) or (kwargs and kwargs != {"inplace": False}):
            return None
        return Lowered(op, (args[0],))
    return lower


def _binary(op: Any) -> Callable[[tuple, dict | None], Lowered | None]:
    """``x + y``, ``x * y`` (and ``torch.add``/``torch.mul``) of two tensors, without ``alpha`` or ``out``."""
    def lower(args: tuple, kwargs: dict | None) -> Lowered | None:
        if kwargs or len(args) != 2 or not _plain(args[0]) or not _plain(args[1]):
            return None
        return Lowered(op, (args[0], args[1]))
    return lower


def _cat(args: tuple, kwargs: dict | None) -> Lowered | None:
    """``torch.cat(tensors, dim)``: the dispatcher passes the tensors as a list and leaves out ``dim`` = 0."""
    if not args or len(args) > 2:
        return None
    dim = args[1] if len(args) > 1 else 0
    if kwargs:
        if len(args) > 1 or kwargs.keys() != {"dim"}:
            return None
        dim = kwargs["dim"]
    tensors = args[0]
    if type(dim) is not int or not isinstance(tensors, (list, tuple)) or not tensors:
        return None
    for t in tensors:
        if not _plain(t):
            return None
    return Lowered(aten.cat.default, (list(tensors), dim) if dim else (list(tensors),))


def _adaptive_avg_pool2d(args: tuple, kwargs: dict | None) -> Lowered | None:
    """``F.adaptive_avg_pool2d(x, 1)`` of a contiguous floating (N, C, H, W) tensor: torch computes it as
    ``x.mean([-1, -2], keepdim=True)``. Left to the normal path: other output sizes, and inputs whose layout
    torch could take for channels-last (it then restrides the result in place)."""
    if kwargs or len(args) != 2 or not _one_by_one(args[1]):
        return None
    x = args[0]
    if not _plain(x) or x.dim() != 4 or not x.is_floating_point() or not x.is_contiguous() or \
            x.shape[1] < 2 or x.shape[2] * x.shape[3] < 2 or x.numel() == 0:
        return None
    return Lowered(aten.mean.dim, (x, [-1, -2], True))


def _one_by_one(size: Any) -> bool:
    """An output size of 1 x 1: ``1``, ``(1, 1)`` or ``[1, 1]`` (ints, not bools or tensors)."""
    if type(size) is int:
        return size == 1
    return isinstance(size, (tuple, list)) and len(size) == 2 and all(type(v) is int and v == 1 for v in size)

LOWERINGS: dict[Any, Callable[[tuple, dict | None], Lowered | None]] = {
    torch.conv2d: _conv2d,
    F.batch_norm: _batch_norm,
    torch.relu: _unary(aten.relu.default),
    torch.Tensor.relu: _unary(aten.relu.default),
    F.relu: _activation(aten.relu.default),
    torch.sigmoid: _unary(aten.sigmoid.default),
    torch.Tensor.sigmoid: _unary(aten.sigmoid.default),
    F.silu: _activation(aten.silu.default),
    torch.add: _binary(aten.add.Tensor),
    torch.Tensor.add: _binary(aten.add.Tensor),
    torch.mul: _binary(aten.mul.Tensor),
    torch.Tensor.mul: _binary(aten.mul.Tensor),
    torch.cat: _cat,
    F.adaptive_avg_pool2d: _adaptive_avg_pool2d,
}
"""torch function -> its lowering: the :class:`Lowered` call for its plain form, None for any other form."""


def lower(func: Any, args: tuple, kwargs: dict | None) -> Lowered | None:
    """The aten call the dispatcher would make for ``func(*args, **kwargs)``, when ``func`` is one of
    :data:`LOWERINGS` in its plain form, in a plain context; else None (the caller runs ``func``)."""
    lowering = LOWERINGS.get(func) if ENABLED else None
    if lowering is None:
        return None
    lowered = lowering(args, kwargs)
    if lowered is None or not plain_context():
        return None
    return lowered


def direct(tracer: Any, lowered: Lowered) -> Any:
    """``lowered`` handed to the tracer's ``__torch_dispatch__`` as the dispatcher would, with the Python
    dispatch key excluded while it runs (as the dispatcher takes the mode off its stack): the operators the
    tracer runs itself are not traced."""
    with torch._C._ExcludeDispatchKeyGuard(_PYTHON_KEY):
        out = tracer.__torch_dispatch__(lowered.op, (), lowered.args, {})
    return out if lowered.pick is None else out[lowered.pick]

