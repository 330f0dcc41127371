"""``quantize_``: fake quantization and 16-bit conversion, per model or per layer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ._layers import format_types, select_layers
from .base import CompressionConfig, handler_for, register_quantizer
from .configs import FakeQuant, Half, MixedPrecision, QuantizeConfig
from .errors import CompressionError, ConfigTypeError
from .fakequant import FAKE_QUANT_CLASSES, ActivationFakeQuantizer, WeightFakeQuantizer
from .history import apply_

_FAKE_QUANT_TYPES = tuple(FAKE_QUANT_CLASSES.values())


def quantize_(
    model: nn.Module, config: CompressionConfig | Mapping[str, QuantizeConfig]
) -> nn.Module:
    """Quantize ``model`` in place, record ``config`` (see :func:`applied`) and return ``model``.

    ``config`` is one :class:`FakeQuant` / :class:`Half` (or a config registered with
    :func:`register_quantizer`), or a mapping ``module name -> config`` for mixed precision (recorded as
    :class:`MixedPrecision`): each config applies to the selected layers inside the named module (``""``
    is the whole model), and when several names cover a layer the longest (most specific) wins. Anything
    else raises :class:`ConfigTypeError` naming the accepted types.

    :class:`FakeQuant` changes the class of each selected ``nn.Conv1d/2d/3d``/``nn.Linear`` in
    place to its fake-quantized subclass (``FakeQuantConv2d`` ...), so the layer object, its name and
    its parameter names are unchanged (``features.0.weight`` stays ``features.0.weight``; a pruned
    layer keeps ``weight_orig``/``weight_mask``). Two children are added: ``<layer>.weight_fake_quant``
    (stateless) and ``<layer>.input_fake_quant`` (buffers ``min_val``/``max_val``). Run
    :func:`calibrate` before the first forward pass when ``act_bits`` is set. To load a saved
    ``state_dict``, build the float model, call ``quantize_`` with the same config, then load.

    :class:`Half` casts parameters and floating buffers of the selected modules to float16/bfloat16.

    >>> import torch
    >>> from torch import nn
    >>> from micronet_score.compress import FakeQuant, calibrate, quantize_
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    >>> model = quantize_(model, {"": FakeQuant(weight_bits=8), "3": FakeQuant(weight_bits=4)})
    >>> type(model[0]).__name__, model[3].weight_fake_quant.bits
    ('FakeQuantConv2d', 4)
    >>> ranges = calibrate(model, [torch.randn(2, 1, 8, 8)])
    >>> model(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    if isinstance(config, Mapping):
        for key, value in config.items():
            if not isinstance(value, (FakeQuant, Half)):
                raise ConfigTypeError(
                    f"quantize_: config for {key!r} must be FakeQuant or Half, got {type(value).__name__}"
                )
        config = MixedPrecision(dict(config))
    handler_for(config, "quantize")
    return apply_(model, config)


@register_quantizer(FakeQuant)
@register_quantizer(Half)
@register_quantizer(MixedPrecision)
def _quantize(model: nn.Module, config: QuantizeConfig) -> None:
    plan = _plan(model, config)
    for name, (module, layer_config) in plan.items():
        if isinstance(layer_config, FakeQuant):
            _fake_quant_layer(module, name, layer_config)
        else:
            # Only the outermost module converted by a given Half config casts inputs/outputs.
            parents = [name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)] + ([""] if name else [])
            covered = any(plan.get(p, (None, None))[1] is layer_config for p in parents)
            _half_module(module, layer_config, hooks=layer_config.cast_io and not covered)


def _plan(model: nn.Module, config: Any) -> dict[str, tuple[nn.Module, QuantizeConfig]]:
    config = config.configs if isinstance(config, MixedPrecision) else {"": config}
    modules = dict(model.named_modules())
    for key in config:
        if key not in modules:
            raise CompressionError(
                f"quantize_: no module named {key!r} in the model; names look like {sorted(modules)[:8]}"
            )
    plan: dict[str, tuple[nn.Module, QuantizeConfig]] = {}
    # Shorter names first, so more specific entries overwrite the broader ones.
    for key in sorted(config, key=lambda k: (0 if k == "" else k.count(".") + 1, k)):
        layer_config = config[key]
        selected = list(select_layers(model, layer_config.layer_types, layer_config.filter_fn, root=key))
        if isinstance(layer_config, FakeQuant):
            selected = [(n, m) for n, m in selected if _fake_quantizable(m)]
            if not selected:
                where = f" inside {key!r}" if key else ""
                raise CompressionError(
                    f"FakeQuant: no layer{where} of exact type nn.Conv1d/2d/3d or nn.Linear matches "
                    f"layer_types={format_types(layer_config.layer_types)} and filter_fn"
                )
        for name, module in selected:
            plan[name] = (module, layer_config)
    return plan


def _fake_quantizable(module: nn.Module) -> bool:
    return type(module) in FAKE_QUANT_CLASSES or type(module) in _FAKE_QUANT_TYPES


def _fake_quant_layer(module: nn.Module, name: str, config: FakeQuant) -> None:
    if type(module) in FAKE_QUANT_CLASSES:
        module.__class__ = FAKE_QUANT_CLASSES[type(module)]
    weight_fq = None
    if config.weight_bits is not None:
        weight_fq = WeightFakeQuantizer(
            config.weight_bits, per_channel=config.per_channel, symmetric=config.symmetric
        )
    input_fq = None
    if config.act_bits is not None:
        input_fq = ActivationFakeQuantizer(config.act_bits, symmetric=config.act_symmetric, layer_name=name)
        device = next((t.device for t in module.parameters()), None)
        if device is not None:
            input_fq.to(device)
    module.register_module("weight_fake_quant", weight_fq)
    module.register_module("input_fake_quant", input_fq)


class CastInputs:
    """Forward pre-hook casting floating-point tensor inputs to ``dtype`` (picklable)."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        module._half_input_dtype = next((a.dtype for a in args if _is_float_tensor(a)), None)
        return tuple(a.to(self.dtype) if _is_float_tensor(a) else a for a in args)


class CastOutputBack:
    """Forward hook casting a floating-point tensor output back to the dtype the input had."""

    def __call__(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        dtype = module.__dict__.pop("_half_input_dtype", None)
        if dtype is not None and _is_float_tensor(output):
            return output.to(dtype)
        return output


def _is_float_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _half_module(module: nn.Module, config: Half, *, hooks: bool) -> None:
    with torch.no_grad():
        for param in module.parameters(recurse=False):
            if param.is_floating_point():
                param.data = param.data.to(config.dtype)
                param.grad = None
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf is not None and buf.is_floating_point():
                setattr(module, name, buf.to(config.dtype))
    if hooks and not any(isinstance(h, CastInputs) for h in module._forward_pre_hooks.values()):
        module.register_forward_pre_hook(CastInputs(config.dtype))
        module.register_forward_hook(CastOutputBack())
