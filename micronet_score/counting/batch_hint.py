"""Say "add the batch dimension" when a forward pass failed on an input that lacks it.

A convolution accepts an unbatched image (C x H x W), so a missing batch dimension fails further on, in a
batch norm ("expected 4D input (got 3D input)") or in a linear layer after a flatten: the error names that layer,
not the input. The input lacks its batch dimension when it has one dimension fewer than the model's first
convolution or 2-d/3-d batch norm takes batched.

>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
>>> missing_batch_hint(net, [torch.zeros(3, 32, 32)])
'the input of shape (3, 32, 32) has no batch dimension: add the batch dimension (e.g. (1, 3, 32, 32))'
>>> missing_batch_hint(net, [torch.zeros(1, 3, 32, 32)]) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd


def _spatial_dims(module: torch.nn.Module) -> int | None:
    if isinstance(module, _ConvNd):
        return len(module.kernel_size)
    if isinstance(module, _BatchNorm) and not isinstance(module, torch.nn.BatchNorm1d):
        return {torch.nn.BatchNorm2d: 2, torch.nn.BatchNorm3d: 3}.get(type(module))
    return None


def missing_batch_hint(model: torch.nn.Module, tensors: Sequence[torch.Tensor]) -> str | None:
    """The hint when the first input has one dimension fewer than the model's first convolution (or 2-d/3-d
    batch norm) takes batched (``C x H x W`` for a ``Conv2d``); None otherwise."""
    if not tensors or not tensors[0].is_floating_point():
        return None
    first = tensors[0]
    for module in model.modules():
        dims = _spatial_dims(module)
        if dims is not None:
            if first.ndim != dims + 1:
                return None
            shape = tuple(first.shape)
            return (f"the input of shape {shape} has no batch dimension: add the batch dimension "
                    f"(e.g. {(1, *shape)})")
    return None
