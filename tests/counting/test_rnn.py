"""Recurrent layers counted against their equations, by hand (spec section 3 "Recurrent layers").

Sizes used throughout: input I = 5, hidden H = 7. Per time step and example:
- LSTM: gate rows 4H = 28, each a dot product over I + H = 12 values: 4*7*12 = 336 MACs. Adds: 336 - 28 (one fewer
  than the terms per row) + 28 (b_ih) + 28 (b_hh) = 364. Then per unit: 3 sigmoids (2 mults + 1 add each),
  tanh(g) (1), f*c and i*g (2 mults), + (1 add), tanh(c) (1), o*tanh(c) (1 mult): 11 mults, 4 adds per unit,
  77 mults and 28 adds. Total 336 + 77 = 413 mults, 364 + 28 = 392 adds.
  Parameters: W_ih 28*5 = 140, W_hh 28*7 = 196, b_ih + b_hh 56: 392.
- GRU: 3H = 21 rows of 12: 252 MACs; adds 252 - 21 + 21 + 21 = 273; per unit 2 sigmoids (4 mults, 2 adds),
  r*(W_hn h + b_hn) (1 mult), tanh (1), h' = n + z*(h - n) (1 mult, 2 adds): 7 mults, 4 adds per unit.
  Total 252 + 49 = 301 mults, 273 + 28 = 301 adds. Parameters 21*5 + 21*7 + 42 = 294.
- RNN (tanh or ReLU): 7 rows of 12: 84 MACs; adds 84 - 7 + 14 = 91; tanh/ReLU 1 mult per unit: 84 + 7 = 91
  mults. Parameters 35 + 49 + 14 = 98.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import micronet_score as ms
from micronet_score.counting.registry import ChannelStats, OpCall, aten, lookup

I, H = 5, 7  # noqa: E741 (the equations' names)
LSTM_STEP = (413, 392)
GRU_STEP = (301, 301)
RNN_STEP = (91, 91)


def counts(model: nn.Module, inputs, mkldnn: bool = True) -> tuple[int, float, float]:
    with torch.backends.mkldnn.flags(enabled=mkldnn):
        r = ms.count(model, inputs, strict=True)
    assert r.unsupported_total == 0
    return r.params, r.mults, r.adds


class Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen.add(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def lstm_state(layers_dirs: int = 1, batch: int = 1, h: int = H, c: int = H):
    return torch.randn(layers_dirs, batch, h), torch.randn(layers_dirs, batch, c)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="oneDNN not built into this torch")
def test_lstm_step_default_flags_runs_mkldnn_rnn_layer():
    torch.manual_seed(0)
    model = nn.LSTM(I, H, batch_first=True).eval()
    x = torch.randn(1, 1, I)
    with Ops() as ops, torch.no_grad():
        model(x)
    assert "aten.mkldnn_rnn_layer" in ops.seen
    # no initial state: the fused kernel still multiplies W_hh by the state, every weight stored
    assert counts(model, x) == (392, *LSTM_STEP)
    assert counts(model, (x, lstm_state())) == (392, *LSTM_STEP)


def test_lstm_step_without_mkldnn_decomposes_to_the_same_count():
    torch.manual_seed(0)
    model = nn.LSTM(I, H, batch_first=True)
    x = torch.randn(1, 1, I)
    with Ops() as ops, torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
        model(x, lstm_state())
    assert "aten.mkldnn_rnn_layer" not in ops.seen and "aten.unsafe_split" in ops.seen
    assert counts(model, (x, lstm_state()), mkldnn=False) == (392, *LSTM_STEP)


# The zero initial state nn.LSTM creates inside forward is the recurrent state: an input of the step (spec 3).
def test_lstm_step_without_mkldnn_and_without_state():
    model = nn.LSTM(I, H, batch_first=True)
    assert counts(model, torch.randn(1, 1, I), mkldnn=False) == (392, *LSTM_STEP)


def test_lstm_several_steps_and_examples():
    # batch 3, 4 steps: per example 4 steps of 413 mults, 392 adds, whichever path runs.
    model = nn.LSTM(I, H, batch_first=True)
    x = torch.randn(3, 4, I)
    for mkldnn in (True, False):
        assert counts(model, (x, lstm_state(batch=3)), mkldnn) == (392, 4 * 413, 4 * 392)


def test_lstm_without_biases():
    # adds: 336 - 28 (no bias adds) + 28 (unit adds) = 336; mults 413; parameters 140 + 196 = 336.
    model = nn.LSTM(I, H, bias=False, batch_first=True)
    for mkldnn in (True, False):
        assert counts(model, (torch.randn(1, 1, I), lstm_state()), mkldnn) == (336, 413, 336)


def test_bidirectional_two_layers():
    # Layer 0 (input 5): 413 mults, 392 adds per direction and step. Layer 1 reads both directions (input 14):
    # 4*7*(14+7) = 588 MACs + 77 = 665 mults; 588 + 28 + 28 = 644 adds. Per step 2*(413+665) = 2156 mults and
    # 2*(392+644) = 2072 adds; 3 steps: 6468 and 6216. Parameters: 2*392 + 2*(28*14 + 196 + 56) = 784 + 1288.
    model = nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(2, 3, I)
    for mkldnn in (True, False):
        assert counts(model, (x, lstm_state(4, 2)), mkldnn) == (2072, 6468, 6216)
    assert counts(model, x) == (2072, 6468, 6216)  # default flags, no state: the fused kernel


def test_lstm_with_projection():
    # proj_size P = 3: the state h has 3 values, W_hh is 28 x 3, W_hr is 3 x 7.
    # MACs 28*(5+3) = 224; mults 224 + 77 + 21 (W_hr) = 322; adds 224 - 28 + 56 + 28 + 3*6 = 298.
    # Parameters 140 + 84 + 56 + 21 = 301.
    model = nn.LSTM(I, H, proj_size=3, batch_first=True)
    state = (torch.randn(1, 1, 3), torch.randn(1, 1, H))
    assert counts(model, (torch.randn(1, 1, I), state)) == (301, 322, 298)


def test_gru_and_rnn_steps():
    x, h = torch.randn(1, 1, I), torch.randn(1, 1, H)
    assert counts(nn.GRU(I, H, batch_first=True), (x, h)) == (294, *GRU_STEP)
    assert counts(nn.RNN(I, H, batch_first=True), (x, h)) == (98, *RNN_STEP)
    assert counts(nn.RNN(I, H, nonlinearity="relu", batch_first=True), (x, h)) == (98, *RNN_STEP)


def test_gru_without_biases():
    # adds 252 - 21 + 28 = 259; parameters 105 + 147 = 252.
    model = nn.GRU(I, H, bias=False, batch_first=True)
    assert counts(model, (torch.randn(1, 1, I), torch.randn(1, 1, H))) == (252, 301, 259)


# GRU/RNN always decompose on CPU; the zero h0 they create is still the step's input (W_hh h0 is costed).
def test_gru_step_without_state():
    assert counts(nn.GRU(I, H, batch_first=True), torch.randn(1, 1, I)) == (294, *GRU_STEP)


def test_cells():
    x, h, c = torch.randn(2, I), torch.randn(2, H), torch.randn(2, H)
    assert counts(nn.LSTMCell(I, H), (x, (h, c))) == (392, *LSTM_STEP)
    assert counts(nn.GRUCell(I, H), (x, h)) == (294, *GRU_STEP)
    assert counts(nn.RNNCell(I, H), (x, h)) == (98, *RNN_STEP)


def test_pruned_weights_cost_their_nonzeros():
    # Zero 10 entries of W_ih and 20 of W_hh: 30 fewer mults and 30 fewer adds per step (no row is emptied);
    # stored values stay dense (a few zeros do not make the bitmask format cheaper).
    model = nn.LSTM(I, H, batch_first=True)
    with torch.no_grad():
        model.weight_ih_l0[:10, 0] = 0
        model.weight_hh_l0[:20, 1] = 0
    for mkldnn in (True, False):
        assert counts(model, (torch.randn(1, 1, I), lstm_state()), mkldnn) == (392, 413 - 30, 392 - 30)


# ---------------------------------------------------------------- operators the CPU never dispatches here
# aten.lstm/gru/rnn_* and the *_cell operators are composite (they reach a dispatch mode already decomposed),
# and _cudnn_rnn/_thnn_fused_* only run on CUDA: their cost functions are checked on hand-made calls.
def call(args: tuple, kwargs: dict | None = None) -> OpCall:
    def stats(t: torch.Tensor, dim: int) -> ChannelStats:
        rows, length = t.shape[dim], t.numel() // t.shape[dim]
        return ChannelStats(t.numel(), rows * (length - 1), rows)

    return OpCall(args, kwargs or {}, None, stats, lambda t: False, lambda p: (p, None))


def lstm_params(layers: int = 2, dirs: int = 2) -> list[torch.Tensor]:
    params = []
    for layer in range(layers):
        inp = I if layer == 0 else H * dirs
        for _ in range(dirs):
            params += [torch.empty(4 * H, inp), torch.empty(4 * H, H), torch.empty(4 * H), torch.empty(4 * H)]
    return params


def test_composite_whole_sequence_operators():
    # the bidirectional 2-layer case above, one example of 3 steps: 6468 mults, 6216 adds
    x = torch.empty(3, 1, I)
    hx = [torch.empty(4, 1, H), torch.empty(4, 1, H)]
    cost = lookup(aten.lstm).fn(call((x, hx, lstm_params(), True, 2, 0.0, False, True, False)))
    assert cost[:2] == (6468, 6216)
    # .data overload (packed sequence: 3 rows of data)
    cost = lookup(aten.lstm).fn(call((torch.empty(3, I), torch.tensor([1, 1, 1]), hx, lstm_params(), True, 2, 0.0,
                                      False, True)))
    assert cost[:2] == (6468, 6216)
    gru = [torch.empty(3 * H, I), torch.empty(3 * H, H), torch.empty(3 * H), torch.empty(3 * H)]
    assert lookup(aten.gru).fn(call((x, torch.empty(1, 1, H), gru, True, 1, 0.0, False, False, False)))[:2] \
        == (3 * 301, 3 * 301)
    rnn = [torch.empty(H, I), torch.empty(H, H)]  # no biases: adds 84 - 7 = 77
    assert lookup(aten.rnn_tanh).fn(call((x, torch.empty(1, 1, H), rnn, False, 1, 0.0, False, False, False)))[:2] \
        == (3 * 91, 3 * 77)


def test_composite_cells():
    x = torch.empty(2, I)  # two examples
    w = (torch.empty(4 * H, I), torch.empty(4 * H, H), torch.empty(4 * H), torch.empty(4 * H))
    assert lookup(aten.lstm_cell).fn(call((x, [torch.empty(2, H)] * 2, *w)))[:2] == (2 * 413, 2 * 392)
    w3 = (torch.empty(3 * H, I), torch.empty(3 * H, H), None, None)  # no biases: 259 adds (test_gru_without_biases)
    assert lookup(aten.gru_cell).fn(call((x, torch.empty(2, H), *w3)))[:2] == (2 * 301, 2 * 259)
    w1 = (torch.empty(H, I), torch.empty(H, H), torch.empty(H), torch.empty(H))
    assert lookup(aten.rnn_relu_cell).fn(call((x, torch.empty(2, H), *w1)))[:2] == (2 * 91, 2 * 91)


def test_cuda_kernels():
    # cuDNN: the bidirectional 2-layer LSTM (mode 2), weights in runs of 4, one example of 3 steps.
    x = torch.empty(3, 1, I)
    args = (x, lstm_params(), 4, None, torch.empty(4, 1, H), torch.empty(4, 1, H), 2, H, 0, 2, False, 0.0, False,
            True, [], None)
    assert lookup(aten._cudnn_rnn).fn(call(args))[:2] == (6468, 6216)
    # Fused LSTM cell: what follows the two products (mm calls of their own): per unit 11 mults and 4 adds;
    # per gate row 1 add joining the halves + 1 per bias. Batch 2: 2*7*11 = 154 mults, 2*28*3 + 2*7*4 = 224 adds.
    gates = torch.empty(2, 4 * H)
    cost = lookup(aten._thnn_fused_lstm_cell).fn(call((gates, gates, torch.empty(2, H), torch.empty(4 * H),
                                                       torch.empty(4 * H))))
    assert cost[:2] == (154, 224)
    # with the products (28*5 + 28*7 mults, 28*4 + 28*6 adds per example) this is the LSTM step: 413 and 392
    assert 336 + 154 // 2 == 413 and 28 * 4 + 28 * 6 + 224 // 2 == 392
    # Fused GRU cell, no biases: 7 mults per unit; 21 joining adds + 4 per unit = 49 adds; batch 2.
    g3 = torch.empty(2, 3 * H)
    assert lookup(aten._thnn_fused_gru_cell).fn(call((g3, g3, torch.empty(2, H))))[:2] == (98, 2 * 49)


def test_unknown_mode_is_an_error_not_a_guess():
    args = (torch.empty(3, 1, I), lstm_params(1, 1), 4, None, torch.empty(1, 1, H), None, 7, H, 0, 1, False, 0.0,
            False, False, [], None)
    with pytest.raises(ValueError, match="unknown recurrent mode 7"):
        lookup(aten._cudnn_rnn).fn(call(args))


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="oneDNN not built into this torch")
def test_lstm_after_another_layer_without_state():
    # Linear(5, 5, no bias) then the LSTM, default flags, no state: 25 + 413 mults, 20 + 392 adds, 25 + 392 params.
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.lstm = nn.Linear(I, I, bias=False), nn.LSTM(I, H, batch_first=True)

        def forward(self, x):
            return self.lstm(self.lin(x))[0]

    assert counts(Net(), torch.randn(1, 1, I)) == (25 + 392, 25 + 413, 20 + 392)
