"""What was done to a model: the configs applied, in order, recorded on the module they were applied to.

The record is a plain attribute of the root module (``model.micronet_compress``): it never lands in
``state_dict``, and ``copy.deepcopy`` copies it. :func:`replay_` applies the same configs to a fresh build,
which recreates the structure (masks, fake quantizers, dtypes, smaller layers) a saved ``state_dict`` of the
compressed model loads into.

>>> from torch import nn
>>> from micronet_score.compress import FakeQuant, LayerUnstructured, applied, prune_, quantize_, replay_
>>> model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
>>> _ = quantize_(prune_(model, LayerUnstructured(amount=0.5)), FakeQuant(act_bits=None))
>>> [type(c).__name__ for c in applied(model)]
['LayerUnstructured', 'FakeQuant']
>>> fresh = replay_(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), applied(model))
>>> _ = fresh.load_state_dict(model.state_dict())
"""

from __future__ import annotations

import copy
import pickle
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from .base import CompressionConfig, config_from_dict, handler_for
from .errors import CompressionError, ConfigTypeError

#: Attribute of the root module holding the record (a tuple of :class:`Step`).
ATTRIBUTE = "micronet_compress"


@dataclass(frozen=True)
class Step:
    """One applied config and the selected layers it left alone (``on_incompatible="skip"``)."""

    config: CompressionConfig
    skipped: tuple[str, ...] = ()


class _Record(tuple):
    """The steps recorded on a model. Pickling it (``torch.save(model)``) keeps the steps whose config
    pickles; a config holding an unpicklable ``filter_fn`` (a lambda) becomes an :class:`_Unpicklable`
    marker, so saving the model still works and :func:`applied` then says what was lost."""

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> _Record:
        return _Record(copy.deepcopy(tuple(self), memo))  # a copy keeps every config, lambdas included

    def __reduce__(self) -> tuple[Any, ...]:
        kept = []
        for step in self:
            try:
                pickle.dumps(step.config)
            except Exception:
                kept.append(Step(_Unpicklable(type(step.config).__name__), step.skipped))
            else:
                kept.append(step)
        return (_Record, (tuple(kept),))


@dataclass(frozen=True)
class _Unpicklable:
    type_name: str


def history(model: nn.Module) -> tuple[Step, ...]:
    """Every :class:`Step` recorded on ``model``, oldest first."""
    steps = model.__dict__.get(ATTRIBUTE, ())
    for name, module in model.named_modules():
        if name and module.__dict__.get(ATTRIBUTE):
            warnings.warn(
                f"submodule {name!r} was compressed on its own; applied(model) lists only the configs applied "
                "to the whole model (apply configs to the root and choose layers with exclude=/layer_types=)",
                UserWarning,
                stacklevel=3,
            )
            break
    lost = [s.config.type_name for s in steps if isinstance(s.config, _Unpicklable)]
    if lost:
        raise CompressionError(
            f"this model was pickled after a {', '.join(lost)} config whose filter_fn could not be pickled, so the "
            "record of what was applied is incomplete; select layers with layer_types=/exclude= to keep it"
        )
    return tuple(steps)


def applied(model: nn.Module) -> tuple[CompressionConfig, ...]:
    """The configs applied to ``model`` by :func:`prune_`, :func:`quantize_`, :func:`shrink_` and
    :func:`finalize_`, in order (empty for a model never compressed)."""
    return tuple(step.config for step in history(model))


def record(model: nn.Module, config: CompressionConfig, skipped: Iterable[str] = ()) -> None:
    """Append ``config`` to ``model``'s record (a new tuple, so copies made earlier keep theirs)."""
    steps = model.__dict__.get(ATTRIBUTE, ())
    model.__dict__[ATTRIBUTE] = _Record((*steps, Step(config, tuple(skipped))))


def apply_(model: nn.Module, config: CompressionConfig, *, example_inputs: Any = None) -> nn.Module:
    """Run any registered config's handler on ``model`` (the verb is the config's own), record it, return
    ``model``."""
    entry = handler_for(config, None)
    if entry.needs_example_inputs:
        if example_inputs is None:
            raise CompressionError(
                f"{type(config).__name__} needs example_inputs (a tensor or tuple the model accepts, e.g. "
                f"torch.randn(1, 3, 32, 32)) to trace shapes: pass example_inputs=x"
            )
        skipped = entry.handler(model, config, example_inputs)
    else:
        if example_inputs is not None:
            raise ConfigTypeError(
                f"example_inputs is only used by StructuredFilters (configs that trace the model), not by "
                f"{type(config).__name__}"
            )
        skipped = entry.handler(model, config)
    record(model, config, skipped if isinstance(skipped, (list, tuple)) else ())
    return model


def replay_(
    model: nn.Module,
    configs: Iterable[CompressionConfig | Mapping[str, Any]],
    *,
    example_inputs: Any = None,
) -> nn.Module:
    """Apply ``configs`` (configs or their ``to_dict()`` form, e.g. ``applied(old_model)``) to ``model``
    in order and return it; ``example_inputs`` goes to the configs that trace the model
    (:class:`StructuredFilters`)."""
    for item in configs:
        config = item if isinstance(item, CompressionConfig) else config_from_dict(item)
        needs = handler_for(config, None).needs_example_inputs
        apply_(model, config, example_inputs=example_inputs if needs else None)
    return model
