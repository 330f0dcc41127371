"""Counting at module level, as the course scripts do (conventions with ``attribution = "leaf-modules"``).

Forward hooks on the model's modules price each call of a module the convention knows; functional calls
(``F.relu``, ``F.avg_pool2d``) and modules it does not know cost nothing, and are listed in
:attr:`LeafProfile.uncounted` so nothing is skipped silently. Spec section 4, ``imta-profile``:

- ``Conv2d``, per output element: (k²·C_in·b/32 + k²·C_in − 1) / groups, plus 1 with a bias;
- ``Linear``, per output element: in·b/32 + in − 1 (bias ignored);
- every other module from the convention's :class:`~micronet_score.convention.CostOverride` s
  (``imta-profile``: ``BatchNorm2d`` 3 ops per input element, ``ReLU`` 1 per element, ``AvgPool2d`` k² per
  output); multiplies weigh b/32, additions accumulator_bits/32, plain ``ops`` 1;
- parameters: every ``nn.Parameter`` element (buffers excluded; a pruned weight read as the weight the forward
  uses), its non-zeros at b/32, no mask.

It also measures what the closed form of ``imta-2025`` needs: the non-zero parameters and the MACs of
conv/linear layers with fully zeroed (or removed) filters dropped.

>>> import torch
>>> from micronet_score.counting.leaf_profile import profile
>>> p = profile(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.ReLU()), (1, 3, 6, 6))
>>> p.ops  # conv: 8x4x4 outputs x (27 x 16/32 + 27 - 1) = 5,056; ReLU: 128
5184.0
>>> p.params, p.macs  # 8 x 27 weights; 27 MACs x 128 outputs
(216, 3456)
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from micronet_score.bits import Precision, dtype_bits, range_bits
from micronet_score.convention import Convention, get_convention
from micronet_score.counting.batch_hint import missing_batch_hint
from micronet_score.counting.inputs import InputsLike, flat_tensors, prepare_inputs
from micronet_score.counting.storage import count_nonzero
from micronet_score.errors import ForwardError, InputError, MicronetError

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class LeafRow:
    """One module's cost per example: ``ops`` as the convention prices it, ``macs`` of a conv/linear."""

    name: str
    type: str
    calls: int
    ops: float
    macs: int
    mults: float = 0  # raw multiplies (weighed b/32 in ``ops``)
    adds: float = 0  # raw additions and plain ops (weighed 1 in ``ops``)


@dataclass(frozen=True)
class LeafParameter:
    """One ``nn.Parameter`` as the leaf counter stores it: its non-zeros at b bits, no mask."""

    name: str
    module: str
    shape: tuple[int, ...]
    params: int
    nonzero: int


@dataclass(frozen=True)
class LeafProfile:
    """The result of :func:`profile`; counts are per example.

    ``param_storage`` (non-zeros x ``weight_bits``/32) and ``math_ops`` are what the ``"micronet"`` formula
    divides by the baselines; ``nonzero_params``, ``macs``, ``weight_bits`` and ``activation_bits`` are the
    closed form's inputs (``imta-2025``).
    """

    params: int
    nonzero_params: int
    ops: float
    macs: int
    weight_bits: int
    activation_bits: int
    batch_size: int
    convention: str
    layers: tuple[LeafRow, ...]
    uncounted: tuple[str, ...]
    parameters: tuple[LeafParameter, ...] = ()
    module_types: tuple[tuple[str, str], ...] = ()  # (module, class name) of every module holding a parameter

    @property
    def param_storage(self) -> float:
        """Non-zero parameters at ``weight_bits``, no mask: nnz x b / 32."""
        return self.nonzero_params * self.weight_bits / 32

    @property
    def math_ops(self) -> float:
        return self.ops


