"""A frozen batch norm (DETR's FrozenBatchNorm2d: a per-channel multiply and add by constants) folds like
nn.BatchNorm2d (spec sections 2-3). Hand arithmetic in the comments."""

from __future__ import annotations

import torch
from torch import nn

import micronet_score as ms


class FrozenBatchNorm2d(nn.Module):
    """DETR's frozen batch norm: four buffers, the affine computed from them in the forward."""

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("weight", torch.rand(n) + 0.5)
        self.register_buffer("bias", torch.rand(n) + 0.5)
        self.register_buffer("running_mean", torch.rand(n))
        self.register_buffer("running_var", torch.rand(n) + 0.5)

    def forward(self, x):
        scale = self.weight * (self.running_var + 1e-5).rsqrt()
        bias = self.bias - self.running_mean * scale
        shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
        return x * scale.reshape(shape) + bias.reshape(shape)


def eval_bn(n: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(n).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(0.5, 1.5)
    return bn


def test_a_frozen_batch_norm_after_a_conv_folds_like_batchnorm2d():
    frozen = ms.count(nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), FrozenBatchNorm2d(8)), (1, 3, 10, 10))
    plain = ms.count(nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), eval_bn(8)).eval(), (1, 3, 10, 10))
    # 8 x 8 x 8 = 512 outputs: 27 mults and 26 adds each + 1 add of the folded bias; the norm itself is free
    for report in (frozen, plain):
        assert (report.mults, report.adds) == (27 * 512, (26 + 1) * 512)
        assert report.params == 216 + 8  # 8 x 3 x 3 x 3 weights + the folded bias
        assert report.param_storage == 224 / 2  # 16 bits under the freebie
    assert frozen.math_ops == plain.math_ops  # 13,824 mults at 16 bits + 13,824 adds at 32 = 20,736
    assert frozen.math_ops == 13_824 / 2 + 13_824
    rows = {t.name: t.params for t in frozen.tensors}
    assert rows == {"0.weight": 216, "0.bias (folded 1)": 8}  # the four buffers are not stored
    assert frozen.unused == ()


def test_a_frozen_batch_norm_after_a_linear_folds_too():
    report = ms.count(nn.Sequential(nn.Linear(6, 4), FrozenBatchNorm2d(4)), (2, 6))
    # 4 outputs: 6 mults, 5 adds + 1 bias add each; the linear already has its bias: 24 + 4 values
    assert (report.mults, report.adds, report.params) == (24, 24, 28)


class Shared(nn.Module):
    """The conv output also feeds a residual add: the norm cannot fold."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1, bias=False)
        self.bn = FrozenBatchNorm2d(8)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_a_frozen_batch_norm_that_cannot_fold_is_a_per_channel_affine():
    report = ms.count(Shared(), (1, 8, 4, 4))
    # 128 outputs: conv 8 mults, 7 adds each; the norm 1 mult + 1 add each; the residual 1 add each
    assert (report.mults, report.adds) == (8 * 128 + 128, 7 * 128 + 128 + 128)
    # conv 64 weights; the norm's scale and shift, 8 values each (as an unfolded nn.BatchNorm2d: 2 x C)
    assert report.params == 64 + 16
