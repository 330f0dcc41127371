"""The grouped CIFAR DenseNet the project grew from (``densenet-seed``).

A student team's MicroNet Challenge entry reached 90.1% CIFAR-10 accuracy with a small DenseNet-BC
(kuangliu layout, blocks 6/12/24/16, reduction 0.5) using grouped convolutions: groups 3 on the stem,
2 on the dense layers' 3x3 convs and 3 on the transitions (1x1 bottleneck convs dense).
"""

from __future__ import annotations

from collections.abc import Mapping

from ._groups import conv_channels, resolve_groups
from ._init import build_seeded
from .densenet_cifar import DenseNetCIFAR, DenseNetGroups
from .registry import register

#: Group counts of the seed model.
SEED_GROUPS = DenseNetGroups(stem=3, bottleneck=1, conv3x3=2, transition=3)
#: Dense layers per block of the seed model.
SEED_BLOCKS = (6, 12, 24, 16)


@register(
    "densenet-seed",
    description="Grouped CIFAR DenseNet-BC the project grew from: k=6, blocks 6/12/24/16, groups stem 3/3x3 2/trans 3",
    source="MicroNet Challenge 2019 student entry (90.1% CIFAR-10); DenseNet-BC, Huang et al. 2017",
    input_size=(1, 3, 32, 32),
    example={"groups": "conv3x3:2,transition:3", "num_classes": 100},
)
def densenet_seed(
    num_classes: int = 10,
    growth_rate: int = 6,
    groups: int | str | Mapping[str, int] | DenseNetGroups | None = None,
    seed: int | None = 0,
) -> DenseNetCIFAR:
    """Grouped DenseNet-BC: growth 6, blocks ``(6, 12, 24, 16)``, reduction 0.5, groups stem 3, 1x1
    bottleneck 1, 3x3 conv 2, transition 3.

    Growth rate choice: the stem (3 -> 2k channels, groups 3) needs 3 | 2k, so 3 | k; the 3x3 convs
    (4k -> k, groups 2) need 2 | k; the transitions (8k -> 4k, 16k -> 8k, 32k -> 16k, groups 3) then
    divide too. So k is a multiple of 6, and k = 6 (205,186 parameters) is the valid growth rate closest
    to the ~112k parameters reported for the entry (k = 12 already has about 0.8M).

    ``groups``: None keeps the seed's counts; an int ``g`` regroups the seed's grouped stages (stem, 3x3,
    transition) wherever ``g`` divides their channels (``groups=2``: 3x3 and transitions at 2, the stem's 3
    input channels keep 3, with a warning saying so); a mapping or ``"conv3x3:2,transition:3"`` sets the
    named kinds (``stem``, ``bottleneck``, ``conv3x3``, ``transition``) and keeps the seed's for the rest.

    Input: ``(1, 3, 32, 32)``. 205,186 parameters at 10 classes.
    """
    channels = conv_channels(growth_rate, SEED_BLOCKS, 0.5) if isinstance(groups, (int, str)) else None
    resolved = resolve_groups(groups, SEED_GROUPS, ("stem", "conv3x3", "transition"), channels)
    return build_seeded(lambda: DenseNetCIFAR(growth_rate, SEED_BLOCKS, 0.5, num_classes, resolved), seed)
