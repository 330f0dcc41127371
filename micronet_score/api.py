"""The library's face: ``count`` a model, ``score`` a model or a report, ``cross_check`` a count against the
peer counters. It sits above the engine (``counting/``) and the score arithmetic (``rules/``), which never
import each other.

``micronet_score.cross_check`` is imported here eagerly: importing a submodule sets the package attribute of
its name to the module, so it must be loaded before ``micronet_score/__init__`` binds ``ms.cross_check`` to the
function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from micronet_score.convention import Convention
from micronet_score.counting.engine import BitsSpec, count_with_events
from micronet_score.counting.exported import as_module
from micronet_score.counting.inputs import InputsLike
from micronet_score.cross_check import cross_check  # eager, on purpose: see the module docstring
from micronet_score.errors import ConventionMismatchError, InputError
from micronet_score.report import Report
from micronet_score.rules import formulas
from micronet_score.rules.ruleset import RuleSet, get
from micronet_score.rules.score import Score, evaluate

__all__ = ["count", "count_with_events", "cross_check", "score"]


def count(
    model: torch.nn.Module | torch.export.ExportedProgram,
    inputs: InputsLike,
    *,
    bits: BitsSpec | None = None,
    freebie: bool | None = None,
    accumulator_bits: int | None = None,
    strict: bool = False,
    convention: str | Convention = "micronet",
    shapes_only: bool | None = None,
    batch_size: int | None = None,
    costs: Mapping[Any, Any] | None = None,
    rules: Any = None,
    batch_dim: int | None = None,
) -> Report:
    """Count the parameters and operations of one inference forward pass of ``model`` on ``inputs``.

    ``inputs``: a tensor, a tuple of tensors, a dict of keyword tensors, or a shape such as ``(1, 3, 32, 32)``;
    the first dimension of the first tensor is the batch, and counts are per example. ``bits`` sets widths per
    module name (a name also covers the modules below it) or module type: an int, or a
    :class:`~micronet_score.bits.Precision` with separate weight and activation widths. ``freebie``: ``None``
    applies the 16-bit freebie when nothing is below 16 bits (the rules), ``True``/``False`` force it.
    ``strict=True`` raises :class:`~micronet_score.errors.UnsupportedOpError` on any operator without a cost.

    ``model`` may also be a ``torch.export.ExportedProgram`` or its ``ep.module()``: counted as the eager model
    it was exported from, per layer under the original modules' names (:mod:`micronet_score.counting.exported`).

    ``costs`` overrides operator costs for this call only (``{"aten.relu": "free"}``, ``{aten.gelu: fn}``; see
    :mod:`micronet_score.counting.overrides`), on top of the convention's own overrides, never touching the
    global registry. ``rules`` (a rule set name, TOML path or RuleSet) counts under that rule set's convention;
    a leaf-module convention (``imta-2023``'s ``imta-profile``, ``imta-2025``) counts with the course's
    module-level counter (:mod:`micronet_score.counting.leaf_report`). ``batch_dim`` says which dimension of
    the first input is the batch (default: 0, or 1 when the input goes first into a sequence-first module; see
    :mod:`micronet_score.counting.examples`).

    ``batch_size`` overrides the number of examples the counts are divided by (default: the batch dimension of
    the first input tensor, times its sequence length under a per-token convention, or 1 when the forward
    itself unsqueezes an unbatched input); ``Report.examples`` and ``Report.examples_from`` say which.
    Activations are not needed for counting, only their shapes: with ``shapes_only=None`` (the default) the
    input-dependent operators run on the meta device while weights stay real (so their non-zeros are read),
    and if that forward fails (data-dependent control flow, an operator without a meta kernel, a cost that
    depends on values, such as the bag sizes of an ``nn.EmbeddingBag``) the model runs again on real
    activations; the counts are the same either way. ``shapes_only=True`` insists on shapes (a forward that
    needs values then fails with a clear error); ``False`` always computes real activations.

    The model runs once in eval mode under ``torch.no_grad()``; its parameters, buffers, training flags,
    hooks and the global RNG state are left exactly as they were, also when the forward writes into its
    weights (``weight.data.clamp_()``) or registers buffers, parameters or hooks, and when several threads
    count it at once (see ``docs/guarantees.md``). An input given as a shape is counted on the meta device;
    random values of that shape are drawn only when the forward needs them (up to 1 GiB).

    >>> import torch, micronet_score as ms
    >>> report = ms.count(torch.nn.Conv2d(3, 8, 3), (1, 3, 32, 32))
    >>> report.mults  # 3*3*3 mults per output, 8*30*30 outputs
    194400
    """
    return count_with_events(model, inputs, bits=bits, freebie=freebie, accumulator_bits=accumulator_bits,
                             strict=strict, convention=convention, shapes_only=shapes_only,
                             batch_size=batch_size, costs=costs, rules=rules, batch_dim=batch_dim)[0]


def score(
    target: Report | torch.nn.Module,
    inputs: Any = None,
    *,
    rules: str | RuleSet,
    accuracy: float | tuple[int, int] | None = None,
    dataset: Any = None,
    **count_options: Any,
) -> Score:
    """Score a :class:`Report`, or count ``target`` on ``inputs`` first (``count_options`` go to ``count``).

    ``dataset``: what the accuracy was measured on, a name (``"CIFAR-10"``), a class count or a
    :class:`~micronet_score.organizer.Dataset`; when it is not the rule set's task (a CIFAR-10 accuracy under a
    CIFAR-100 rule set) a :class:`~micronet_score.rules.task.DatasetMismatchWarning` says so.

    >>> import torch, micronet_score as ms
    >>> s = ms.score(torch.nn.Linear(100, 10), (1, 100), rules="micronet-2019-imagenet")
    >>> s.param_storage, s.math_ops  # 1010 params and 1000 mults at 16 bits, 1000 adds at 32 bits
    (505.0, 1500.0)
    >>> round(s.value, 10)  # 505 / 6.9e6 + 1500 / 1.17e9
    7.44705e-05
    """
    ruleset = get(rules)
    target = as_module(target)  # an ExportedProgram: its module (counting/exported.py)
    if isinstance(target, Report):
        if inputs is not None or count_options:
            raise InputError("score() got a Report and also inputs or count options; pass either a Report, or "
                             "a model with its inputs")
        report = target
        if report.convention != ruleset.counting.name:
            raise ConventionMismatchError(
                f"the report was counted under convention {report.convention!r} but rule set {ruleset.name!r} "
                f"scores under {ruleset.counting.name!r}: call ms.score(model, inputs, rules={ruleset.name!r})"
            )
    elif isinstance(target, torch.nn.Module):
        if inputs is None:
            if ruleset.input_size is None:
                raise InputError(f"score() needs inputs for the model (rule set {ruleset.name!r} has no default "
                                 "input size)")
            inputs = ruleset.input_size
        report = _measure(target, inputs, ruleset, count_options)  # dispatch on the convention
    else:
        raise InputError(f"score() needs a Report or a torch.nn.Module, got {type(target).__name__}")
    if dataset is not None:
        _warn_dataset(ruleset, dataset)
    storage, ops = formulas.terms(ruleset.counting, report)
    return evaluate(storage, ops, rules=ruleset, accuracy=accuracy)


def _warn_dataset(ruleset: RuleSet, dataset: Any) -> None:
    import warnings

    from micronet_score.rules.task import DatasetMismatchWarning, dataset_mismatch, known_classes

    if isinstance(dataset, str):
        problem = dataset_mismatch(ruleset, dataset)
    elif isinstance(dataset, int) and not isinstance(dataset, bool):
        problem = dataset_mismatch(ruleset, classes=dataset)
    else:
        fmt = getattr(dataset, "format", "") or ""
        classes = getattr(dataset, "classes", None)
        problem = dataset_mismatch(ruleset, fmt if known_classes(fmt) else None,
                                   classes if classes is not None else known_classes(fmt))
    if problem:
        warnings.warn(f"{problem}: the score's pass/fail compares an accuracy of another task with the rule "
                      "set's threshold", DatasetMismatchWarning, stacklevel=3)


def _measure(model: torch.nn.Module, inputs: Any, ruleset: RuleSet, options: dict[str, Any]) -> Any:
    """Count ``model`` under the rule set's convention: every dispatched operator (the engine), or leaf modules
    only (the course's profile counter, ``counting/leaf_report.py``)."""
    conv = ruleset.counting
    if conv.per_token and not formulas.one_token_per_example(inputs):
        raise InputError(f"rule set {ruleset.name!r} counts per token: step one token at a time (inputs of "
                         "shape (batch, 1), the recurrent state passed as an input)")
    return count(model, inputs, convention=conv, **options)  # leaf-module conventions: the course's counter
