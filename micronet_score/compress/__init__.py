"""Pruning and quantization utilities, in the style of ``torchao``'s ``quantize_(model, config)``.

Verbs ending in ``_`` change the model in place and return it; what to do is described by frozen,
validated config dataclasses.

>>> import torch
>>> from torch import nn
>>> from micronet_score.compress import (
...     FakeQuant, GlobalUnstructured, calibrate, finalize_, prune_, quantize_, sparsity)
>>> model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
>>> model = finalize_(prune_(model, GlobalUnstructured(amount=0.5)))  # the classifier is left alone
>>> model = quantize_(model, FakeQuant(weight_bits=8, act_bits=8))
>>> _ = calibrate(model, [torch.randn(4, 1, 8, 8)])
>>> model(torch.randn(2, 1, 8, 8)).shape
torch.Size([2, 10])
"""

from ._layers import DEFAULT_LAYER_TYPES, FilterFn
from .base import (
    CompressionConfig,
    config_from_dict,
    config_types,
    register_finalizer,
    register_pruner,
    register_quantizer,
)
from .calibration import calibrate
from .channel_graph import UntraceableModelError
from .configs import (
    LAST_CLASSIFIER,
    BlockSparse,
    FakeQuant,
    Finalize,
    GlobalUnstructured,
    Half,
    LayerUnstructured,
    MixedPrecision,
    NMSparse,
    PruneConfig,
    QuantizeConfig,
    StructuredFilters,
)
from .errors import (
    CompressionError,
    ConfigError,
    ConfigTypeError,
    LayerEmptiedWarning,
    LayersSkippedWarning,
)
from .fakequant import (
    ActivationFakeQuantizer,
    FakeQuantConv1d,
    FakeQuantConv2d,
    FakeQuantConv3d,
    FakeQuantLinear,
    WeightFakeQuantizer,
    quant_range,
)
from .finalize import finalize_
from .history import Step, applied, apply_, history, replay_
from .masks import BlockMagnitude, NMMagnitude, block_mask, nm_mask
from .pruning import prune_
from .quantization import quantize_
from .sparsity import sparsity
from .structured import shrink_

__all__ = [
    "DEFAULT_LAYER_TYPES",
    "LAST_CLASSIFIER",
    "CompressionConfig",
    "CompressionError",
    "ConfigError",
    "ConfigTypeError",
    "Finalize",
    "LayerEmptiedWarning",
    "LayersSkippedWarning",
    "MixedPrecision",
    "Step",
    "applied",
    "apply_",
    "config_from_dict",
    "config_types",
    "history",
    "register_finalizer",
    "register_pruner",
    "register_quantizer",
    "replay_",
    "ActivationFakeQuantizer",
    "BlockMagnitude",
    "BlockSparse",
    "FakeQuant",
    "FakeQuantConv1d",
    "FakeQuantConv2d",
    "FakeQuantConv3d",
    "FakeQuantLinear",
    "FilterFn",
    "GlobalUnstructured",
    "Half",
    "LayerUnstructured",
    "NMMagnitude",
    "NMSparse",
    "PruneConfig",
    "QuantizeConfig",
    "StructuredFilters",
    "UntraceableModelError",
    "WeightFakeQuantizer",
    "block_mask",
    "calibrate",
    "finalize_",
    "nm_mask",
    "prune_",
    "quant_range",
    "quantize_",
    "shrink_",
    "sparsity",
]
