"""CIFAR DenseNet-BC in the layout of kuangliu/pytorch-cifar (``models/densenet.py``), with optional groups.

Huang et al., "Densely Connected Convolutional Networks", CVPR 2017 (arXiv:1608.06993). Layout: a 3x3 stem
conv to ``2 * growth_rate`` channels (no BN after it); dense blocks of bottleneck layers
BN-ReLU-Conv1x1(in -> 4k)-BN-ReLU-Conv3x3(4k -> k) whose output is ``cat([new, x])``; a transition
BN-ReLU-Conv1x1(in -> floor(in * reduction))-AvgPool2 after every block but the last; then BN-ReLU, global
average pool (the 4x4 ``avg_pool2d(out, 4)`` of kuangliu for four blocks at 32x32) and a linear classifier.
All convolutions are bias-free. Each kind of convolution can be grouped (see :class:`DenseNetGroups`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from ._groups import KINDS, conv_channels, resolve_groups
from ._init import build_seeded
from .errors import ModelArgumentError
from .registry import register

_SOURCE = (
    "Huang et al. 2017 (arXiv:1608.06993); layout of github.com/kuangliu/pytorch-cifar models/densenet.py"
)
_INPUT = (1, 3, 32, 32)


@dataclass(frozen=True)
class DenseNetGroups:
    """Group counts per kind of convolution (all default 1, i.e. dense convolutions).

    Attributes:
        stem: the 3x3 stem conv (3 -> 2k channels).
        bottleneck: each dense layer's 1x1 conv (in -> 4k).
        conv3x3: each dense layer's 3x3 conv (4k -> k).
        transition: each transition's 1x1 conv (in -> floor(in * reduction)).
    """

    stem: int = 1
    bottleneck: int = 1
    conv3x3: int = 1
    transition: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            _checks.positive_int(getattr(self, f.name), f"groups.{f.name}")

    @classmethod
    def coerce(cls, value: DenseNetGroups | Mapping[str, int] | None) -> DenseNetGroups:
        """Accept ``None`` (all 1), a :class:`DenseNetGroups`, or a mapping with a subset of its keys."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(str(k) for k in value if k not in known)
            if unknown:
                raise ModelArgumentError(f"groups has unknown key(s) {unknown}; known keys: {sorted(known)}")
            return cls(**value)
        raise ModelArgumentError(f"groups must be a DenseNetGroups, a mapping or None, got {value!r}")