def profile(
    model: nn.Module,
    inputs: InputsLike,
    *,
    convention: str | Convention = "imta-profile",
    bits: int | Precision | Mapping[Any, int | Precision] | None = None,
    batch_size: int | None = None,
    **count_options: Any,
) -> LeafProfile:
    """Count ``model`` on ``inputs`` module by module under a ``"leaf-modules"`` convention.

    ``bits``: the course's b, an int for weights and activations alike, a
    :class:`~micronet_score.bits.Precision` for separate widths, or a mapping whose widest value is used
    (default: the convention's ``default_bits``, else the widest floating dtype of the parameters and inputs).
    The model runs once in eval mode under ``torch.no_grad()``; its modes and hooks are left as they were.
    """
    conv = get_convention(convention)
    if count_options:
        raise InputError(f"{', '.join(sorted(count_options))}: not an option of leaf-module counting (convention "
                         f"{conv.name!r} takes bits and batch_size only)")
    if conv.attribution != "leaf-modules":
        raise InputError(f"profile() counts leaf modules; convention {conv.name!r} attributes by "
                         f"{conv.attribution!r}: use micronet_score.count")
    if not isinstance(model, nn.Module):
        raise InputError(f"profile() needs a torch.nn.Module, got {type(model).__name__}")
    args, kwargs = prepare_inputs(model, inputs)
    tensors = flat_tensors((args, kwargs))
    if not tensors:
        raise InputError("inputs hold no tensor: pass a tensor, a tuple of tensors, a dict or a shape")
    weight_bits, activation_bits = _widths(model, tensors, bits, conv)
    batch = batch_size if batch_size is not None else (tensors[0].shape[0] if tensors[0].dim() else 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch!r}")

    rows: dict[str, list[float]] = {}
    calls: Counter[str] = Counter()
    types: dict[str, str] = {}
    uncounted: set[str] = set()
    unpriced_weights: set[str] = set()  # modules holding a matrix the scheme prices at 0: said out loud

    def hook(name: str):
        def run(module: nn.Module, args: tuple, output: Any) -> None:
            x = next((a for a in args if isinstance(a, torch.Tensor)), None)
            y = output if isinstance(output, torch.Tensor) else None
            if x is None or y is None:
                uncounted.add(type(module).__name__)
                return
            ops, macs, mults, adds = _price(module, x, y, conv, weight_bits)
            row = rows.setdefault(name, [0.0, 0, 0.0, 0.0])
            row[0] += ops
            row[1] += macs
            row[2] += mults
            row[3] += adds
            calls[name] += 1
            types[name] = type(module).__name__
        return run

    handles = []
    modes = [(m, m.training) for m in model.modules()]
    try:
        for name, module in model.named_modules():
            if _priced(module, conv):
                handles.append(module.register_forward_hook(hook(name)))
            elif _is_leaf(module) and any(True for _ in module.parameters(recurse=False)):
                uncounted.add(type(module).__name__)
                if any(p.dim() >= 2 for p in module.parameters(recurse=False)):
                    unpriced_weights.add(type(module).__name__)
        model.eval()
        with torch.no_grad():
            try:
                model(*args, **kwargs)
            except MicronetError:
                raise
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                batch = missing_batch_hint(model, tensors)
                if batch is not None:
                    raise ForwardError(f"the forward pass failed: {batch} ({type(exc).__name__}: {first})") from exc
                raise ForwardError(f"the forward pass failed: {type(exc).__name__}: {first}; inputs had shapes "
                                   f"{', '.join(str(tuple(t.shape)) for t in tensors)}") from exc
        parameters = _parameters(model)
        params, nonzero = sum(p.params for p in parameters), sum(p.nonzero for p in parameters)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    if unpriced_weights:
        warnings.warn(f"convention {conv.name!r} prices these modules at 0 operations although they hold "
                      f"weights: {', '.join(sorted(unpriced_weights))}", stacklevel=2)
    layers = tuple(LeafRow(n, types[n], calls[n], r[0] / batch, _per_example(r[1], batch),
                           _per_example(r[2], batch), _per_example(r[3], batch))
                   for n, r in rows.items())
    return LeafProfile(
        params=params, nonzero_params=nonzero, ops=math.fsum(r[0] for r in rows.values()) / batch,
        macs=_per_example(sum(int(r[1]) for r in rows.values()), batch), weight_bits=weight_bits,
        activation_bits=activation_bits, batch_size=batch, convention=conv.name, layers=layers,
        uncounted=tuple(sorted(uncounted)), parameters=tuple(parameters),
        module_types=tuple((n, type(m).__name__) for n, m in model.named_modules()
                           if n in {q.module for q in parameters}),
    )


