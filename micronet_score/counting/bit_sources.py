"""Bit sources: where the width of a value comes from. A stored tensor's width is the user's setting, a
fake-quantization range or its dtype; an activation's the user's setting, the fake quant that produced it, or
its dtype. The operators that set or keep widths are registered here as kinds of registry entry.
"""

from __future__ import annotations

from typing import Any

import torch

from micronet_score.bits import Precision, dtype_bits, range_bits
from micronet_score.counting.registry import (
    CostEntry,
    FakeQuantEntry,
    aten,
    is_dequantize,
    register_dequantize,
    register_fake_quant,
    register_same_values,
)
from micronet_score.counting.walk import out_tensors

for _name, (_qmin, _qmax, _enabled) in {
    "fake_quantize_per_tensor_affine": (3, 4, None),
    "fake_quantize_per_tensor_affine_cachemask": (3, 4, None),
    "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams": (4, 5, 3),
    "fake_quantize_per_channel_affine": (4, 5, None),
    "fake_quantize_per_channel_affine_cachemask": (4, 5, None),
    "_fake_quantize_learnable_per_tensor_affine": (3, 4, None),
    "_fake_quantize_learnable_per_channel_affine": (4, 5, None),
    "_fused_moving_avg_obs_fq_helper": (8, 9, 2),
}.items():
    if hasattr(aten, _name):
        register_fake_quant(getattr(aten, _name), _qmin, _qmax, _enabled)
register_dequantize(aten.dequantize)
# Views, copies and layout changes; and parts of a stored tensor (stored whole, once, however it is sliced). A
# Linear weight is stored as (out, in), not as its transpose.
register_same_values(*(getattr(aten, n) for n in (
    "t", "transpose", "permute", "view", "_unsafe_view", "reshape", "_reshape_alias", "expand", "unsqueeze",
    "squeeze", "alias", "detach", "clone", "contiguous", "as_strided", "lift_fresh", "_to_copy", "flatten",
    "slice", "select", "narrow", "split", "split_with_sizes", "unbind", "chunk", "diagonal",
) if hasattr(aten, n)))


def fake_quant_bits(args: tuple, entry: FakeQuantEntry) -> int | None:
    """Width a fake-quant call produces: from its quant range; None when it is disabled or the range is absent."""
    if entry.enabled is not None and entry.enabled < len(args):
        flag = args[entry.enabled]
        if isinstance(flag, torch.Tensor) and not flag.is_meta and not bool(flag.reshape(-1)[0]):
            return None
    if entry.qmax >= len(args):
        return None
    return range_bits(int(args[entry.qmin]), int(args[entry.qmax]))