def _conv(layer: str, in_ch: int, out_ch: int, kernel: int, groups: int) -> nn.Conv2d:
    """Bias-free conv with 'same' padding, after checking that ``groups`` divides both channel counts."""
    _checks.divides(groups, in_ch, layer, "in_channels")
    _checks.divides(groups, out_ch, layer, "out_channels")
    return nn.Conv2d(in_ch, out_ch, kernel_size=kernel, padding=kernel // 2, groups=groups, bias=False)


class DenseLayer(nn.Module):
    """DenseNet-BC bottleneck layer: BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k), output ``cat([new, x], 1)``."""

    def __init__(self, in_planes: int, growth_rate: int, groups: DenseNetGroups, name: str = "dense layer"):
        super().__init__()
        inner = 4 * growth_rate
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = _conv(f"{name} 1x1 bottleneck conv", in_planes, inner, 1, groups.bottleneck)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv2 = _conv(f"{name} 3x3 conv", inner, growth_rate, 3, groups.conv3x3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class Transition(nn.Module):
    """BN-ReLU-Conv1x1(in -> out)-AvgPool(2)."""

    def __init__(self, in_planes: int, out_planes: int, groups: int, name: str = "transition"):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = _conv(f"{name} 1x1 conv", in_planes, out_planes, 1, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetCIFAR(nn.Module):
    """kuangliu-style CIFAR DenseNet-BC with per-kind convolution groups.

    Args:
        growth_rate: k, channels each dense layer adds.
        blocks: dense layers per block; a transition follows every block but the last.
        reduction: transition compression; a transition maps ``c`` to ``floor(c * reduction)`` channels.
        num_classes: classifier outputs.
        groups: group counts per kind of conv (:class:`DenseNetGroups` or mapping); each must divide the
            in- and out-channels of every conv of its kind, else ValueError naming the layer.
    """

    def __init__(
        self,
        growth_rate: int = 12,
        blocks: Sequence[int] = (6, 12, 24, 16),
        reduction: float = 0.5,
        num_classes: int = 10,
        groups: DenseNetGroups | Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        growth_rate = _checks.positive_int(growth_rate, "growth_rate")
        blocks = _checks.positive_ints(blocks, "blocks")
        reduction = _checks.positive_float(reduction, "reduction")
        if reduction > 1:
            raise ModelArgumentError(f"reduction must be in (0, 1], got {reduction!r}")
        num_classes = _checks.positive_int(num_classes, "num_classes")
        g = DenseNetGroups.coerce(groups)
        self.groups = g

        planes = 2 * growth_rate
        features: OrderedDict[str, nn.Module] = OrderedDict()
        features["conv1"] = _conv("stem 3x3 conv", 3, planes, 3, g.stem)
        for b, n_layers in enumerate(blocks, start=1):
            layers = []
            for i in range(1, n_layers + 1):
                layers.append(DenseLayer(planes, growth_rate, g, name=f"dense block {b} layer {i}"))
                planes += growth_rate
            features[f"dense{b}"] = nn.Sequential(*layers)
            if b < len(blocks):
                out_planes = math.floor(planes * reduction)
                if out_planes < 1:
                    raise ModelArgumentError(f"transition {b}: floor({planes} * reduction={reduction}) = 0 channels")
                features[f"trans{b}"] = Transition(planes, out_planes, g.transition, name=f"transition {b}")
                planes = out_planes
        self.features = nn.Sequential(features)
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)
        self.num_features = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.features(x)))
        out = F.adaptive_avg_pool2d(out, 1)  # == avg_pool2d(out, 4) for four blocks at 32x32
        return self.linear(torch.flatten(out, 1))


@register(
    "densenet-cifar",
    description="Configurable CIFAR DenseNet-BC (kuangliu densenet_cifar: k=12, blocks 6/12/24/16), optional groups",
    source=_SOURCE,
    input_size=_INPUT,
    example={"growth_rate": 6, "groups": 2},
)
def densenet_cifar(
    num_classes: int = 10,
    growth_rate: int = 12,
    blocks: Sequence[int] = (6, 12, 24, 16),
    reduction: float = 0.5,
    groups: int | str | Mapping[str, int] | DenseNetGroups | None = None,
    seed: int | None = 0,
) -> DenseNetCIFAR:
    """Configurable CIFAR DenseNet-BC; the defaults are kuangliu's ``densenet_cifar()``.

    Source: Huang et al. 2017 (arXiv:1608.06993), kuangliu/pytorch-cifar ``DenseNet``.
    Input: ``(1, 3, 32, 32)``. 1,000,618 parameters with the defaults (k=12, blocks 6/12/24/16, 10 classes).
    ``groups`` maps ``stem``/``bottleneck``/``conv3x3``/``transition`` to group counts (default 1); an int
    ``g`` groups every kind of convolution whose channels ``g`` divides (the stem's 3 inputs only take 3).
    """
    channels = conv_channels(growth_rate, blocks, reduction) if isinstance(groups, (int, str)) else None
    resolved = resolve_groups(groups, DenseNetGroups(), KINDS, channels)
    return build_seeded(lambda: DenseNetCIFAR(growth_rate, blocks, reduction, num_classes, resolved), seed)


@register(
    "densenet121-cifar",
    description="DenseNet-121 for CIFAR (kuangliu DenseNet121: k=32, blocks 6/12/24/16); 6.96M params",
    source=_SOURCE,
    input_size=_INPUT,
)
def densenet121_cifar(num_classes: int = 10, seed: int | None = 0) -> DenseNetCIFAR:
    """DenseNet-121 for CIFAR: growth 32, blocks ``(6, 12, 24, 16)``, reduction 0.5.

    Source: Huang et al. 2017 (arXiv:1608.06993), kuangliu/pytorch-cifar ``DenseNet121``.
    Input: ``(1, 3, 32, 32)``. 6,956,298 parameters at 10 classes.
    """
    return build_seeded(lambda: DenseNetCIFAR(32, (6, 12, 24, 16), 0.5, num_classes), seed)


@register(
    "densenet-bc-100-k12-cifar",
    description="DenseNet-BC (L=100, k=12) for CIFAR: 3 blocks of 16 bottleneck layers; 0.77M params",
    source="Huang et al. 2017 (arXiv:1608.06993), Table 2 'DenseNet-BC (L=100, k=12)' 0.8M",
    input_size=_INPUT,
)
def densenet_bc100_k12_cifar(num_classes: int = 10, seed: int | None = 0) -> DenseNetCIFAR:
    """DenseNet-BC with depth 100 and growth 12: three blocks of (100 - 4) / 6 = 16 bottleneck layers.

    Source: Huang et al. 2017 (arXiv:1608.06993), Table 2 (reported as 0.8M parameters).
    Input: ``(1, 3, 32, 32)`` (final feature map 8x8, globally pooled). 769,162 parameters at 10 classes.
    """
    return build_seeded(lambda: DenseNetCIFAR(12, (16, 16, 16), 0.5, num_classes), seed)
