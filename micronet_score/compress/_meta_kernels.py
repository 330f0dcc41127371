"""A shape-only (Meta) kernel for the per-tensor fake-quant op with tensor scale and zero point.

torch ships no Meta kernel for ``aten._fake_quantize_per_tensor_affine_cachemask_tensor_qparams`` (the op behind
``torch.fake_quantize_per_tensor_affine(x, scale_tensor, zero_point_tensor, ...)``). ``torch.export`` traces with
fake tensors and, without that kernel, falls back to running the real kernel on zeros, which it cannot do once
a dimension is symbolic: a fake-quantized model would export with a fixed batch only. The kernel registered here
returns the op's outputs (the values and the bool mask of in-range values) shaped like the input and computes
nothing; it is registered once, only when this torch has no Meta kernel of its own for the op. Real tensors
never reach it.
"""

from __future__ import annotations

import torch
from torch import Tensor

_OP = "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams"
_LIBRARY: torch.library.Library | None = None  # kept alive: a Library removes its kernels when collected


def _fake_quant_cachemask_meta(x: Tensor, scale: Tensor, zero_point: Tensor, fake_quant_enabled: Tensor,
                               quant_min: int, quant_max: int) -> tuple[Tensor, Tensor]:
    torch._check(quant_min <= quant_max, lambda: f"quant_min ({quant_min}) must be <= quant_max ({quant_max})")
    return torch.empty_like(x), torch.empty_like(x, dtype=torch.bool)


def register() -> None:
    """Register the Meta kernel unless this torch (or an earlier call) already has one."""
    global _LIBRARY
    if _LIBRARY is not None or not hasattr(torch.ops.aten, _OP):
        return
    if torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{_OP}", "Meta"):
        return
    library = torch.library.Library("aten", "IMPL")  # noqa: TOR901 - adds a kernel to an existing aten op
    library.impl(_OP, _fake_quant_cachemask_meta, "Meta")
    _LIBRARY = library


register()
