"""Reference model zoo: pure-PyTorch builders of the networks micronet-score is checked against.

>>> from micronet_score import models
>>> sorted(models.names())[:2]
['densenet-bc-100-k12-cifar', 'densenet-cifar']
>>> models.input_size("resnet18-cifar")
(1, 3, 32, 32)
>>> model = models.build("resnet18-cifar", num_classes=100, seed=1)

Every builder accepts ``num_classes`` and ``seed`` (``int`` for deterministic initialisation that leaves
torch's global RNG untouched, ``None`` to draw from the global RNG), and works under
``with torch.device("meta"):``.
"""

from __future__ import annotations

# Importing the builder modules registers their models; this order is the order of names().
# isort: off
from . import resnet_cifar, preact_resnet_cifar, densenet_cifar, densenet_seed  # noqa: F401
from . import wideresnet, mobilenetv2, efficientnet, lstm_lm  # noqa: F401

# isort: on
from .densenet_cifar import DenseNetGroups
from .errors import ModelArgumentError
from .registry import ModelSpec, UnknownModelError, build, example_inputs, input_size, names, spec

__all__ = [
    "DenseNetGroups", "ModelArgumentError", "ModelSpec", "UnknownModelError", "build", "example_inputs", "input_size",
    "names", "spec",
]  # fmt: skip
