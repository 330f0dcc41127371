"""CIFAR ResNets in the layout of kuangliu/pytorch-cifar (``models/resnet.py``).

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385), adapted to
32x32 inputs the way https://github.com/kuangliu/pytorch-cifar does: a 3x3 stride-1 stem without max-pool,
four stages of ``width, 2*width, 4*width, 8*width`` channels with strides 1, 2, 2, 2, a 4x4 average pool
and a linear classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from ._init import build_seeded
from .registry import register

_SOURCE = "He et al. 2016 (arXiv:1512.03385); layout of github.com/kuangliu/pytorch-cifar models/resnet.py"
_INPUT = (1, 3, 32, 32)


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    """Identity (empty Sequential) or 1x1 conv (no bias) + BN when the shape changes."""
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN pairs with a residual connection (expansion 1)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, each followed by BN; residual add."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNetCIFAR(nn.Module):
    """kuangliu-style CIFAR ResNet.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        num_blocks: blocks per stage (four stages).
        num_classes: classifier outputs.
        width: channels of the stem and first stage; stages have ``width * (1, 2, 4, 8)`` planes.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: Sequence[int],
        num_classes: int = 10,
        width: int = 64,
    ) -> None:
        super().__init__()
        num_blocks = _checks.positive_ints(num_blocks, "num_blocks", length=4)
        num_classes = _checks.positive_int(num_classes, "num_classes")
        width = _checks.positive_int(width, "width")
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, num_blocks[3], stride=2)
        self.linear = nn.Linear(8 * width * block.expansion, num_classes)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(torch.flatten(out, 1))


@register(
    "resnet18-cifar",
    description="ResNet-18 for CIFAR (kuangliu layout, BasicBlock [2,2,2,2]); 11.17M params at 10 classes",
    source=_SOURCE,
    input_size=_INPUT,
)
def resnet18_cifar(num_classes: int = 10, width: int = 64, seed: int | None = 0) -> ResNetCIFAR:
    """ResNet-18 for CIFAR, BasicBlocks ``[2, 2, 2, 2]``.

    Source: He et al. 2016 (arXiv:1512.03385), kuangliu/pytorch-cifar ``ResNet18``.
    Input: ``(1, 3, 32, 32)``. 11,173,962 parameters at ``num_classes=10, width=64``.
    """
    return build_seeded(lambda: ResNetCIFAR(BasicBlock, (2, 2, 2, 2), num_classes, width), seed)


@register(
    "resnet34-cifar",
    description="ResNet-34 for CIFAR (kuangliu layout, BasicBlock [3,4,6,3]); 21.28M params at 10 classes",
    source=_SOURCE,
    input_size=_INPUT,
)
def resnet34_cifar(num_classes: int = 10, width: int = 64, seed: int | None = 0) -> ResNetCIFAR:
    """ResNet-34 for CIFAR, BasicBlocks ``[3, 4, 6, 3]``.

    Source: He et al. 2016 (arXiv:1512.03385), kuangliu/pytorch-cifar ``ResNet34``.
    Input: ``(1, 3, 32, 32)``. 21,282,122 parameters at ``num_classes=10, width=64``.
    """
    return build_seeded(lambda: ResNetCIFAR(BasicBlock, (3, 4, 6, 3), num_classes, width), seed)


@register(
    "resnet50-cifar",
    description="ResNet-50 for CIFAR (kuangliu layout, Bottleneck x4 [3,4,6,3]); 23.52M params at 10 classes",
    source=_SOURCE,
    input_size=_INPUT,
)
def resnet50_cifar(num_classes: int = 10, width: int = 64, seed: int | None = 0) -> ResNetCIFAR:
    """ResNet-50 for CIFAR, Bottlenecks (expansion 4) ``[3, 4, 6, 3]``.

    Source: He et al. 2016 (arXiv:1512.03385), kuangliu/pytorch-cifar ``ResNet50``.
    Input: ``(1, 3, 32, 32)``. 23,520,842 parameters at ``num_classes=10, width=64``.
    """
    return build_seeded(lambda: ResNetCIFAR(Bottleneck, (3, 4, 6, 3), num_classes, width), seed)
