"""What a stored tensor is to the operator that reads it: a weight, a vector, or a mask/index.

The storage rules (spec sections 2-3) price a *weight*, the multiplied operand of a conv, linear, matmul
(mm/bmm/einsum...) or an embedding table, in the cheaper of dense and the official sparse format; every other
stored tensor (bias, norm parameter, scale, a positional table that is added, a mask) is a *vector*: dense,
its zeros are stored values. The tracer asks :func:`operand_role` for each stored operand of an operator
that reads input-dependent values. Where it cannot tell (an operator without a cost function), the answer is
``None`` and :func:`micronet_score.counting.storage.infer_role` decides from the tensor alone (two or more
dimensions: a weight), the interim rule kept only for those.

The 16-bit freebie is lost only by quantizing *values* below 16 bits (spec section 3). A boolean tensor, or an
integer tensor that is not a multiplied weight operand (a causal mask, token ids, an index buffer), is a mask
or an index, not a quantized value: :func:`is_value` says so, and it is stored at its own width.

>>> import torch
>>> aten = torch.ops.aten
>>> w, b, x = torch.ones(4, 3), torch.zeros(4), torch.ones(2, 3)
>>> operand_role(aten.addmm.default, (b, x, w.t()), b)[0], operand_role(aten.addmm.default, (b, x, w), w)[0]
('vector', 'weight')
>>> operand_role(aten.add.Tensor, (x, w), w)
('vector', 'added by aten.add, not multiplied')
>>> is_value(torch.ones(3, 3, dtype=torch.bool), "vector"), is_value(torch.ones(3), "vector")
(False, True)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from micronet_score.counting.registry import is_free, lookup, op_name

aten = torch.ops.aten


def _packets(names: Iterable[str]) -> list[Any]:
    return [getattr(aten, n) for n in names if hasattr(aten, n)]


# Operators whose listed argument positions are multiplied (their other tensor arguments are added: biases).
_MULTIPLIED: dict[Any, tuple[int, ...]] = {}
for _names, _positions in (
    (("convolution", "_convolution", "convolution_overrideable", "conv1d", "conv2d", "conv3d",
      "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "cudnn_convolution",
      "cudnn_convolution_transpose", "mkldnn_convolution", "_convolution_mode", "conv_tbc"), (0, 1)),
    (("mm", "bmm", "matmul", "_int_mm", "mv", "dot", "vdot", "linear", "bilinear", "_scaled_mm",
      "_weight_int8pack_mm", "_weight_int4pack_mm", "_grouped_mm", "tensordot", "inner", "outer", "ger", "kron"), (0, 1)),
    (("addmm", "baddbmm", "addbmm", "addmv", "addr", "_addmm_activation"), (1, 2)),
    (("_trilinear",), (0, 1, 2)),  # nn.Bilinear: x1, its weight and x2 all multiplied
    (("embedding", "embedding_bag", "_embedding_bag", "_embedding_bag_forward_only", "index_select"), (0,)),
):
    for _p in _packets(_names):
        _MULTIPLIED[_p] = _positions
_MULTIPLIED[aten.index] = (0,)  # table[ids]: a lookup table, an embedding written with indexing

# Operators that take their weights in a list (recurrent layers, einsum): a matrix there is multiplied, a
# vector is a bias.
_MATRIX_OPERANDS = set(_packets((
    "einsum", "lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell",
    "mkldnn_rnn_layer", "mkldnn_rnn", "_thnn_fused_lstm_cell", "_thnn_fused_gru_cell", "cudnn_rnn", "_cudnn_rnn",
    "miopen_rnn", "quantized_lstm_cell", "quantized_gru_cell", "quantized_rnn_tanh_cell",
    "quantized_rnn_relu_cell", "_scaled_dot_product_attention_math", "scaled_dot_product_attention",
)))


def _position(args: tuple[Any, ...], t: torch.Tensor) -> int | None:
    for i, a in enumerate(args):
        if a is t:
            return i
        if isinstance(a, (list, tuple)) and any(x is t for x in a):
            return i
    return None


def operand_role(func: Any, args: tuple[Any, ...], t: torch.Tensor) -> tuple[str | None, str]:
    """(role, why) of the stored tensor ``t`` read by ``func`` with arguments ``args``.

    role is ``"weight"`` (multiplied by a conv/linear/matmul/einsum/recurrent operator, or the table of a
    lookup), ``"vector"`` (anything else an operator with a known cost or a free operator reads) or ``None``
    (an operator the library does not know: the caller falls back to the interim rule)."""
    packet = getattr(func, "overloadpacket", func)
    name = op_name(packet)
    if packet in _MATRIX_OPERANDS:
        if t.dim() >= 2:
            return "weight", f"a matrix multiplied by {name}"
        return "vector", f"a vector added by {name} (bias)"
    positions = _MULTIPLIED.get(packet)
    if positions is not None:
        lookup_op = positions == (0,)
        if _position(args, t) in positions:
            return "weight", (f"the table {name} looks up" if lookup_op else f"the multiplied operand of {name}")
        return "vector", (f"the indices {name} reads" if lookup_op else f"added by {name} (bias)")
    if lookup(packet) is not None or is_free(packet):
        return "vector", f"{'added' if 'add' in name or 'sub' in name else 'read'} by {name}, not multiplied"
    return None, f"read by {name}, which the library does not know"


def packed_role(is_weight: bool) -> tuple[str, str]:
    """Role of the weight or bias unpacked from a quantized layer's packed parameters."""
    return ("weight", "the packed weight of a quantized layer") if is_weight else \
        ("vector", "the packed bias of a quantized layer")


def is_value(t: torch.Tensor, role: str | None) -> bool:
    """Whether ``t`` holds values (weights, scales, tables) whose width may switch the freebie off, rather than
    a mask or indices: booleans never are; plain integer tensors are only when multiplied as a weight."""
    if t.dtype == torch.bool:
        return False
    if t.is_floating_point() or t.is_complex() or t.is_quantized:
        return True
    return role == "weight"
