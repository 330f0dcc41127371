"""Compatibility path: the checkpoint scanner lives in :mod:`micronet_score.io` (``micronet-score scan FILE``).

>>> from micronet_score.checkpoint import scan_checkpoint  # the same function as micronet_score.io's
"""

from micronet_score.errors import CheckpointError
from micronet_score.io.scan import DEFAULT_CHUNK_BYTES, scan_checkpoint
from micronet_score.io.stats import CheckpointStats, TensorStats

__all__ = ["DEFAULT_CHUNK_BYTES", "CheckpointError", "CheckpointStats", "TensorStats", "scan_checkpoint"]