class BitSources:
    """Mixin of the tracer: the width of operands and outputs. Relies on taint tracking and stored tensors."""

    precision_of: Any  # module name -> Precision | None
    user_bits: bool  # False when the count has no bits= (precision_of always None)
    tensor_names: dict[int, str]
    _model_tensors: dict[int, torch.Tensor]
    _model_bits: dict[str, int]
    activation_widths: set[int]

    def _precision(self, module: str) -> Precision | None:
        return self.precision_of(module)

    def stored_bits(self, t: torch.Tensor, info: Any, owner: str) -> int:
        """Width of a stored tensor: the user's weight width for its module, a fake-quant width, its dtype's."""
        user = self._precision(owner)
        if user is not None and user.weight is not None:
            return user.weight
        if info.bits is not None:
            return info.bits
        return dtype_bits(t.dtype)

    def tensor_bits(self, t: torch.Tensor, module: str) -> int:
        """Width of an operand of an operator running in ``module``."""
        dep = self.dep.get(t)
        if dep is not None:
            if self.user_bits:
                user = self._precision(module)
                if user is not None and user.activation is not None:
                    return user.activation
            bits = dep[1]
            return bits if bits is not None else dtype_bits(t.dtype)
        name = self.tensor_names.get(id(t))
        if name is not None and self._model_tensors.get(id(t)) is t:
            if not self.user_bits:  # a parameter or buffer as stored has no fake-quant width: its dtype's
                return dtype_bits(t.dtype)
            bits = self._model_bits.get(name)  # a parameter or buffer: the same width all through the count
            if bits is None:
                info = self._static_info(t)
                bits = self._model_bits[name] = self.stored_bits(t, info, self._owner(info.sources))
            return bits
        info = self._static_info(t)
        if info is not None and info.root is not None and info.bits is None:
            root_info = self._static_info(info.root)
            if root_info is not None:
                t, info = info.root, root_info
        if info is not None and info.sources:
            entry = self.stored.get(self._key(t, info))
            return entry.bits if entry is not None else self.stored_bits(t, info, self._owner(info.sources))
        if info is not None and info.bits is not None:
            return info.bits
        return dtype_bits(t.dtype)

    def _note_quantized_inputs(self, tensors: list[torch.Tensor], module: str) -> None:
        """Remember the widths of quantized activations (fake-quant ranges, quantized dtypes, user settings):
        any below 16 bits means the model is quantized and the 16-bit freebie is off."""
        user = self._precision(module) if self.user_bits else None
        for t in tensors:
            dep = self.dep.get(t)
            if dep is None:
                continue
            if user is not None and user.activation is not None:
                self.activation_widths.add(user.activation)
            elif dep[1] is not None:
                self.activation_widths.add(dep[1])
            elif t.is_quantized:
                self.activation_widths.add(dtype_bits(t.dtype))

    def _output_bits(self, func: Any, tensors: list[torch.Tensor], infos: list[tuple[int, int | None] | None],
                     entry: CostEntry | None, fq: FakeQuantEntry | None, args: tuple, out: Any,
                     moved: bool, written: Any) -> int | None:
        """Width of an input-dependent operator's outputs (None: their dtype's). ``moved``: the operator only
        moved values (a free operator, or an indexed write that combined nothing); ``written(t)`` says whether
        the operator replaces every value of its argument ``t`` (None: it writes into none, or into a part)."""
        if fq is not None:
            return fake_quant_bits(args, fq)
        if is_dequantize(func) and tensors:
            return dtype_bits(tensors[0].dtype)
        if entry is not None and not moved:
            return None  # arithmetic produces values in its output dtype
        return self._moved_bits(tensors, infos, out, written)

    def _kept_bits(self, bits: int, t: torch.Tensor) -> int | None:
        """Width of ``t`` after ``bits``-wide values were written into a part of it: the wider of the written
        values and those it kept (None: its dtype's)."""
        kept = self.tensor_bits(t, self.stack[-1])
        return None if kept >= dtype_bits(t.dtype) else max(bits, kept)

    def _moved_bits(self, tensors: list[torch.Tensor], infos: list[tuple[int, int | None] | None], out: Any,
                    written: Any) -> int | None:
        """Width of values an operator moves without arithmetic (views, copies, concatenations, indexed writes):
        the widest of the values it reads (spec section 2: the width of a value is what produced it).

        - an input-dependent floating-point operand brings its width, or its dtype's when it has none (then the
          output has its dtype's too: a concatenation of 8-bit and 32-bit values holds 32-bit values);
        - a stored tensor (a parameter, a buffer, what weight preprocessing made of them) brings its stored
          width, unless the operator replaces all of its values (the destination of ``copy_``; an indexed write
          such as ``index_put_`` keeps the values it does not reach, so its destination brings its width);
        - integer and boolean operands (indices, masks) and constants made in forward bring nothing.

        None when nothing brings a width below the output's dtype's."""
        widest = 0
        module = self.stack[-1]
        for t, info in zip(tensors, infos):
            if not t.is_floating_point():
                continue
            if info is not None:
                if info[1] is None:
                    return None
                bits = info[1]
            else:
                static = self._static_info(t)
                if static is None or not static.sources or (written is not None and written(t)):
                    continue
                bits = self.tensor_bits(t, module)
            if bits > widest:
                widest = bits
        first = out if isinstance(out, torch.Tensor) else next(iter(out_tensors(out)), None)
        if not widest or (first is not None and widest >= dtype_bits(first.dtype)):
            return None
        return widest
