"""What the tracer records for each costed operator call."""

from __future__ import annotations

from dataclasses import dataclass

from micronet_score.counting.batchnorm import BatchNormUse, FoldTarget


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
