"""Normalisations: folding into the producer, per-channel affine otherwise, run-time statistics."""

import torch
from torch import nn

import micronet_score as ms


def _bn(c):
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(0.1, 0.2)
        bn.running_mean.uniform_(0.1, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    return bn


def test_batchnorm_folds_into_conv_without_bias():
    # conv 3->8 k3 on 10x10 -> 8x8: 27 mults, 26 adds per output; folding adds the bias add: 27 adds.
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), _bn(8))
    r = ms.count(model, (1, 3, 10, 10))
    assert r.mults == 27 * 8 * 64 == 13_824
    assert r.adds == 27 * 8 * 64
    # 216 weights + 8 folded biases; running stats and the affine are not stored.
    assert r.params == 216 + 8
    assert r.layer("1").mults == 0


def test_batchnorm_folds_into_conv_with_bias_adds_nothing():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), _bn(8))
    r = ms.count(model, (1, 3, 10, 10))
    assert r.params == 216 + 8
    assert r.adds == 27 * 8 * 64


def test_batchnorm_after_linear_folds():
    model = nn.Sequential(nn.Linear(6, 4, bias=False), nn.BatchNorm1d(4))
    r = ms.count(model, (1, 6))
    assert (r.mults, r.adds, r.params) == (24, 24, 28)


def test_preactivation_batchnorm_is_an_affine():
    # BN on the input (nothing produces it): 2*C stored values, 1 mult + 1 add per element (4*6*6 = 144).
    model = nn.Sequential(_bn(4), nn.ReLU())
    r = ms.count(model, (1, 4, 6, 6))
    assert r.layer("0").mults == 144 and r.layer("0").adds == 144
    assert r.params == 8


def test_batchnorm_not_folded_when_conv_output_is_also_used_elsewhere():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1, bias=False)
            self.bn = _bn(2)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    r = ms.count(Branch(), (1, 2, 3, 3))
    # conv: 2 mults, 1 add per output (18 outputs); BN affine 18 + 18; add 18.
    assert r.mults == 36 + 18
    assert r.adds == 18 + 18 + 18
    assert r.params == 4 + 4


def test_batchnorm_after_concat_is_an_affine():
    class Dense(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1, bias=False)
            self.bn = _bn(4)

        def forward(self, x):
            return self.bn(torch.cat([self.conv(x), x], 1))

    r = ms.count(Dense(), (1, 2, 3, 3))
    assert r.layer("bn").mults == 36 and r.layer("bn").params == 8


def test_layer_norm():
    # LayerNorm(8) on (1, 3, 8): 3 groups of n = 8. Per group: mean 7 adds + 1 mult, variance 8 mults + 7 adds
    # + 1 mult, 1 rsqrt -> 11 mults, 14 adds; per element 1 add + 1 mult + affine 1 mult + 1 add -> 2, 2.
    r = ms.count(nn.LayerNorm(8), (1, 3, 8))
    assert r.mults == 3 * 11 + 24 * 2 == 81
    assert r.adds == 3 * 14 + 24 * 2 == 90
    assert r.params == 16


def test_group_norm():
    # GroupNorm(2 groups, 4 channels) on 3x3: 2 groups of n = 2*9 = 18: per group 21 mults, 34 adds;
    # per element (36) 2 mults, 2 adds.
    r = ms.count(nn.GroupNorm(2, 4), (1, 4, 3, 3))
    assert r.mults == 2 * 21 + 36 * 2 == 114
    assert r.adds == 2 * 34 + 36 * 2 == 140


def test_rms_norm_fused_cost_matches_the_decomposed_ops(fn_module):
    # RMSNorm(8) on (1, 4, 8): 4 rows of n = 8. PyTorch on CPU runs it as separate ops: x^2 (8 mults), mean (7
    # adds + 1 mult), + eps (1 add), rsqrt (1), x * r (8 mults), * weight (8 mults): 26 mults, 8 adds per row.
    r = ms.count(nn.RMSNorm(8), (1, 4, 8))
    assert (r.mults, r.adds) == (4 * 26, 4 * 8)
    # the fused operator's cost function gives the same numbers
    from micronet_score.counting.registry import OpCall, lookup

    fused = getattr(torch.ops.aten, "_fused_rms_norm", None)
    if fused is None:
        return
    x, w = torch.randn(1, 4, 8), torch.ones(8)
    call = OpCall((x, [8], w, 1e-6), {}, x, None, lambda t: True, None)
    assert tuple(lookup(fused).fn(call))[:2] == (4 * 26, 4 * 8)
