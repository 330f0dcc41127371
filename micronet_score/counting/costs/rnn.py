"""Recurrent layers (LSTM, GRU, plain RNN), per time step and example, from their equations (spec section 3).

Notation: input size I, hidden size H, recurrent state size S (S = H, or the projection size P of an LSTM with
``proj_size``), x the step's input, h the previous state. A gate row is one row of W_ih (length I) and the same
row of W_hh (length S): two dot products joined by one addition, I + S mults and I + S - 1 adds, plus one add
for each bias present (b_ih and b_hh are separate tensors in PyTorch and both are added). Nonlinearities cost
what spec section 3 says: sigmoid 2 mults + 1 add, tanh 1 op (a mult), ReLU 1 mult.

LSTM (4H gate rows)::

    i, f, g, o = sigmoid(.), sigmoid(.), tanh(.), sigmoid(.)   # 3 sigmoids + 1 tanh: 7 mults, 3 adds per unit
    c' = f * c + i * g                                         # 2 mults, 1 add
    h' = o * tanh(c')                                          # 2 mults (tanh and the product)
    h' = W_hr h'                                               # with proj_size: P * H mults, P * (H - 1) adds

  per step: mults 4H(I + S) + 11H (+ PH); adds 4H(I + S) + 4H (+ 4H per bias) (+ P(H - 1)). The dense
  LSTM with both biases: 4H(I + H) + 11H mults and 4H(I + H) + 8H adds.

GRU (3H gate rows; the n row's two halves are joined after r multiplies the hidden half)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)                 # sigmoids: 2 x (2 mults + 1 add) per unit
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))              # 1 mult (r *), 1 op (tanh)
    h' = n + z * (h - n)                                       # = (1 - z) n + z h as PyTorch computes it:
                                                               #   1 mult, 2 adds
  per step: mults 3H(I + H) + 7H; adds 3H(I + H) + H (+ 3H per bias); with both biases 3H(I + H) + 7H.

RNN (H gate rows): h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or ReLU): mults H(I + H) + H; adds H(I + H) - H
(+ H per bias).

These are exactly the counts of the operators PyTorch decomposes the layers into (mm, addmm, add, sigmoid,
tanh, mul, sub), so a fused kernel (``mkldnn_rnn_layer`` on CPU, ``_cudnn_rnn`` and the ``_thnn_fused_*_cell``
kernels on CUDA) and the decomposition count the same. Weights are read per gate row: a pruned W_ih or W_hh
costs its non-zeros (as a pruned linear layer does). The recurrent state is an input (the steady state, not
the all-zero first step): W_hh h is counted at every step even when no initial state was given. Each call
covers every time step and example of its input: steps x examples = elements of the input / its last size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from micronet_score.counting.registry import ChannelStats, Cost, OpCall, aten, maybe, register

#: gate rows per hidden unit, and (mults, adds) per hidden unit after the gate rows are summed
_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
_UNIT = {"lstm": (11, 4), "gru": (7, 4), "rnn": (1, 0)}
#: the ``mode`` argument of ``_cudnn_rnn``, ``miopen_rnn`` and ``mkldnn_rnn_layer``
_MODES = {0: "rnn", 1: "rnn", 2: "lstm", 3: "gru"}


def _rows(call: OpCall, weight: torch.Tensor) -> ChannelStats:
    """Non-zeros of a weight matrix per row (dense figures for a weight computed from the inputs)."""
    if call.is_static(weight):
        return call.channel_stats(weight, 0)
    rows, length = weight.shape[0], weight.numel() // max(weight.shape[0], 1)
    return ChannelStats(rows * length, rows * max(length - 1, 0), rows)


def _tokens(x: torch.Tensor) -> int:
    """Time steps x examples in a sequence input (T, B, I), (B, T, I), (T, I) or packed data (N, I)."""
    return x.numel() // max(x.shape[-1], 1) if x.dim() else 1


def layer_step_cost(
    call: OpCall, kind: str, w_ih: torch.Tensor, w_hh: torch.Tensor, biases: int,
    w_hr: torch.Tensor | None = None,
) -> Cost:
    """Cost of one time step of one example in one layer and direction (see the module docstring)."""
    rows = w_ih.shape[0]
    hidden = rows // _GATES[kind]
    ih, hh = _rows(call, w_ih), _rows(call, w_hh)
    unit_mults, unit_adds = _UNIT[kind]
    mults = ih.nonzeros + hh.nonzeros + unit_mults * hidden
    adds = ih.nonzeros_minus_one + hh.nonzeros_minus_one + rows * (1 + biases) + unit_adds * hidden
    if w_hr is not None:
        proj = _rows(call, w_hr)
        mults += proj.nonzeros
        adds += proj.nonzeros_minus_one
    return Cost(mults, adds)


def _scaled(cost: Cost, tokens: int) -> Cost:
    return Cost(cost.mults * tokens, cost.adds * tokens)


def _layers_cost(call: OpCall, kind: str, x: torch.Tensor, params: Sequence[torch.Tensor], groups: int,
                 has_biases: bool, proj: bool) -> Cost:
    """Cost of every layer and direction of a whole-sequence operator whose weights come as one flat list,
    ``groups`` (layers x directions) runs of (w_ih, w_hh[, b_ih, b_hh][, w_hr])."""
    stride = 2 + 2 * bool(has_biases) + bool(proj)
    if groups < 1 or len(params) != groups * stride:
        raise ValueError(f"{len(params)} recurrent weights do not split into {groups} layer(s) x direction(s) of "
                         f"{stride}")
    tokens, mults, adds = _tokens(x), 0, 0
    for g in range(groups):
        run = params[g * stride:(g + 1) * stride]
        step = layer_step_cost(call, kind, run[0], run[1], 2 if has_biases else 0, run[-1] if proj else None)
        mults, adds = mults + step.mults, adds + step.adds
    return _scaled(Cost(mults, adds), tokens)


def _whole_sequence(kind: str):
    """Cost of ``aten.lstm``/``gru``/``rnn_tanh``/``rnn_relu`` (``.input`` and ``.data`` overloads)."""

    def cost(call: OpCall) -> Cost:
        args = call.args
        # .input: (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
        # .data:  (data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional)
        p = 3 if isinstance(args[1], torch.Tensor) and isinstance(args[3], (list, tuple)) else 2
        hx, params = args[p - 1], args[p]
        has_biases, num_layers, bidirectional = args[p + 1], args[p + 2], args[p + 5]
        proj = kind == "lstm" and hx[0].shape[-1] != hx[1].shape[-1]  # h holds P values, c holds H
        return _layers_cost(call, kind, args[0], params, num_layers * (2 if bidirectional else 1),
                            has_biases, proj)

    return cost


register(aten.lstm, *maybe("_lstm_mps"))(_whole_sequence("lstm"))
register(aten.gru)(_whole_sequence("gru"))
register(aten.rnn_tanh, aten.rnn_relu)(_whole_sequence("rnn"))


@register(aten.mkldnn_rnn_layer)
def mkldnn_rnn_layer(call: OpCall) -> Cost:
    """One layer, one direction: (input, w_ih, w_hh, b_ih, b_hh, hx, cx, reverse, batch_sizes, mode,
    hidden_size, num_layers, has_biases, ...)."""
    kind = _mode(call.arg(9, "mode"))
    has_biases = bool(call.arg(12, "has_biases", True))
    step = layer_step_cost(call, kind, call.args[1], call.args[2], 2 if has_biases else 0)
    return _scaled(step, _tokens(call.args[0]))


@register(*maybe("_cudnn_rnn"))
def cudnn_rnn(call: OpCall) -> Cost:
    """(input, weights, weight_stride0, weight_buf, hx, cx, mode, hidden_size, proj_size, num_layers,
    batch_first, dropout, train, bidirectional, batch_sizes, dropout_state)."""
    proj = int(call.arg(8, "proj_size", 0) or 0) > 0
    return _flat_weights_cost(call, _mode(call.arg(6, "mode")), call.arg(2, "weight_stride0"), proj,
                              call.arg(9, "num_layers"), call.arg(13, "bidirectional"))


@register(*maybe("miopen_rnn"))
def miopen_rnn(call: OpCall) -> Cost:
    """(input, weights, weight_stride0, hx, cx, mode, hidden_size, num_layers, batch_first, dropout, train,
    bidirectional, batch_sizes, dropout_state)."""
    return _flat_weights_cost(call, _mode(call.arg(5, "mode")), call.arg(2, "weight_stride0"), False,
                              call.arg(7, "num_layers"), call.arg(11, "bidirectional"))


def _flat_weights_cost(call: OpCall, kind: str, stride: int, proj: bool, num_layers: int,
                       bidirectional: bool) -> Cost:
    weights = call.args[1]
    has_biases = stride - 2 - int(proj) == 2
    return _layers_cost(call, kind, call.args[0], weights, num_layers * (2 if bidirectional else 1), has_biases,
                        proj)


def _mode(mode: object) -> str:
    kind = _MODES.get(int(mode)) if isinstance(mode, int) else None
    if kind is None:
        raise ValueError(f"unknown recurrent mode {mode!r} (expected 0-3: RNN_RELU, RNN_TANH, LSTM, GRU)")
    return kind


def _cell(kind: str):
    """``lstm_cell(input, [h, c], w_ih, w_hh, b_ih, b_hh)``, ``gru_cell``/``rnn_*_cell(input, h, ...)``."""

    def cost(call: OpCall) -> Cost:
        w_ih, w_hh = call.args[2], call.args[3]
        biases = sum(b is not None for b in (call.arg(4, "b_ih"), call.arg(5, "b_hh")))
        return _scaled(layer_step_cost(call, kind, w_ih, w_hh, biases), _tokens(call.args[0]))

    return cost


register(aten.lstm_cell)(_cell("lstm"))
register(aten.gru_cell)(_cell("gru"))
register(aten.rnn_tanh_cell, aten.rnn_relu_cell)(_cell("rnn"))


def _fused_cell(kind: str):
    """``_thnn_fused_{lstm,gru}_cell(input_gates, hidden_gates, state, input_bias, hidden_bias)``: everything
    after the two matrix products (those are separate mm calls): the gate sums, the biases, the nonlinearities
    and the state update."""

    def cost(call: OpCall) -> Cost:
        gates, units = call.args[0].numel(), call.args[2].numel()
        biases = sum(b is not None for b in (call.arg(3, "input_bias"), call.arg(4, "hidden_bias")))
        unit_mults, unit_adds = _UNIT[kind]
        return Cost(unit_mults * units, gates * (1 + biases) + unit_adds * units)

    return cost


register(*maybe("_thnn_fused_lstm_cell"))(_fused_cell("lstm"))
register(*maybe("_thnn_fused_gru_cell"))(_fused_cell("gru"))
