"""Fake-quantizer modules and the fake-quantized conv/linear layer classes.

Every quantization goes through torch's own fake-quant ops with ``quant_min``/``quant_max`` set
for the bit width, so a dispatch-level tracer sees ``aten._fake_quantize_per_tensor_affine_cachemask_tensor_qparams``
or ``aten.fake_quantize_per_channel_affine_cachemask`` with ``ceil(log2(quant_max - quant_min + 1))``
bits. The ops' backward is the straight-through estimator (gradient 1 inside the grid range, 0 where
values were clamped), so training through a fake-quantized model updates the float weights.

Per-tensor quantization passes its scale and zero point as tensors (the ``tensor_qparams`` overload, dispatched
as ``aten._fake_quantize_per_tensor_affine_cachemask_tensor_qparams``), never read back into Python numbers, so
a fake-quantized model can be traced by ``torch.export`` (also with a dynamic batch).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from micronet_score import _fake_quant_meta  # noqa: F401 - the Meta kernel torch.export needs for a dynamic batch

_EPS = torch.finfo(torch.float32).eps


def quant_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer grid for ``bits``: signed ``-(2**(b-1)) .. 2**(b-1)-1`` or unsigned ``0 .. 2**b-1``.

    >>> quant_range(8, signed=True), quant_range(4, signed=False)
    ((-128, 127), (0, 15))
    """
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _qparams(lo: Tensor, hi: Tensor, qmin: int, qmax: int, symmetric: bool) -> tuple[Tensor, Tensor]:
    # The grid always contains 0 exactly, so pruned (zero) weights stay zero after fake-quant.
    lo = torch.clamp(lo.float(), max=0.0)
    hi = torch.clamp(hi.float(), min=0.0)
    if symmetric:
        scale = torch.maximum(-lo, hi) / qmax
        zero_point = torch.zeros_like(scale)
    else:
        scale = (hi - lo) / (qmax - qmin)
        scale = torch.clamp(scale, min=_EPS)
        zero_point = torch.clamp(qmin - torch.round(lo / scale), qmin, qmax)
    return torch.clamp(scale, min=_EPS), zero_point.to(torch.int32)


