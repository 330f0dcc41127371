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
        if target.endswith(".py"):  # the file itself failed while importing
            raise SubmissionError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from None
        raise SubmissionError(f"cannot import module {target!r}: {exc}") from None
    except Exception as exc:
        raise SubmissionError(f"importing {target!r} failed: {type(exc).__name__}: {exc}") from None


def apply_compression(model: torch.nn.Module, configs: Sequence[Mapping[str, Any]],
                      input_size: Sequence[int] | None = None, *, finalize: bool = False) -> torch.nn.Module:
    """Replay the prune/quantize configs a submission recorded (``CompressionConfig.to_dict()`` form) on a fresh
    build, in place (:func:`micronet_score.compress.replay_`); ``finalize``: the weights hold plain tensors (saved
    after the pruning was made permanent), so masks left by the replay are made permanent too."""
    if not configs:
        return model
    from micronet_score import compress
    from micronet_score.errors import MicronetError

    example = torch.zeros(tuple(input_size)) if input_size is not None else None
    try:
        compress.replay_(model, [dict(raw) for raw in configs], example_inputs=example)
        if finalize:
            compress.finalize_(model)
    except MicronetError as exc:
        raise SubmissionError(f"the recorded compression cannot be replayed: {exc}") from None
    return model


def compression_of(model: torch.nn.Module) -> list[dict[str, Any]]:
    """The prune/quantize configs applied to ``model``, as dicts (empty when none or not recorded)."""
    from micronet_score import compress

    return [cfg.to_dict() for cfg in compress.applied(model)]