def _per_example(total: float, batch: int) -> Any:
    value = total / batch
    return int(value) if float(value).is_integer() else value


def _is_leaf(module: nn.Module) -> bool:
    return all(type(c).__name__ in ("ModuleDict", "ParametrizationList") for c in module.children())


def _priced(module: nn.Module, conv: Convention) -> bool:
    return isinstance(module, (nn.Conv2d, nn.Linear)) or conv.cost(type(module).__name__) is not None \
        or (isinstance(module, _CONVS) and conv.formula == "imta-2025")


def _price(module: nn.Module, x: torch.Tensor, y: torch.Tensor, conv: Convention,
           b: int) -> tuple[float, int, float, float]:
    """(ops as the convention prices them, conv/linear MACs with zeroed filters dropped, raw multiplies, raw
    additions and plain ops) of one call."""
    override = conv.cost(type(module).__name__)
    macs = 0
    if isinstance(module, _CONVS):
        k_cin = math.prod(module.kernel_size) * module.in_channels // module.groups
        positions = y.numel() // module.out_channels
        macs = positions * k_cin * _active_filters(module.weight)
    elif isinstance(module, nn.Linear):
        positions = y.numel() // module.out_features
        macs = positions * module.in_features * _active_filters(module.weight)
    if override is not None:
        units = {"output": y.numel(), "input": x.numel(),
                 "window": y.numel() * math.prod(_pair(getattr(module, "kernel_size", 1)))}[override.per]
        return (units * (override.ops + override.mults * b / 32 + override.adds * conv.accumulator_bits / 32), macs,
                units * override.mults, units * (override.adds + override.ops))
    if isinstance(module, nn.Conv2d):
        k2cin = math.prod(module.kernel_size) * module.in_channels
        per_output = (k2cin * b / 32 + k2cin - 1) / module.groups + (1 if module.bias is not None else 0)
        adds = (k2cin - 1) / module.groups + (1 if module.bias is not None else 0)
        return y.numel() * per_output, macs, y.numel() * k2cin / module.groups, y.numel() * adds
    if isinstance(module, nn.Linear):
        return (y.numel() * (module.in_features * b / 32 + module.in_features - 1), macs,
                y.numel() * module.in_features, y.numel() * (module.in_features - 1))
    return 0.0, macs, 0.0, 0.0  # a conv the closed form needs (MACs) that this scheme does not price


def _pair(k: Any) -> tuple[int, ...]:
    return tuple(k) if isinstance(k, (tuple, list)) else (k, k)


def _active_filters(weight: torch.Tensor) -> int:
    """Output channels (rows) with at least one non-zero weight: a fully zeroed filter is removed."""
    if weight.is_meta:
        return weight.shape[0]
    return int((count_nonzero(weight.detach(), dim=0) > 0).sum())


