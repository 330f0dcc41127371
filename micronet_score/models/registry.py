"""Name -> builder registry of the reference model zoo.

Builders register themselves with :func:`register`; :mod:`micronet_score.models` imports every builder
module so that :func:`names`, :func:`build`, :func:`input_size` and :func:`spec` see all of them.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from torch import nn

from micronet_score.errors import MicronetError

from .errors import ModelArgumentError

Builder = Callable[..., nn.Module]
_B = TypeVar("_B", bound=Builder)

#: Keyword arguments every builder must accept.
REQUIRED_KWARGS: tuple[str, ...] = ("num_classes", "seed")


class UnknownModelError(MicronetError, KeyError, ValueError):
    """A model name that is not registered; the message lists the known names."""

    def __init__(self, name: object, known: Iterable[str]) -> None:
        self.name = name
        self.known: tuple[str, ...] = tuple(known)
        super().__init__(f"unknown model {name!r}; known models: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    """Everything the zoo knows about one registered model.

    Attributes:
        name: registry name, e.g. ``"resnet18-cifar"``.
        description: one-line description.
        source: the paper and/or repository the architecture follows.
        input_size: expected input shape at batch 1, e.g. ``(1, 3, 32, 32)``.
        builder: callable returning a freshly initialised :class:`torch.nn.Module`.
        default_kwargs: the builder's keyword arguments and their defaults (read-only).
        example: builder arguments worth showing in an example command (``micronet-score models NAME``).
        modality: what the model reads: ``"image"`` (a float tensor of ``input_size``) or ``"tokens"``
            (integer token ids and a state: the model's own ``example_inputs()`` builds them).
    """

    name: str
    description: str
    source: str
    input_size: tuple[int, ...]
    builder: Builder = field(repr=False, compare=False)
    default_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    example: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), compare=False)
    modality: str = "image"

    def build(self, **kwargs: Any) -> nn.Module:
        """Build this model; same as ``micronet_score.models.build(self.name, **kwargs)``.

        The model records how it was built in the plain attribute ``model.micronet_build``
        (``{"model": name, "args": {...}}``, every argument with defaults filled in, as plain data); it is
        not part of ``state_dict``; ``build(b["model"], **b["args"])`` rebuilds the same architecture.
        """
        _check_kwargs(self, kwargs)
        model = self.builder(**kwargs)
        args = {**self.default_kwargs, **kwargs}
        model.micronet_build = {"model": self.name, "args": {k: plain(v) for k, v in args.items()}}
        return model


_REGISTRY: dict[str, ModelSpec] = {}


def plain(value: Any) -> Any:
    """``value`` as plain data where it has a plain form (tuples and mappings as lists and dicts,
    dataclasses such as :class:`DenseNetGroups` as dicts); anything else is returned as is."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def register(
    name: str,
    *,
    description: str,
    source: str,
    input_size: tuple[int, ...],
    example: Mapping[str, Any] | None = None,
    modality: str = "image",
) -> Callable[[_B], _B]:
    """Decorator registering ``builder`` under ``name``; default kwargs come from its signature.
    ``example`` holds arguments for the example command ``micronet-score models NAME`` prints."""

    def decorate(builder: _B) -> _B:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        params = inspect.signature(builder).parameters
        missing = [kw for kw in REQUIRED_KWARGS if kw not in params]
        if missing:
            raise TypeError(f"builder for {name!r} must accept keyword argument(s) {missing}")
        defaults = {
            p.name: p.default
            for p in params.values()
            if p.default is not inspect.Parameter.empty
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }
        _REGISTRY[name] = ModelSpec(
            name=name,
            description=description,
            source=source,
            input_size=tuple(input_size),
            builder=builder,
            default_kwargs=MappingProxyType(defaults),
            example=MappingProxyType(dict(example or {"num_classes": 100})),
            modality=modality,
        )
        return builder

    return decorate


def names(modality: str | None = None) -> dict[str, str]:
    """Every registered model name mapped to its one-line description, in registration order; only those
    reading ``modality`` (``"image"`` or ``"tokens"``) when it is given."""
    return {name: s.description for name, s in _REGISTRY.items() if modality in (None, s.modality)}


def spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``; raises :class:`UnknownModelError`."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownModelError(name, _REGISTRY) from None


def input_size(name: str) -> tuple[int, ...]:
    """The expected input shape of model ``name`` at batch 1, e.g. ``(1, 3, 32, 32)``."""
    return spec(name).input_size


def example_inputs(name: str, model: nn.Module, batch_size: int = 1) -> Any:
    """What to count ``model`` (a build of zoo model ``name``) on: the model's own ``example_inputs()`` where it
    has one (token ids and a state), else its input shape at ``batch_size``.

    >>> from micronet_score import models
    >>> models.example_inputs("resnet18-cifar", models.build("resnet18-cifar"), batch_size=2)
    (2, 3, 32, 32)
    """
    make = getattr(model, "example_inputs", None)
    if callable(make):
        return make(batch_size)
    return (batch_size,) + spec(name).input_size[1:]


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with ``kwargs`` overriding its defaults.

    Raises:
        UnknownModelError: ``name`` is not registered (the message lists the known names).
        ValueError: a keyword argument is not accepted by the builder or has a bad value.
    """
    return spec(name).build(**kwargs)


def _check_kwargs(s: ModelSpec, kwargs: Mapping[str, Any]) -> None:
    unknown = sorted(set(kwargs) - set(s.default_kwargs))
    if unknown:
        raise ModelArgumentError(
            f"model {s.name!r} got unexpected keyword argument(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(s.default_kwargs)} (see `micronet-score models {s.name}`)"
        )
