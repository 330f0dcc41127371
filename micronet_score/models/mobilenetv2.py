"""MobileNetV2 for ImageNet.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018 (arXiv:1801.04381),
with the channel rounding of the reference TensorFlow/torchvision implementations. The MicroNet Challenge
ImageNet baseline is MobileNetV2 at width 1.4.
"""

from __future__ import annotations

import torch
from torch import nn

from . import _checks
from ._init import build_seeded
from .registry import register

_SOURCE = "Sandler et al. 2018 (arXiv:1801.04381); channel rounding of the TF/torchvision reference"
_INPUT = (1, 3, 224, 224)

#: Inverted residual settings: expansion t, output channels c, repeats n, first stride s.
INVERTED_RESIDUAL_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), never going below
    90% of ``value`` (the reference implementations' ``_make_divisible``)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class ConvBNReLU6(nn.Sequential):
    """Bias-free conv ('same' padding) + BN + ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(),
        )


class InvertedResidual(nn.Module):
    """[1x1 expand + BN + ReLU6] -> 3x3 depthwise + BN + ReLU6 -> 1x1 linear projection + BN (+ input)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_ch, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, kernel=3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 with width multiplier ``width``.

    Args:
        num_classes: classifier outputs.
        width: width multiplier; channels are ``make_divisible(c * width, round_nearest)`` and the last
            layer has ``make_divisible(1280 * max(1, width), round_nearest)`` channels.
        dropout: dropout before the classifier.
        round_nearest: channel rounding multiple.
    """

    def __init__(
        self, num_classes: int = 1000, width: float = 1.0, dropout: float = 0.2, round_nearest: int = 8
    ) -> None:
        super().__init__()
        num_classes = _checks.positive_int(num_classes, "num_classes")
        width = _checks.positive_float(width, "width")
        dropout = _checks.probability(dropout, "dropout")
        round_nearest = _checks.positive_int(round_nearest, "round_nearest")
        in_ch = make_divisible(32 * width, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width), round_nearest)
        features: list[nn.Module] = [ConvBNReLU6(3, in_ch, kernel=3, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
            out_ch = make_divisible(c * width, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
        features.append(ConvBNReLU6(in_ch, self.last_channel, kernel=1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.features(x))
        return self.classifier(torch.flatten(out, 1))


@register(
    "mobilenetv2",
    description="MobileNetV2 for ImageNet with width multiplier (default 1.0: 3.50M params at 1000 classes)",
    source=_SOURCE,
    input_size=_INPUT,
)
def mobilenetv2(
    num_classes: int = 1000, width: float = 1.0, dropout: float = 0.2, seed: int | None = 0
) -> MobileNetV2:
    """MobileNetV2 (ReLU6, BN after every conv, dropout 0.2 + linear classifier).

    Source: Sandler et al. 2018 (arXiv:1801.04381); TF/torchvision reference channel rounding.
    Input: ``(1, 3, 224, 224)``. 3,504,872 parameters at width 1.0, 6,108,776 at width 1.4 (1000 classes).
    """
    return build_seeded(lambda: MobileNetV2(num_classes, width, dropout), seed)


@register(
    "mobilenetv2-1.4",
    description="MobileNetV2 width 1.4, the MicroNet Challenge ImageNet baseline; 6.11M params",
    source=_SOURCE,
    input_size=_INPUT,
)
def mobilenetv2_140(num_classes: int = 1000, dropout: float = 0.2, seed: int | None = 0) -> MobileNetV2:
    """MobileNetV2 at width 1.4, the ImageNet baseline of the MicroNet Challenge rules.

    Source: Sandler et al. 2018 (arXiv:1801.04381); MicroNet Challenge 2019 rules.
    Input: ``(1, 3, 224, 224)``. 6,108,776 parameters at 1000 classes.
    """
    return build_seeded(lambda: MobileNetV2(num_classes, 1.4, dropout), seed)