class _RecordsGrid:
    """Writes the integer grid (``quant_min``, ``quant_max``; ``per_channel`` for weights) into the state dict
    beside the quantizer's buffers, so a saved model reloads at its own widths; on load, a recorded grid must
    equal this quantizer's (a different width is an error, never silently re-priced). The values are ints on the
    module, not buffers, so counting and ``named_buffers`` are unchanged."""

    quant_min: int
    quant_max: int
    _RECORDED: tuple[str, ...] = ("quant_min", "quant_max")

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)  # type: ignore[misc]
        for name in self._RECORDED:
            destination[prefix + name] = torch.tensor(int(getattr(self, name)), dtype=torch.int64)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, local_metadata: Any, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        for name in self._RECORDED:
            value = state_dict.pop(prefix + name, None)
            if value is None:
                continue
            own = int(getattr(self, name))
            if not isinstance(value, Tensor) or value.numel() != 1 or int(value.item()) != own:
                shown = value.flatten()[:3].tolist() if isinstance(value, Tensor) else type(value).__name__
                error_msgs.append(f"{prefix}{name}: the checkpoint records {shown}, this quantizer has {own} "
                                  f"(bits={getattr(self, 'bits', '?')}); quantize with the checkpoint's widths")
        super()._load_from_state_dict(  # type: ignore[misc]
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


class WeightFakeQuantizer(_RecordsGrid, nn.Module):
    """Fake-quantizes a weight with a range taken from the weight itself (min/max, or max |w|
    when symmetric), per output channel (axis 0) or per tensor. Its only state is its grid
    (``quant_min``/``quant_max``/``per_channel``, recorded in the state dict)."""

    _RECORDED = ("quant_min", "quant_max", "per_channel")

    def __init__(self, bits: int, *, per_channel: bool = True, symmetric: bool = True, axis: int = 0) -> None:
        super().__init__()
        self.bits = bits
        self.per_channel = per_channel
        self.symmetric = symmetric
        self.axis = axis
        self.quant_min, self.quant_max = quant_range(bits, signed=symmetric)

    def qparams(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        """Scale and zero point (per channel, or 0-dim tensors per tensor) for ``weight``."""
        with torch.no_grad():
            w = weight.detach()
            if self.per_channel:
                flat = w.movedim(self.axis, 0).reshape(w.shape[self.axis], -1)
                lo, hi = flat.amin(dim=1), flat.amax(dim=1)
            else:
                lo, hi = w.amin(), w.amax()
            return _qparams(lo, hi, self.quant_min, self.quant_max, self.symmetric)

    def forward(self, weight: Tensor) -> Tensor:
        scale, zero_point = self.qparams(weight)
        if self.per_channel:
            return torch.fake_quantize_per_channel_affine(
                weight, scale, zero_point, self.axis, self.quant_min, self.quant_max
            )
        return torch.fake_quantize_per_tensor_affine(weight, scale, zero_point, self.quant_min, self.quant_max)

    def extra_repr(self) -> str:
        grid = "symmetric" if self.symmetric else "affine"
        return f"bits={self.bits}, {'per_channel' if self.per_channel else 'per_tensor'}, {grid}"


class ActivationFakeQuantizer(_RecordsGrid, nn.Module):
    """Per-tensor fake quantizer for activations with a static range.

    The range lives in the ``min_val``/``max_val`` buffers (saved in ``state_dict`` with the grid,
    ``quant_min``/``quant_max``). While
    ``observing`` is True (set by :func:`calibrate`) it records the running min/max of what passes
    through and returns its input unchanged; otherwise it fake-quantizes with that range.
    """

    min_val: Tensor
    max_val: Tensor

    def __init__(self, bits: int, *, symmetric: bool = False, layer_name: str = "") -> None:
        super().__init__()
        self.bits = bits
        self.symmetric = symmetric
        self.layer_name = layer_name
        self.observing = False
        self.quant_min, self.quant_max = quant_range(bits, signed=symmetric)
        self.register_buffer("min_val", torch.tensor(float("inf")))
        self.register_buffer("max_val", torch.tensor(float("-inf")))
        self._range_known = False  # the last answer of `calibrated` read from the buffers' values

    @property
    def calibrated(self) -> bool:
        """True when both ends of the range are finite. Read from the buffers, except while ``torch.export`` or
        ``torch.compile`` traces the model (its buffers then hold no values): the answer last read, which
        :func:`calibrate`, ``load_state_dict`` and every eager forward pass keep up to date."""
        if torch.compiler.is_compiling():
            return getattr(self, "_range_known", False)  # a module pickled before the attribute existed: False
        self._range_known = bool(torch.isfinite(self.min_val) and torch.isfinite(self.max_val))
        return self._range_known

    def reset(self) -> None:
        """Forget the observed range."""
        self.min_val.fill_(float("inf"))
        self.max_val.fill_(float("-inf"))
        self._range_known = False

    def qparams(self) -> tuple[Tensor, Tensor]:
        """Scale (float32) and zero point (int32), 0-dim tensors, for the calibrated range."""
        return _qparams(self.min_val, self.max_val, self.quant_min, self.quant_max, self.symmetric)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        if not (self.min_val.is_meta or self.max_val.is_meta):
            self.calibrated  # noqa: B018 - re-reads the loaded range for tracing

    def forward(self, x: Tensor) -> Tensor:
        if self.observing:
            with torch.no_grad():
                lo, hi = torch.aminmax(x.detach().float())
                self.min_val.copy_(torch.minimum(self.min_val, lo))
                self.max_val.copy_(torch.maximum(self.max_val, hi))
            return x
        if not self.calibrated:
            where = f" of layer {self.layer_name!r}" if self.layer_name else ""
            raise RuntimeError(
                f"the input{where} has no activation range yet: run "
                "micronet_score.compress.calibrate(model, batches) after quantize_ and before the "
                "forward pass (or use FakeQuant(act_bits=None) to keep activations in float)"
            )
        scale, zero_point = self.qparams()  # tensors: export traces them instead of reading their values
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, self.quant_min, self.quant_max)

    def extra_repr(self) -> str:
        grid = "symmetric" if self.symmetric else "affine"
        return (
            f"bits={self.bits}, {grid}, min_val={self.min_val.item():.4g}, max_val={self.max_val.item():.4g}"
        )


class _FakeQuantLayer:
    """Shared parts of the fake-quantized layers: the two optional quantizer submodules."""

    weight_fake_quant: WeightFakeQuantizer | None
    input_fake_quant: ActivationFakeQuantizer | None

    def _quantized_input_and_weight(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.input_fake_quant is not None:
            x = self.input_fake_quant(x)
        weight = self.weight  # type: ignore[attr-defined]
        if self.weight_fake_quant is not None:
            weight = self.weight_fake_quant(weight)
        return x, weight


class FakeQuantLinear(_FakeQuantLayer, nn.Linear):
    """``nn.Linear`` whose input and weight pass through fake quantizers."""

    def forward(self, input: Tensor) -> Tensor:
        x, weight = self._quantized_input_and_weight(input)
        return F.linear(x, weight, self.bias)


class FakeQuantConv1d(_FakeQuantLayer, nn.Conv1d):
    """``nn.Conv1d`` whose input and weight pass through fake quantizers."""

    def forward(self, input: Tensor) -> Tensor:
        x, weight = self._quantized_input_and_weight(input)
        return self._conv_forward(x, weight, self.bias)


class FakeQuantConv2d(_FakeQuantLayer, nn.Conv2d):
    """``nn.Conv2d`` whose input and weight pass through fake quantizers."""

    def forward(self, input: Tensor) -> Tensor:
        x, weight = self._quantized_input_and_weight(input)
        return self._conv_forward(x, weight, self.bias)


class FakeQuantConv3d(_FakeQuantLayer, nn.Conv3d):
    """``nn.Conv3d`` whose input and weight pass through fake quantizers."""

    def forward(self, input: Tensor) -> Tensor:
        x, weight = self._quantized_input_and_weight(input)
        return self._conv_forward(x, weight, self.bias)


#: Float layer type -> its fake-quantized counterpart.
FAKE_QUANT_CLASSES: dict[type[nn.Module], type[nn.Module]] = {
    nn.Linear: FakeQuantLinear,
    nn.Conv1d: FakeQuantConv1d,
    nn.Conv2d: FakeQuantConv2d,
    nn.Conv3d: FakeQuantConv3d,
}
