"""Pre-activation Wide Residual Networks (WRN-d-k) for CIFAR.

Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016 (arXiv:1605.07146), in the layout of the common
PyTorch implementation github.com/xternalz/WideResNet-pytorch: a 3x3 stem conv to 16 channels, three groups
of ``(depth - 4) / 6`` pre-activation BasicBlocks with ``16k, 32k, 64k`` channels (strides 1, 2, 2), a bias-free
1x1 conv shortcut on the activated input when the shape changes, then BN-ReLU-AvgPool(8)-Linear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from ._init import build_seeded
from .errors import ModelArgumentError
from .registry import register

_SOURCE = "Zagoruyko & Komodakis 2016 (arXiv:1605.07146); layout of github.com/xternalz/WideResNet-pytorch"
_INPUT = (1, 3, 32, 32)


class WideBasicBlock(nn.Module):
    """Pre-activation block BN-ReLU-Conv3x3-BN-ReLU-(Dropout)-Conv3x3 plus shortcut."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else None
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes and stride == 1
        self.conv_shortcut = (
            None
            if self.equal_in_out
            else nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv2(out)
        # As in xternalz: the projection shortcut reads the activated input, the identity the raw one.
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(act)
        return shortcut + out


class WideResNet(nn.Module):
    """WRN-``depth``-``width`` for 32x32 inputs.

    Args:
        depth: total depth; ``(depth - 4)`` must be a positive multiple of 6.
        width: widening factor k; the three groups have ``16k, 32k, 64k`` channels.
        num_classes: classifier outputs.
        drop_rate: dropout between the two convs of each block (0 = none).
    """

    def __init__(
        self, depth: int = 28, width: int = 10, num_classes: int = 10, drop_rate: float = 0.0
    ) -> None:
        super().__init__()
        depth = _checks.positive_int(depth, "depth")
        if depth < 10 or (depth - 4) % 6:
            raise ModelArgumentError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        width = _checks.positive_int(width, "width")
        num_classes = _checks.positive_int(num_classes, "num_classes")
        drop_rate = _checks.probability(drop_rate, "drop_rate")
        n = (depth - 4) // 6
        channels = [16, 16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(3, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = self._group(channels[0], channels[1], n, 1, drop_rate)
        self.block2 = self._group(channels[1], channels[2], n, 2, drop_rate)
        self.block3 = self._group(channels[2], channels[3], n, 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = nn.ReLU()
        self.fc = nn.Linear(channels[3], num_classes)

    @staticmethod
    def _group(in_planes: int, out_planes: int, n: int, stride: int, drop_rate: float) -> nn.Sequential:
        return nn.Sequential(
            *(
                WideBasicBlock(
                    in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate
                )
                for i in range(n)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8)
        return self.fc(torch.flatten(out, 1))


@register(
    "wrn",
    description="Wide ResNet WRN-depth-width for CIFAR (pre-activation, xternalz layout); default 28-10",
    source=_SOURCE,
    input_size=_INPUT,
)
def wrn(
    num_classes: int = 10, depth: int = 28, width: int = 10, drop_rate: float = 0.0, seed: int | None = 0
) -> WideResNet:
    """Generic Wide ResNet WRN-``depth``-``width`` (``depth = 6n + 4``).

    Source: Zagoruyko & Komodakis 2016 (arXiv:1605.07146), xternalz/WideResNet-pytorch.
    Input: ``(1, 3, 32, 32)``. Defaults give WRN-28-10 (36,479,194 parameters at 10 classes).
    """
    return build_seeded(lambda: WideResNet(depth, width, num_classes, drop_rate), seed)


@register(
    "wrn-28-10",
    description="Wide ResNet-28-10 for CIFAR (pre-activation, xternalz layout); 36.48M params at 10 classes",
    source=_SOURCE,
    input_size=_INPUT,
)
def wrn_28_10(num_classes: int = 10, drop_rate: float = 0.0, seed: int | None = 0) -> WideResNet:
    """WRN-28-10: 4 blocks per group, groups of 160, 320, 640 channels.

    Source: Zagoruyko & Komodakis 2016 (arXiv:1605.07146), xternalz/WideResNet-pytorch.
    Input: ``(1, 3, 32, 32)``. 36,479,194 parameters at 10 classes, 36,536,884 at 100.
    """
    return build_seeded(lambda: WideResNet(28, 10, num_classes, drop_rate), seed)
