"""The config base class, its plain-data form, and the registry of handlers behind the verbs.

A config is a frozen dataclass deriving from :class:`CompressionConfig`; what a verb does with it is a
*handler* registered for its type. Adding a kind of compression is one config class and one handler,
in one file:

>>> from dataclasses import dataclass
>>> from torch import nn
>>> from micronet_score.compress import CompressionConfig, prune_, register_pruner
>>> @dataclass(frozen=True)
... class ZeroFirstRow(CompressionConfig):
...     layer: str = "0"
>>> @register_pruner(ZeroFirstRow)
... def _zero_first_row(model, config):
...     model.get_submodule(config.layer).weight.data[0] = 0.0
>>> model = prune_(nn.Sequential(nn.Linear(3, 2)), ZeroFirstRow())
>>> model[0].weight[0].abs().sum().item()
0.0
>>> ZeroFirstRow().to_dict()
{'type': 'ZeroFirstRow', 'layer': '0'}

``to_dict()`` holds only plain data (str, int, float, bool, None, lists and dicts): layer types are written
``{"class": "torch.nn.Conv2d"}`` and dtypes ``{"dtype": "float16"}``. A ``filter_fn`` cannot be written
down, so ``to_dict`` refuses a config that has one (select layers with ``layer_types``/``exclude``
instead). :func:`config_from_dict` turns the dict back into an equal config.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from .errors import ConfigError, ConfigTypeError

_C = TypeVar("_C", bound="CompressionConfig")

#: Config type name (``to_dict()["type"]``) -> config class.
_CONFIG_TYPES: dict[str, type[CompressionConfig]] = {}


@dataclass(frozen=True)
class CompressionConfig:
    """Base class of every compression config (a frozen dataclass).

    Subclasses are registered by name (their class name, or the ``type_name`` class attribute) when
    they are defined, so :func:`config_from_dict` can rebuild them.
    """

    type_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("type_name") or cls.__name__
        cls.type_name = name
        _CONFIG_TYPES[name] = cls

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data, with its type name under ``"type"``.

        Raises :class:`ConfigError` when a field cannot be written down (a ``filter_fn``).
        """
        out: dict[str, Any] = {"type": type(self).type_name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "filter_fn":
                if value is not None:
                    raise ConfigError(
                        f"{type(self).__name__}.filter_fn is a function and cannot be written to a dict; "
                        "select the layers with layer_types= and exclude= (module names or types) instead"
                    )
                continue
            out[f.name] = _encode(value, f"{type(self).__name__}.{f.name}")
        return out

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
        """Rebuild a config from :meth:`to_dict`'s output (validated like a constructor call)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config dict must be a mapping, got {type(data).__name__}")
        name = data.get("type", cls.type_name or None)
        target = _CONFIG_TYPES.get(name) if isinstance(name, str) else None
        if target is None:
            raise ConfigError(
                f"unknown config type {name!r}; known types: {', '.join(sorted(_CONFIG_TYPES))} "
                "(a config defined outside micronet_score must be imported first)"
            )
        if cls is not CompressionConfig and not issubclass(target, cls):
            raise ConfigError(f"{cls.__name__}.from_dict got a dict of type {name!r}")
        known = {f.name for f in dataclasses.fields(target) if f.init}
        unknown = sorted(set(data) - known - {"type"})
        if unknown:
            raise ConfigError(
                f"{name} has no field(s) {', '.join(unknown)}; its fields: {', '.join(sorted(known))}"
            )
        kwargs = {key: _decode(value, f"{name}.{key}") for key, value in data.items() if key != "type"}
        return target(**kwargs)  # type: ignore[return-value]


def config_from_dict(data: Mapping[str, Any]) -> CompressionConfig:
    """Rebuild any registered config from ``to_dict()`` output.

    >>> from micronet_score.compress import NMSparse, config_from_dict
    >>> config_from_dict({"type": "NMSparse", "n": 1, "m": 4}) == NMSparse(n=1, m=4)
    True
    """
    return CompressionConfig.from_dict(data)


def config_types() -> dict[str, type[CompressionConfig]]:
    """Every registered config class by type name."""
    return dict(_CONFIG_TYPES)


# ------------------------------------------------------------------------------------- plain data


def class_path(cls: type) -> str:
    """``torch.nn.Conv2d`` for torch.nn classes, else ``module.QualName``."""
    if getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve_class(path: str, where: str) -> type:
    """The class named by :func:`class_path`; only modules already imported are searched (nothing is
    imported on behalf of a dict)."""
    if path.startswith("torch.nn.") and isinstance(getattr(nn, path[len("torch.nn."):], None), type):
        return getattr(nn, path[len("torch.nn."):])
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj: Any = module
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        if isinstance(obj, type):
            return obj
        break
    raise ConfigError(f"{where}: no class {path!r} among the imported modules; import the module defining it first")


def _encode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, CompressionConfig):
        return value.to_dict()
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, type):
        return {"class": class_path(value)}
    if isinstance(value, (tuple, list)):
        return [_encode(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v, where) for k, v in value.items()}
    raise ConfigError(f"{where}: cannot write a {type(value).__name__} to a dict")


def _decode(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v, where) for v in value)
    if isinstance(value, Mapping):
        if set(value) == {"class"}:
            return resolve_class(str(value["class"]), where)
        if set(value) == {"dtype"}:
            dtype = getattr(torch, str(value["dtype"]), None)
            if not isinstance(dtype, torch.dtype):
                raise ConfigError(f"{where}: {value['dtype']!r} is not a torch dtype")
            return dtype
        if "type" in value and isinstance(value["type"], str) and value["type"] in _CONFIG_TYPES:
            return config_from_dict(value)
        return {k: _decode(v, where) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------ handlers

Handler = Callable[..., Any]


@dataclass(frozen=True)
class _Entry:
    verb: str
    handler: Handler
    needs_example_inputs: bool


_HANDLERS: dict[type, _Entry] = {}


def _register(verb: str, config_type: type, needs_example_inputs: bool) -> Callable[[Handler], Handler]:
    if not (isinstance(config_type, type) and issubclass(config_type, CompressionConfig)):
        raise ConfigTypeError(f"register_{verb}r needs a CompressionConfig subclass, got {config_type!r}")

    def decorate(handler: Handler) -> Handler:
        _HANDLERS[config_type] = _Entry(verb, handler, needs_example_inputs)
        return handler

    return decorate


def register_pruner(config_type: type, *, needs_example_inputs: bool = False) -> Callable[[Handler], Handler]:
    """Register ``handler(model, config[, example_inputs])`` as what :func:`prune_` does with
    ``config_type``. It changes the model in place and may return the names of selected layers it
    skipped (recorded by :func:`micronet_score.compress.history`)."""
    return _register("prune", config_type, needs_example_inputs)


def register_quantizer(config_type: type) -> Callable[[Handler], Handler]:
    """Register ``handler(model, config)`` as what :func:`quantize_` does with ``config_type``."""
    return _register("quantize", config_type, False)


def register_finalizer(config_type: type) -> Callable[[Handler], Handler]:
    """Register ``handler(model, config)`` for a config that bakes earlier steps in (:class:`Finalize`)."""
    return _register("finalize", config_type, False)


def handler_for(config: object, verb: str | None) -> _Entry:
    """The registered entry for ``config`` (for ``verb`` when given); :class:`ConfigTypeError` names the
    accepted types otherwise."""
    entry = next((_HANDLERS[t] for t in type(config).__mro__ if t in _HANDLERS), None)
    if entry is not None and (verb is None or entry.verb == verb):
        return entry
    accepted = sorted(t.__name__ for t, e in _HANDLERS.items() if verb is None or e.verb == verb)
    hint = f" (a {entry.verb} config: use {entry.verb}_)" if entry is not None else ""
    raise ConfigTypeError(
        f"{verb + '_' if verb else 'replay_'} expects one of {', '.join(accepted)}, "
        f"got {type(config).__name__}{hint}"
    )