def _parameters(model: nn.Module) -> list[LeafParameter]:
    """Every parameter with its non-zeros, each tensor once, a pruned or parametrized weight read as the
    weight its module uses."""
    seen: set[int] = set()
    found: list[LeafParameter] = []
    for prefix, module in model.named_modules():
        if type(module).__name__ == "ParametrizationList":
            continue  # read through the owning module below
        names = [n for n, _ in module.named_parameters(recurse=False)]
        parametrized = getattr(module, "parametrizations", None)
        if parametrized is not None:
            names += list(parametrized.keys())
        for n in names:
            orig = n[:-5] if n.endswith("_orig") and hasattr(module, n[:-5] + "_mask") else n
            source = getattr(module, n) if parametrized is None or n not in parametrized else \
                parametrized[n].original
            if id(source) in seen:
                continue
            seen.add(id(source))
            t = getattr(module, orig)
            if not isinstance(t, torch.Tensor):
                t = source
            # vectors (biases, norm scales and shifts) are dense under every convention: their zeros are
            # stored values, not pruning (spec section 3)
            nonzero = t.numel() if t.is_meta or t.dim() <= 1 else count_nonzero(t.detach())
            found.append(LeafParameter(f"{prefix}.{orig}" if prefix else orig, prefix, tuple(t.shape), t.numel(),
                                       nonzero))
    return found


def _widths(model: nn.Module, tensors: list[torch.Tensor], bits: Any, conv: Convention) -> tuple[int, int]:
    """(weight bits, activation bits): the user's, else the convention's ``default_bits``, else the widest
    floating dtype of the parameters (weights) and of the inputs (activations)."""
    if isinstance(bits, Mapping):
        if not bits:
            bits = None
        else:
            values = [Precision.of(v) for v in bits.values()]
            w = [p.weight for p in values if p.weight is not None]
            a = [p.activation for p in values if p.activation is not None]
            bits = Precision(max(w) if w else None, max(a) if a else None)
    if bits is not None and not isinstance(bits, Precision):
        try:
            bits = Precision.of(bits)
        except Exception as exc:
            raise InputError(f"bits must be an int, a Precision or a mapping of them, got {bits!r}") from exc
    default = conv.default_bits
    params = [dtype_bits(p.dtype) for p in model.parameters() if p.is_floating_point()]
    acts = [dtype_bits(t.dtype) for t in tensors if t.is_floating_point()]
    weight = default if default is not None else max(params, default=32)
    activation = default if default is not None else max(acts + params, default=32)
    weight, activation = _quantized_widths(model, weight, activation)
    if bits is not None and bits.weight is not None:
        weight = bits.weight
    if bits is not None and bits.activation is not None:
        activation = bits.activation
    return weight, activation


def _quantizer_bits(module: nn.Module | None) -> int | None:
    """The integer grid width of a fake quantizer or observer (anything holding ``quant_min``/``quant_max``:
    micronet-score's quantizers, torch.ao's FakeQuantize and observers), else None."""
    lo, hi = getattr(module, "quant_min", None), getattr(module, "quant_max", None)
    if isinstance(lo, int) and isinstance(hi, int) and hi > lo:
        return range_bits(lo, hi)
    return None


def _quantized_widths(model: nn.Module, weight: int, activation: int) -> tuple[int, int]:
    """(q_w, q_a) read back from the model: over the layers holding a weight matrix, a layer's weight counts at
    its weight quantizer's width (``weight_fake_quant``) and its input at its input quantizer's
    (``input_fake_quant`` / ``activation_post_process``), an unquantized one at ``weight``/``activation``; the
    widest of each wins (the course's "widest in the model"). Without any quantizer both stay as given."""
    layers = [m for m in model.modules() if isinstance(getattr(m, "weight", None), torch.Tensor)
              and m.weight.dim() >= 2 and not isinstance(m, nn.Embedding)]
    found = False
    w_widths, a_widths = [], []
    for m in layers:
        wq = _quantizer_bits(getattr(m, "weight_fake_quant", None))
        aq = _quantizer_bits(getattr(m, "input_fake_quant", None) or getattr(m, "activation_post_process", None))
        found = found or wq is not None or aq is not None
        w_widths.append(wq if wq is not None else weight)
        a_widths.append(aq if aq is not None else activation)
    if not found:
        return weight, activation
    return max(w_widths), max(a_widths)
