"""A plain ImageNet ResNet-50 (He et al. 2016, "v1.5" layout: the stride sits on the 3x3 conv of a bottleneck).

7x7 stride-2 stem to 64 channels, batch norm, ReLU, 3x3 stride-2 max-pool; bottleneck stages [3, 4, 6, 3] with
widths 64/128/256/512 expanded 4x, 1x1 projection (+ batch norm) shortcuts where the shape changes; global
average pool and a 2048 -> 1000 linear layer: 25,557,032 parameters. The zoo's ``resnet50-cifar`` is the 32x32
layout (3x3 stem, no max-pool), which is why the benchmark carries its own.
"""

from __future__ import annotations

import torch
from torch import nn

PARAMS = 25_557_032


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        layers = []
        in_channels = 64
        for i, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            stage = []
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(Bottleneck(in_channels, width, stride))
                in_channels = width * Bottleneck.expansion
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build(seed: int | None = 0) -> ResNet50:
    """A freshly initialised ResNet-50 (deterministic for an int ``seed``, global RNG untouched)."""
    if seed is None:
        return ResNet50()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResNet50()


if __name__ == "__main__":
    n = sum(p.numel() for p in build().parameters())
    print(f"{n:,} parameters (expected {PARAMS:,})")
    assert n == PARAMS
