"""Frozen, validated config dataclasses for :func:`prune_` and :func:`quantize_`.

Every config checks its fields in ``__post_init__`` and raises :class:`ConfigError` (a ``ValueError``)
naming the field and the allowed range, so a typo fails at construction time, not halfway through a model:

>>> from micronet_score.compress import GlobalUnstructured
>>> GlobalUnstructured(amount=1.5)
Traceback (most recent call last):
...
micronet_score.compress.errors.ConfigError: GlobalUnstructured.amount must be a float in [0.0, 1.0], got 1.5

``layer_types`` selects layers with ``isinstance``; ``filter_fn(module, name) -> bool`` narrows the
selection further (``name`` is the qualified name, e.g. ``"features.0"``). The pruning configs'
``exclude`` keeps layers out by module name (a name excludes everything inside that module) or type;
:data:`LAST_CLASSIFIER` stands for the last selected layer in registration order, the classifier of
ordinary networks. Only :class:`GlobalUnstructured` excludes it by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from ._layers import DEFAULT_LAYER_TYPES, FilterFn
from ._validation import (
    check_bool,
    check_choice,
    check_exclude,
    check_filter_fn,
    check_fraction,
    check_int,
    check_layer_types,
    fail,
)
from .base import CompressionConfig
from .errors import ConfigError

LayerTypes = tuple[type[nn.Module], ...]
#: Module names (a name covers everything inside that module) and module types kept out of pruning.
Exclude = tuple["str | type[nn.Module]", ...]

#: In ``exclude``: the last selected layer in registration order (``model.named_modules()``), which is
#: the classifier of every zoo model and of most networks.
LAST_CLASSIFIER = "<last classifier>"

#: What a block or N:M config does with a selected layer whose shape it cannot tile.
OnIncompatible = Literal["error", "skip"]

MIN_BITS = 2
MAX_BITS = 16


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _common(obj: object, *, allow_none_types: bool = False) -> None:
    _set(
        obj,
        "layer_types",
        check_layer_types(obj, "layer_types", obj.layer_types, allow_none=allow_none_types),
    )
    check_filter_fn(obj, "filter_fn", obj.filter_fn)


# --------------------------------------------------------------------------------------------- pruning


@dataclass(frozen=True)
class GlobalUnstructured(CompressionConfig):
    """Global magnitude (L1) pruning: the ``amount`` fraction of smallest-magnitude weights, ranked
    across all selected layers together, is masked to zero.

    As in ``torch.nn.utils.prune``, a second call prunes ``amount`` of the weights still unpruned.

    The last classifier is excluded by default (``exclude=(LAST_CLASSIFIER,)``): its weights are
    initialised much smaller than the convolutions', so a global ranking would otherwise remove most or all
    of them. ``exclude=()`` includes it. A layer left with no non-zero weight is named in a
    :class:`LayerEmptiedWarning`.

    >>> from torch import nn
    >>> from micronet_score.compress import GlobalUnstructured, prune_, sparsity
    >>> model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> _ = prune_(model, GlobalUnstructured(amount=0.5, exclude=()))
    >>> s = sparsity(model)  # 12 of the 16 + 8 weights are zero, split by magnitude
    >>> round(s["0.weight"] * 16 + s["2.weight"] * 8)
    12
    >>> s = sparsity(prune_(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), GlobalUnstructured()))
    >>> s["0.weight"], s["2.weight"]  # the classifier "2" is kept out by default
    (0.5, 0.0)
    """

    amount: float = 0.5
    layer_types: LayerTypes = DEFAULT_LAYER_TYPES
    include_bias: bool = False
    exclude: Exclude = (LAST_CLASSIFIER,)
    filter_fn: FilterFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _set(self, "amount", check_fraction(self, "amount", self.amount))
        check_bool(self, "include_bias", self.include_bias)
        _set(self, "exclude", check_exclude(self, "exclude", self.exclude))
        _common(self)


@dataclass(frozen=True)
class LayerUnstructured(CompressionConfig):
    """Per-layer magnitude (L1) pruning: each selected layer loses ``amount`` of its own weights.

    ``amount`` is one fraction for every selected layer, or a mapping ``layer name -> fraction``;
    with a mapping only the named layers are pruned (each must also be selected by ``layer_types``
    and ``filter_fn``).

    >>> from torch import nn
    >>> from micronet_score.compress import LayerUnstructured, prune_, sparsity
    >>> model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
    >>> _ = prune_(model, LayerUnstructured(amount={"0": 0.3}))
    >>> sparsity(model)
    {'0.weight': 0.3, '1.weight': 0.0}
    """

    amount: float | Mapping[str, float] = 0.3
    layer_types: LayerTypes = DEFAULT_LAYER_TYPES
    include_bias: bool = False
    exclude: Exclude = ()
    filter_fn: FilterFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.amount, Mapping):
            if not self.amount:
                raise fail(self, "amount", "a float in [0.0, 1.0] or a non-empty mapping name -> float", {})
            checked = {}
            for key, value in self.amount.items():
                if not isinstance(key, str):
                    raise fail(self, "amount", "a mapping whose keys are layer names (str)", key)
                checked[key] = check_fraction(self, f"amount[{key!r}]", value)
            _set(self, "amount", checked)
        else:
            _set(self, "amount", check_fraction(self, "amount", self.amount))
        check_bool(self, "include_bias", self.include_bias)
        _set(self, "exclude", check_exclude(self, "exclude", self.exclude))
        _common(self)


@dataclass(frozen=True)
class BlockSparse(CompressionConfig):
    """Block sparsity: the weight, viewed as the matrix ``weight.reshape(out_channels, -1)``, is cut
    into ``block[0] x block[1]`` tiles and the ``amount`` fraction of tiles with the smallest L1 (or
    L2) norm is zeroed. Blocks already zero count towards ``amount``. Each block must divide the
    matrix shape of every selected layer: with ``on_incompatible="error"`` (the default) :func:`prune_`
    raises :class:`CompressionError` naming every such layer before touching the model; with ``"skip"``
    those layers stay dense and are named in a :class:`LayersSkippedWarning` and in
    :func:`~micronet_score.compress.history`.

    >>> from torch import nn
    >>> from micronet_score.compress import BlockSparse, prune_, sparsity
    >>> model = nn.Sequential(nn.Linear(8, 8))
    >>> _ = prune_(model, BlockSparse(block=(4, 4), amount=0.5))
    >>> sparsity(model)
    {'0.weight': 0.5}
    """

    block: tuple[int, int] = (4, 4)
    amount: float = 0.5
    norm: Literal["l1", "l2"] = "l1"
    layer_types: LayerTypes = DEFAULT_LAYER_TYPES
    exclude: Exclude = ()
    on_incompatible: OnIncompatible = "error"
    filter_fn: FilterFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.block, (tuple, list)) or len(self.block) != 2:
            raise fail(self, "block", "a pair (rows, cols) of ints >= 1", self.block)
        rows = check_int(self, "block[0]", self.block[0], 1)
        cols = check_int(self, "block[1]", self.block[1], 1)
        _set(self, "block", (rows, cols))
        _set(self, "amount", check_fraction(self, "amount", self.amount))
        check_choice(self, "norm", self.norm, ("l1", "l2"))
        _set(self, "exclude", check_exclude(self, "exclude", self.exclude))
        check_choice(self, "on_incompatible", self.on_incompatible, ("error", "skip"))
        _common(self)


@dataclass(frozen=True)
class NMSparse(CompressionConfig):
    """N:M semi-structured sparsity: in every run of ``m`` consecutive weights along the input
    dimension, keep the ``n`` of largest magnitude. For a Linear weight ``(out, in)`` the runs lie
    along ``in``; for a convolution weight ``(out, in, *kernel)`` they lie along the input channels
    at each kernel position (the layout sparse tensor cores use). The per-group input-channel count
    must be divisible by ``m``; ``on_incompatible`` says what happens to a layer where it is not (see
    :class:`BlockSparse`).

    >>> from torch import nn
    >>> from micronet_score.compress import NMSparse, prune_, sparsity
    >>> model = nn.Sequential(nn.Linear(8, 4))
    >>> _ = prune_(model, NMSparse(n=2, m=4))
    >>> sparsity(model)
    {'0.weight': 0.5}
    """

    n: int = 2
    m: int = 4
    layer_types: LayerTypes = DEFAULT_LAYER_TYPES
    exclude: Exclude = ()
    on_incompatible: OnIncompatible = "error"
    filter_fn: FilterFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_int(self, "m", self.m, 1, 1024)
        check_int(self, "n", self.n, 1, self.m)
        _set(self, "exclude", check_exclude(self, "exclude", self.exclude))
        check_choice(self, "on_incompatible", self.on_incompatible, ("error", "skip"))
        _common(self)


@dataclass(frozen=True)
class StructuredFilters(CompressionConfig):
    """Structured channel pruning that physically removes output channels (filters) ranked by the
    L1 (or L2) norm of their weights, replacing layers by smaller ``nn.Conv*d`` / ``nn.Linear`` /
    ``nn.BatchNorm*d`` modules and slicing every consumer's input channels to match.

    In each set of coupled layers ``round(amount * channels)`` channels are removed (at least one
    channel always stays). See :func:`micronet_score.compress.shrink_` for what is handled.

    ``leaf_modules`` are module types ``torch.fx`` must not trace into (treated as black boxes whose
    input and output channels are left alone). ``backend="torch_pruning"`` hands the job to the
    optional ``torch-pruning`` package instead of the built-in pure-torch implementation.

    >>> import torch
    >>> from torch import nn
    >>> from micronet_score.compress import StructuredFilters, prune_
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    >>> _ = prune_(model, StructuredFilters(amount=0.25), example_inputs=torch.randn(1, 3, 8, 8))
    >>> model[0].out_channels, model[2].in_channels
    (6, 6)
    """

    amount: float = 0.25
    layer_types: LayerTypes = DEFAULT_LAYER_TYPES
    norm: Literal["l1", "l2"] = "l1"
    leaf_modules: tuple[type[nn.Module], ...] = ()
    backend: Literal["torch", "torch_pruning"] = "torch"
    filter_fn: FilterFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _set(self, "amount", check_fraction(self, "amount", self.amount, allow_one=False))
        check_choice(self, "norm", self.norm, ("l1", "l2"))
        if self.leaf_modules == () or self.leaf_modules == []:
            _set(self, "leaf_modules", ())
        else:
            _set(self, "leaf_modules", check_layer_types(self, "leaf_modules", self.leaf_modules))
        check_choice(self, "backend", self.backend, ("torch", "torch_pruning"))
        _common(self)


PruneConfig = GlobalUnstructured | LayerUnstructured | BlockSparse | NMSparse | StructuredFilters


# ---------------------------------------------------------------------------------------- quantization


@dataclass(frozen=True)
class FakeQuant(CompressionConfig):
    """Fake quantization (simulated integer arithmetic) of the selected conv/linear layers.

    ``weight_bits`` / ``act_bits`` are bit widths in [2, 16] (None leaves that side in float).
    Weights use a signed symmetric grid ``-(2**(b-1)) .. 2**(b-1)-1`` when ``symmetric`` else an
    unsigned affine grid ``0 .. 2**b-1``, with one scale per output channel when ``per_channel``.
    Activations (the *input* of each layer) use a per-tensor grid, affine unless
    ``act_symmetric``, whose range comes from :func:`calibrate`. Only layers whose type is exactly
    ``nn.Conv1d``, ``nn.Conv2d``, ``nn.Conv3d`` or ``nn.Linear`` (or an already fake-quantized one)
    are converted; subclasses of them are left in float.

    >>> from micronet_score.compress import FakeQuant
    >>> FakeQuant(weight_bits=4, act_bits=8).weight_bits
    4
    >>> FakeQuant(weight_bits=1)
    Traceback (most recent call last):
    ...
    micronet_score.compress.errors.ConfigError: FakeQuant.weight_bits must be an int in [2, 16] or None, got 1
    """

    weight_bits: int | None = 8
    act_bits: int | None = 8
    per_channel: bool = True
    symmetric: bool = True
    act_symmetric: bool = False
    layer_types: LayerTypes = DEFAULT_LAYER_TYPES
    filter_fn: FilterFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("weight_bits", "act_bits"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not MIN_BITS <= value <= MAX_BITS:
                raise fail(self, name, f"an int in [{MIN_BITS}, {MAX_BITS}] or None", value)
        if self.weight_bits is None and self.act_bits is None:
            raise ConfigError("FakeQuant.weight_bits and FakeQuant.act_bits are both None; set at least one")
        for name in ("per_channel", "symmetric", "act_symmetric"):
            check_bool(self, name, getattr(self, name))
        _common(self)


@dataclass(frozen=True)
class Half(CompressionConfig):
    """16-bit floating point: parameters and floating buffers of the selected modules become
    ``dtype`` (``torch.float16`` or ``torch.bfloat16``).

    With the default ``layer_types=None`` every module is selected, so the whole model must then
    be fed inputs of ``dtype``. With ``cast_io=True`` each converted module also casts its
    floating-point inputs to ``dtype`` and its outputs back to the input dtype, so a few 16-bit
    layers can live inside a float32 model.

    >>> import torch
    >>> from torch import nn
    >>> from micronet_score.compress import Half, quantize_
    >>> model = quantize_(nn.Linear(4, 2), Half(torch.bfloat16))
    >>> model(torch.ones(1, 4, dtype=torch.bfloat16)).dtype
    torch.bfloat16
    """

    dtype: torch.dtype = torch.float16
    cast_io: bool = False
    layer_types: LayerTypes | None = None
    filter_fn: FilterFn | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.dtype not in (torch.float16, torch.bfloat16):
            raise fail(self, "dtype", "torch.float16 or torch.bfloat16", self.dtype)
        check_bool(self, "cast_io", self.cast_io)
        _common(self, allow_none_types=True)


@dataclass(frozen=True)
class MixedPrecision(CompressionConfig):
    """One quantize config per module: ``configs`` maps a module name (``""`` is the whole model) to a
    :class:`FakeQuant` or :class:`Half` for the selected layers inside it; when several names cover a
    layer the longest wins. ``quantize_(model, {name: config})`` is ``quantize_(model, MixedPrecision(...))``.

    >>> from micronet_score.compress import FakeQuant, MixedPrecision
    >>> MixedPrecision({"": FakeQuant(weight_bits=8), "3": FakeQuant(weight_bits=4)}).to_dict()["configs"]["3"]["weight_bits"]
    4
    """

    configs: Mapping[str, FakeQuant | Half] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.configs, Mapping) or not self.configs:
            raise fail(self, "configs", "a non-empty mapping module name -> FakeQuant or Half", self.configs)
        for key, value in self.configs.items():
            if not isinstance(key, str):
                raise fail(self, "configs", "a mapping whose keys are module names (str)", key)
            if not isinstance(value, (FakeQuant, Half)):
                raise fail(self, f"configs[{key!r}]", "a FakeQuant or Half config", value)
        _set(self, "configs", dict(self.configs))

    def __hash__(self) -> int:
        return hash(tuple(self.configs.items()))


QuantizeConfig = FakeQuant | Half | MixedPrecision


@dataclass(frozen=True)
class Finalize(CompressionConfig):
    """The step :func:`~micronet_score.compress.finalize_` records: pruning masks and parametrizations
    baked into plain parameters."""
