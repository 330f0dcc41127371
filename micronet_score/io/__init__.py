"""Reading what people submit: checkpoint files scanned for their non-zeros, or loaded into a model, safely.

One concern per file: :mod:`~micronet_score.io.files` (regular files only, any path),
:mod:`~micronet_score.io.sniff` (the format), :mod:`~micronet_score.io.safetensors_reader`,
:mod:`~micronet_score.io.torch_zip` (declared sizes checked, weights-only unpickling),
:mod:`~micronet_score.io.pickle_scan` (globals and storages read from opcodes),
:mod:`~micronet_score.io.unwrap` (the state dict inside), :mod:`~micronet_score.io.nonzeros` (the counter),
:mod:`~micronet_score.io.pages` (resident memory), :mod:`~micronet_score.io.scan`,
:mod:`~micronet_score.io.matching`, :mod:`~micronet_score.io.fake_quant`, :mod:`~micronet_score.io.loading` and
:mod:`~micronet_score.io.exported` (``.pt2`` exported programs).
"""

from micronet_score.errors import CheckpointError
from micronet_score.io.exported import load_exported
from micronet_score.io.files import CheckpointNotFoundError
from micronet_score.io.limits import Limits
from micronet_score.io.loading import Loaded, LoadNote, load_checkpoint, load_weights, read_state_dict
from micronet_score.io.scan import DEFAULT_CHUNK_BYTES, scan_checkpoint
from micronet_score.io.stats import CheckpointStats, TensorStats

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "CheckpointError",
    "CheckpointNotFoundError",
    "CheckpointStats",
    "LoadNote",
    "Limits",
    "Loaded",
    "TensorStats",
    "load_checkpoint",
    "load_exported",
    "load_weights",
    "read_state_dict",
    "scan_checkpoint",
]
