"""EfficientNet-B0 for ImageNet.

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019
(arXiv:1905.11946), following the reference TF implementation (tensorflow/tpu models/official/efficientnet):
MBConv blocks with squeeze-and-excitation (squeeze to 1/4 of the block's *input* channels), SiLU (swish),
bias-free convs followed by BN, 'same'-style padding ``k // 2``.
"""

from __future__ import annotations

import torch
from torch import nn

from . import _checks
from ._init import build_seeded
from .registry import register

#: Stage specs: (repeats, kernel, stride, expand ratio, input channels, output channels).
B0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class ConvBNSiLU(nn.Sequential):
    """Bias-free conv ('same' padding k // 2) + BN + SiLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch, eps=1e-3, momentum=0.01),
            nn.SiLU(),
        )


class SqueezeExcitation(nn.Module):
    """Global average pool -> 1x1 conv (bias) -> SiLU -> 1x1 conv (bias) -> sigmoid -> channel scale."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class DropConnect(nn.Module):
    """Per-sample stochastic depth on the residual branch; the identity in eval mode or at ``p = 0``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * mask.bernoulli_(keep) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(nn.Module):
    """[1x1 expand + BN + SiLU] -> kxk depthwise + BN + SiLU -> SE -> 1x1 project + BN (+ input)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int,
        expand_ratio: int,
        se_ratio: float = 0.25,
        drop_connect: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = in_ch * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNSiLU(in_ch, hidden, kernel=1))
        layers += [
            ConvBNSiLU(hidden, hidden, kernel=kernel, stride=stride, groups=hidden),
            SqueezeExcitation(hidden, max(1, int(in_ch * se_ratio))),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch, eps=1e-3, momentum=0.01),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.drop_connect = DropConnect(drop_connect) if self.use_residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.drop_connect is not None:
            out = x + self.drop_connect(out)
        return out


class EfficientNet(nn.Module):
    """EfficientNet with B0's stages (no width/depth scaling).

    Args:
        num_classes: classifier outputs.
        dropout: dropout before the classifier.
        drop_connect_rate: stochastic depth rate, rising linearly from 0 to this over the blocks.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2, drop_connect_rate: float = 0.2) -> None:
        super().__init__()
        num_classes = _checks.positive_int(num_classes, "num_classes")
        dropout = _checks.probability(dropout, "dropout")
        drop_connect_rate = _checks.probability(drop_connect_rate, "drop_connect_rate")
        total = sum(stage[0] for stage in B0_STAGES)
        blocks: list[nn.Module] = [ConvBNSiLU(3, 32, kernel=3, stride=2)]
        index = 0
        for repeats, kernel, stride, expand, in_ch, out_ch in B0_STAGES:
            stage = []
            for i in range(repeats):
                stage.append(
                    MBConv(
                        in_ch if i == 0 else out_ch,
                        out_ch,
                        kernel,
                        stride if i == 0 else 1,
                        expand,
                        drop_connect=drop_connect_rate * index / total,
                    )
                )
                index += 1
            blocks.append(nn.Sequential(*stage))
        blocks.append(ConvBNSiLU(B0_STAGES[-1][5], 1280, kernel=1))
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.features(x))
        return self.classifier(torch.flatten(out, 1))


@register(
    "efficientnet-b0",
    description="EfficientNet-B0 for ImageNet (MBConv + squeeze-excitation, SiLU); 5.29M params",
    source="Tan & Le 2019 (arXiv:1905.11946); github.com/tensorflow/tpu models/official/efficientnet",
    input_size=(1, 3, 224, 224),
)
def efficientnet_b0(
    num_classes: int = 1000, dropout: float = 0.2, drop_connect_rate: float = 0.2, seed: int | None = 0
) -> EfficientNet:
    """EfficientNet-B0 (stem 3x3/2 to 32, seven MBConv stages, 1x1 head to 1280, dropout 0.2 + linear).

    Source: Tan & Le 2019 (arXiv:1905.11946), reference TF implementation.
    Input: ``(1, 3, 224, 224)``. 5,288,548 parameters at 1000 classes.
    """
    return build_seeded(lambda: EfficientNet(num_classes, dropout, drop_connect_rate), seed)
