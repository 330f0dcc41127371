"""Pre-activation CIFAR ResNet in the layout of kuangliu/pytorch-cifar (``models/preact_resnet.py``).

He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016 (arXiv:1603.05027). As in kuangliu's
``PreActResNet18``: a bare 3x3 stem conv (no BN/ReLU after it), pre-activation BasicBlocks whose 1x1
projection shortcut (no BN) reads the activated input, and no final BN before the 4x4 average pool.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from ._init import build_seeded
from .registry import register


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity or 1x1-conv shortcut."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        # kuangliu applies the projection to the *activated* input; identity shortcuts read the raw input.
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))
            if stride != 1 or in_planes != planes
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNetCIFAR(nn.Module):
    """kuangliu-style pre-activation CIFAR ResNet with :class:`PreActBlock` stages.

    Args:
        num_blocks: blocks per stage (four stages).
        num_classes: classifier outputs.
        width: channels of the stem and first stage; stages have ``width * (1, 2, 4, 8)`` planes.
    """

    def __init__(self, num_blocks: Sequence[int], num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        num_blocks = _checks.positive_ints(num_blocks, "num_blocks", length=4)
        num_classes = _checks.positive_int(num_classes, "num_classes")
        width = _checks.positive_int(width, "width")
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(4 * width, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(8 * width, num_blocks[3], stride=2)
        self.linear = nn.Linear(8 * width, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(torch.flatten(out, 1))


@register(
    "preact-resnet18-cifar",
    description="Pre-activation ResNet-18 for CIFAR (kuangliu PreActResNet18); 11.17M params at 10 classes",
    source="He et al. 2016 (arXiv:1603.05027); github.com/kuangliu/pytorch-cifar models/preact_resnet.py",
    input_size=(1, 3, 32, 32),
)
def preact_resnet18_cifar(num_classes: int = 10, width: int = 64, seed: int | None = 0) -> PreActResNetCIFAR:
    """Pre-activation ResNet-18 for CIFAR, PreActBlocks ``[2, 2, 2, 2]``.

    Source: He et al. 2016 (arXiv:1603.05027), kuangliu/pytorch-cifar ``PreActResNet18``.
    Input: ``(1, 3, 32, 32)``. 11,171,146 parameters at ``num_classes=10, width=64``.
    """
    return build_seeded(lambda: PreActResNetCIFAR((2, 2, 2, 2), num_classes, width), seed)
