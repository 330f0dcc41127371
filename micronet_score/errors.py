"""Exceptions raised by micronet-score.

Every error names the problem and the way out; all derive from :class:`MicronetError` so a caller can catch
the library's errors in one place.
"""

from __future__ import annotations


class MicronetError(Exception):
    """Base class of every error micronet-score raises on purpose."""


class InputError(MicronetError, ValueError):
    """The inputs given to :func:`micronet_score.count` cannot be used (bad shape spec, type, device)."""


class ForwardError(MicronetError, RuntimeError):
    """The model's forward pass raised; the message names the module where it failed."""

    def __init__(self, message: str, module: str | None = None) -> None:
        super().__init__(message)
        self.module = module


class UnsupportedOpError(MicronetError, RuntimeError):
    """Strict mode met an operator that has no cost function and is not known to be free."""

    def __init__(self, op: str, module: str) -> None:
        where = f"module '{module}'" if module else "the root module"
        super().__init__(
            f"operator '{op}' in {where} has no cost function and is not a known free op; "
            "count with strict=False to see it listed in report.unsupported, or register a cost with "
            "micronet_score.counting.register"
        )
        self.op = op
        self.module = module


class UnknownRuleSetError(MicronetError, KeyError, ValueError):
    """A rule set name that is not registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown rule set '{name}'; known rule sets: {', '.join(sorted(known))}")
        self.name = name

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConventionMismatchError(MicronetError, ValueError):
    """A report counted under one convention was scored with rules that need another."""


class CountingError(MicronetError, RuntimeError):
    """micronet-score itself failed while pricing an operator (a bug to report, not a problem of the model)."""

    def __init__(self, op: str, module: str, cause: BaseException) -> None:
        where = f"module '{module}'" if module else "the root module"
        super().__init__(
            f"micronet-score could not price operator '{op}' in {where}: {type(cause).__name__}: {cause}. "
            "This is a bug in micronet-score: please report it with the model; strict=False will not help"
        )
        self.op = op
        self.module = module


class CheckpointError(MicronetError, ValueError):
    """A checkpoint that cannot be read (not a checkpoint, truncated, an unsafe pickle, more than tensors) or
    does not match the model it is loaded into."""


class MissingExtraError(MicronetError, ImportError):
    """An optional feature needs a package that is not installed; the message names the extra to install."""
class RegistryError(MicronetError, ValueError):
    """An operator registered twice, or both with a cost and as free."""
class ComplexTensorError(ForwardError):
    """An operator on complex tensors that micronet-score has no complex price for (a square root, log, sine,
    softmax or norm of complex values). Complex arithmetic, matrix products, sums and FFTs are priced (spec
    section 3); the message names the operator and its module."""


class ValuesNeededError(ForwardError):
    """An operator's cost depends on activation values the meta device does not hold (the bag sizes of an
    ``nn.EmbeddingBag``). The default count then runs the forward again on real values; under
    ``shapes_only=True`` this is the error."""


class UncountedWorkError(MicronetError, RuntimeError):
    """Under ``strict=True``: the forward did work the tracer could not see (input values taken out of torch
    with ``.numpy()``/``.tolist()`` and never brought back, weights used outside torch)."""
