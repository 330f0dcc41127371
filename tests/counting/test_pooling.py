"""Pooling and reductions: by hand."""

import torch
import torch.nn.functional as F
from torch import nn

import micronet_score as ms


def test_avg_pool():
    # 2x2 average on 4 channels of 8x8 -> 4x4: per output 3 adds + 1 mult; 64 outputs.
    r = ms.count(nn.AvgPool2d(2), (1, 4, 8, 8))
    assert (r.mults, r.adds) == (64, 192)


def test_max_pool():
    # 3x3 stride 2 max on 1x9x9 -> 4x4: 8 comparisons per output, 16 outputs.
    r = ms.count(nn.MaxPool2d(3, 2), (1, 1, 9, 9))
    assert (r.mults, r.adds) == (128, 0)


def test_global_average_pool():
    # spec section 2: C mults + (H*W - 1)*C adds: 16 channels of 7x7.
    r = ms.count(nn.AdaptiveAvgPool2d(1), (1, 16, 7, 7))
    assert (r.mults, r.adds) == (16, 48 * 16)
    r = ms.count(nn.Sequential(nn.Flatten(2)), (1, 16, 7, 7))
    assert r.mults == 0  # flatten is free


def test_adaptive_avg_pool_uneven_windows():
    # 5 -> 3 along each axis: windows [0,2), [1,4), [3,5) -> sizes 2, 3, 2 (sum 7); 2-D: 7*7 = 49 values
    # summed over 9 outputs: adds 49 - 9 = 40, mults 9.
    r = ms.count(nn.AdaptiveAvgPool2d(3), (1, 1, 5, 5))
    assert (r.mults, r.adds) == (9, 40)


def test_mean_sum_max_reductions(fn_module):
    r = ms.count(fn_module(lambda x: x.sum(-1)), (1, 3, 5))
    assert (r.mults, r.adds) == (0, 12)
    r = ms.count(fn_module(lambda x: x.mean(-1)), (1, 3, 5))
    assert (r.mults, r.adds) == (3, 12)
    r = ms.count(fn_module(lambda x: x.amax(-1)), (1, 3, 5))
    assert (r.mults, r.adds) == (12, 0)


def test_upsampling(fn_module):
    # nearest is free; bilinear: 4 mults + 3 adds per output (1x2x8x8 = 128 outputs).
    assert ms.count(nn.Upsample(scale_factor=2), (1, 2, 4, 4)).mults == 0
    r = ms.count(nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 4, 4))
    assert (r.mults, r.adds) == (512, 384)


def test_functional_max_pool_counts(fn_module):
    r = ms.count(fn_module(lambda x: F.max_pool2d(x, 2)), torch.randn(1, 1, 4, 4))
    assert r.mults == 4 * 3
