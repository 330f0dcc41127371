"""What the tracer records for each costed operator call."""

from __future__ import annotations

from dataclasses import dataclass

from micronet_score.counting.batchnorm import BatchNormUse, ChannelAffine, FoldTarget


@dataclass
class Event:
    """One costed operator call (whole batch), charged to ``module``."""

    module: str
    op: str
    mults: int
    adds: int
    mult_bits: int
    fold: FoldTarget | None = None
    batchnorm: BatchNormUse | None = None
    affine: ChannelAffine | None = None  # half of a frozen batch norm, maybe
