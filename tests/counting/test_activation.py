"""Activations per element (spec section 3), on 2*3*4 = 24 elements."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import micronet_score as ms

N = 24


@pytest.mark.parametrize(
    "module, mults, adds",
    [
        (nn.ReLU(), 1, 0),
        (nn.ReLU6(), 2, 0),
        (nn.Hardtanh(), 2, 0),
        (nn.LeakyReLU(), 2, 0),
        (nn.PReLU(), 2, 0),
        (nn.Sigmoid(), 2, 1),
        (nn.SiLU(), 3, 1),
        (nn.Hardswish(), 4, 1),
        (nn.Hardsigmoid(), 3, 1),
        (nn.Tanh(), 1, 0),
        (nn.GELU(), 4, 1),
        (nn.GELU(approximate="tanh"), 7, 2),
        (nn.ELU(), 3, 1),  # comparison, exp, alpha * (exp - 1)
        (nn.SELU(), 4, 1),  # ELU and the outer scale
        (nn.CELU(), 3, 1),  # ELU: alpha = 1
        (nn.CELU(alpha=2.0), 4, 1),  # ELU of x / alpha
        (nn.Softplus(), 3, 1),  # threshold comparison, exp, log of 1 + exp
        (nn.Mish(), 5, 1),  # x * tanh(softplus(x))
        (nn.LogSigmoid(), 3, 1),  # -softplus(-x)
        (nn.Softshrink(), 2, 1),  # x > l, x < -l, then x -/+ l
        (nn.Hardshrink(), 2, 0),  # x > l, x < -l
        (nn.RReLU().eval(), 2, 0),  # LeakyReLU with the mean slope
    ],
)
def test_activation_costs(module, mults, adds):
    r = ms.count(module, (1, 2, 3, 4))
    assert (r.mults, r.adds) == (mults * N, adds * N)
    assert r.unsupported == {}


def test_transcendentals_and_clamp(fn_module):
    for fn in (lambda x: x.exp(), lambda x: x.abs().log(), lambda x: x.erf(), lambda x: x.abs().sqrt(),
               lambda x: x.abs().rsqrt()):
        r = ms.count(fn_module(fn), (1, 2, 3, 4))
        assert r.mults in (N, 2 * N)  # abs is one more op per element where used
    assert ms.count(fn_module(lambda x: x.clamp(-1, 1)), (1, 2, 3, 4)).mults == 2 * N
    assert ms.count(fn_module(lambda x: x.clamp(min=0)), (1, 2, 3, 4)).mults == N


def test_softmax_and_log_softmax(fn_module):
    # softmax over n = 4, 6 rows: per row 4 exp + 4 mults, 3 adds.
    r = ms.count(nn.Softmax(dim=-1), (1, 2, 3, 4))
    assert (r.mults, r.adds) == (6 * 8, 6 * 3)
    # log_softmax: per row 4 exp + 1 log, 3 + 4 adds.
    r = ms.count(fn_module(lambda x: F.log_softmax(x, -1)), (1, 2, 3, 4))
    assert (r.mults, r.adds) == (6 * 5, 6 * 7)


def test_glu_costs_a_sigmoid_and_a_mult_per_output(fn_module):
    # (1, 2, 3, 4) halved along dim 1: 12 outputs, each sigmoid(b) (2 mults, 1 add) times a (1 mult)
    r = ms.count(nn.GLU(dim=1), (1, 2, 3, 4))
    assert (r.mults, r.adds, r.unsupported) == (12 * 3, 12 * 1, {})


@pytest.mark.parametrize(
    "fn, mults, adds",
    [
        (lambda x: x.asinh(), 1, 0),
        (lambda x: (x * x + 1.0).acosh(), 1 + 1, 1),  # x * x and + 1.0 are 1 mult and 1 add themselves
        (lambda x: (x * 0.5).atanh(), 1 + 1, 0),
        (lambda x: torch.sinc(x), 3, 0),  # pi * x, sin, division
        (lambda x: torch.deg2rad(x), 1, 0),
        (lambda x: torch.copysign(x, x.flip(-1)), 1, 0),
        (lambda x: torch.hypot(x, x.flip(-1)), 3, 1),  # x*x, y*y, sqrt; one add
        (lambda x: torch.logaddexp(x, x.flip(-1)), 3, 1),  # two exps, a log; one add
        (lambda x: torch.logaddexp2(x, x.flip(-1)), 3, 1),
        (lambda x: torch.xlogy(x, x.flip(-1)), 2, 0),  # log, mult
        (lambda x: torch.heaviside(x, x.flip(-1)), 2, 0),  # x < 0, x == 0
        (lambda x: torch.nan_to_num(x), 3, 0),  # isnan, isposinf, isneginf
    ],
)
def test_elementwise_functions_by_their_formulas(fn_module, fn, mults, adds):
    r = ms.count(fn_module(fn), (1, 2, 3, 4))
    assert (r.mults, r.adds, r.unsupported) == (mults * N, adds * N, {})
