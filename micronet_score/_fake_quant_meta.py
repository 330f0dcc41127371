"""A shape-only (Meta) kernel for the per-tensor fake-quant op with tensor scale and zero point.

torch ships no Meta kernel for ``aten._fake_quantize_per_tensor_affine_cachemask_tensor_qparams`` (the op behind
``torch.fake_quantize_per_tensor_affine(x, scale_tensor, zero_point_tensor, ...)``, which the activation
quantizers of :mod:`micronet_score.compress` run). ``torch.export`` traces with fake tensors and, without that
kernel, falls back to running the real kernel on zeros, which it cannot do once a dimension is symbolic: a
fake-quantized model would export with a fixed batch only. The kernel registered here returns the op's outputs
(the values, and the bool mask of in-range values) shaped like the input and computes nothing; it is registered
once, only where this torch has no Meta kernel of its own for the op. Real tensors never reach it. Imported by
:mod:`micronet_score.compress.fakequant` (exporting) and :mod:`micronet_score.io.exported` (a loaded program
traced again).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

_LIBRARY: torch.library.Library | None = None  # kept alive: a Library removes its kernels when collected


def _values_and_mask(x: Tensor, *args: Any) -> tuple[Tensor, Tensor]:
    return torch.empty_like(x), torch.empty_like(x, dtype=torch.bool)


_OPS = ("_fake_quantize_per_tensor_affine_cachemask_tensor_qparams",)


def register() -> None:
    """Register the Meta kernel where this torch lacks one (once; later calls do nothing)."""
    global _LIBRARY
    if _LIBRARY is not None:
        return
    library = torch.library.Library("aten", "IMPL")  # adds a kernel to an existing aten op
    for op in _OPS:
        if hasattr(torch.ops.aten, op) and not torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{op}", "Meta"):
            library.impl(op, _values_and_mask, "Meta")
    _LIBRARY = library


register()
