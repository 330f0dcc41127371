"""Activations per element (spec section 3), on 2*3*4 = 24 elements."""

import pytest
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
