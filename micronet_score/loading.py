"""Compatibility path: loading submitted checkpoints lives in :mod:`micronet_score.io.loading`.

>>> from micronet_score.loading import load_weights  # the same function as micronet_score.io's
"""

from micronet_score.errors import CheckpointError
from micronet_score.io.loading import Loaded, LoadNote, load_checkpoint, load_weights, read_state_dict

__all__ = ["CheckpointError", "LoadNote", "Loaded", "load_checkpoint", "load_weights", "read_state_dict"]
