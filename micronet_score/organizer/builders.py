"""Turning a recipe (zoo name or ``module:factory``, arguments, compress configs) back into a model."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from micronet_score.organizer.errors import SubmissionError


def build_model(spec: str, args: Mapping[str, Any] | None = None, base: str | Path = ".") -> torch.nn.Module:
    """A zoo model name, ``file.py:factory`` or ``pkg.module:factory`` (files and packages relative to ``base``)
    built with ``args``.

    >>> build_model("densenet-seed", {"num_classes": 100}).__class__.__name__
    'DenseNetCIFAR'
    """
    from micronet_score import models

    args = dict(args or {})
    if spec in models.names():
        try:
            return models.build(spec, **args)
        except (TypeError, ValueError) as exc:
            raise SubmissionError(f"building zoo model {spec!r} failed: {exc}") from None
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise SubmissionError(f"model {spec!r} is neither a zoo model (see `micronet-score models`) nor "
                              "module:factory / file.py:factory")
    factory = getattr(_import(target, Path(base)), attr, None)
    if factory is None or not callable(factory):
        raise SubmissionError(f"{target!r} has no callable {attr!r}")
    try:
        model = factory(**args)
    except Exception as exc:
        raise SubmissionError(f"{spec} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise SubmissionError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _import(target: str, base: Path) -> Any:
    try:
        if target.endswith(".py"):
            path = Path(target) if Path(target).is_absolute() else base / target
            if not path.is_file():
                raise SubmissionError(f"no file {str(path)!r} for the model factory")
            spec = importlib.util.spec_from_file_location(f"_micronet_entry_{path.stem}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        if str(base.resolve()) not in sys.path:
            sys.path.insert(0, str(base.resolve()))
        return importlib.import_module(target)
    except SubmissionError:
        raise
    except ImportError as exc:
        raise SubmissionError(f"cannot import {target!r}: {exc}") from None
    except Exception as exc:
        raise SubmissionError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from None


def apply_compression(model: torch.nn.Module, configs: Sequence[Mapping[str, Any]],
                      input_size: Sequence[int] | None = None, *, finalize: bool = False) -> torch.nn.Module:
    """Apply prune/quantize configs (as ``CompressionConfig.to_dict()`` wrote them) in order, in place;
    ``finalize``: make each pruning permanent at once (the weights were saved after ``finalize_``)."""
    if not configs:
        return model
    from micronet_score import compress

    from_dict = getattr(compress, "config_from_dict", None)
    if from_dict is None:
        raise SubmissionError("this micronet-score cannot rebuild compress configs (no "
                              "micronet_score.compress.config_from_dict); upgrade micronet-score")
    for raw in configs:
        try:
            config = from_dict(dict(raw))
        except Exception as exc:
            raise SubmissionError(f"compress config {dict(raw)} cannot be read: {exc}") from None
        if isinstance(config, compress.PruneConfig):
            extra: dict[str, Any] = {}
            if isinstance(config, compress.StructuredFilters) and input_size is not None:
                extra["example_inputs"] = torch.zeros(tuple(input_size))
            compress.prune_(model, config, **extra)
            if finalize:
                compress.finalize_(model)
        else:
            compress.quantize_(model, config)
    return model


def compression_of(model: torch.nn.Module) -> list[dict[str, Any]]:
    """The prune/quantize configs applied to ``model``, as dicts (empty when none or not recorded)."""
    from micronet_score import compress

    applied = getattr(compress, "applied", None)
    if applied is None:
        return []
    return [cfg.to_dict() for cfg in applied(model)]
