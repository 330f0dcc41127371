"""Counting conventions: everything a scoring scheme decides, as one frozen, named piece of data.

A rule set names the convention it is scored under; :func:`micronet_score.count` counts under one
(``"micronet"`` by default, spec section 3). Three are shipped:

- ``micronet``: every dispatched operator is priced (spec sections 1-3), batch norms folded, weights stored in
  the cheaper of dense and the official sparse format (non-zeros plus one mask bit per element), vectors dense.
- ``imta-profile``: the course script ``profile.py`` (spec section 4): leaf ``nn.Module``s only, batch norm
  at 3 ops per input element and never folded, every parameter at ``b = 16`` bits, non-zeros only, no mask.
- ``imta-2025``: the course's closed form (spec section 4), nnz_w at q_w plus conv/linear MACs at
  max(q_w, q_a).

A convention is data: a rule set's TOML file can name one (``convention = "imta-profile"``) or build one
(a ``[rules.convention]`` table with ``base`` and any fields below), so a user's file can say everything a
shipped one says.

>>> from micronet_score.convention import get_convention
>>> c = get_convention("micronet")
>>> c.attribution, c.sparse_format, c.sparse_tensors, c.fold_batchnorm
('operators', 'element', 'weights', True)
>>> get_convention("imta-profile").cost("BatchNorm2d")
CostOverride(target='BatchNorm2d', mults=0.0, adds=0.0, ops=3.0, per='input')
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from micronet_score.errors import MicronetError

ATTRIBUTIONS = ("operators", "leaf-modules")
# Set to True once counting/engine applies ``Convention.costs`` to the operators it prices (after the merge).
_ENGINE_READS_OPERATOR_COSTS = True  # counting/overrides.py
SPARSE_FORMATS = ("element", "block", "cheapest")
SPARSE_TENSORS = ("weights", "all", "none")
FORMULAS = ("micronet", "imta-2025")
COST_UNITS = ("output", "input", "window")


class ConventionError(MicronetError, ValueError):
    """A convention field with a value the library does not know."""


class UnknownConventionError(ConventionError):
    """A convention name that is not registered."""


@dataclass(frozen=True)
class CostOverride:
    """What one operator or module costs under a convention, replacing the library's own cost.

    ``target`` is an aten operator (``"aten.relu"``) for ``attribution = "operators"`` or a module class name
    (``"BatchNorm2d"``) for ``"leaf-modules"``. The cost is per element of the ``per`` tensor (``"output"``, ``"input"``,
    or ``"window"``: per output element times the module's kernel size, k x k for a pool): ``mults`` and ``adds`` each weighted by their width, ``ops`` counted as plain operations
    (at full weight, as the course script does). All zero: the scheme does not count it.

    >>> CostOverride("aten.relu").free
    True
    """

    target: str
    mults: float = 0.0
    adds: float = 0.0
    ops: float = 0.0
    per: str = "output"

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise ConventionError(f"a cost override needs a target (an operator or module name), got "
                                  f"{self.target!r}")
        for name in ("mults", "adds", "ops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ConventionError(f"cost override {self.target!r}: {name} must be a finite number >= 0, got "
                                      f"{value!r}")
            object.__setattr__(self, name, float(value))
        if self.per not in COST_UNITS:
            raise ConventionError(f"cost override {self.target!r}: per must be one of {COST_UNITS}, got "
                                  f"{self.per!r}")

    @property
    def free(self) -> bool:
        """The scheme does not count this target at all."""
        return self.mults == self.adds == self.ops == 0

    @classmethod
    def parse(cls, target: str, value: Any) -> CostOverride:
        """From a TOML value: ``"free"``, or a table with ``mults``/``adds``/``ops``/``per``."""
        if value == "free" or value == 0:
            return cls(target)
        if isinstance(value, Mapping):
            bad = set(value) - {"mults", "adds", "ops", "per"}
            if bad:
                raise ConventionError(f"cost override {target!r}: unknown key(s) {sorted(bad)}; use mults, adds, "
                                      "ops and per")
            return cls(target, **dict(value))
        raise ConventionError(f"cost override {target!r}: expected \"free\" or a table like "
                              f"{{ mults = 1, adds = 1, per = \"output\" }}, got {value!r}")


@dataclass(frozen=True)
class StoragePolicy:
    """The two storage choices of a convention, as :mod:`micronet_score.counting.storage` reads them."""

    sparse_format: str = "element"
    sparse_tensors: str = "weights"


@dataclass(frozen=True)
class Convention:
    """Everything a scoring scheme decides.

    - ``attribution``: ``"operators"`` prices every dispatched operator (the library's tracer);
      ``"leaf-modules"`` prices leaf ``nn.Module``s only, from forward hooks (as the course script does;
      functional calls cost nothing).
    - ``costs``: per-operator (or per-module) :class:`CostOverride` s replacing the library's costs.
    - ``fold_batchnorm``: fold an inference batch norm into the conv/linear whose output feeds only it.
    - ``sparse_format``: how a weight with zeros may be stored: ``"element"`` (non-zeros plus one mask bit per
      element of its full shape, the official format), ``"block"`` (also one bit per block, only where every
      block is all zero or all non-zero), ``"cheapest"`` (any candidate block shape, storing the zeros of
      kept blocks). Dense storage is used whenever it is cheaper.
    - ``sparse_tensors``: which tensors may be stored sparse: ``"weights"`` (the multiplied operand of a
      conv/linear/matmul, an embedding table; biases, norm parameters and other vectors are dense, their zeros
      are stored values), ``"all"``, or ``"none"``.
    - ``accumulator_bits``: width of every addition.
    - ``freebie``: ``None`` applies the 16-bit freebie when nothing is below 16 bits (the rules); ``True``
      always counts parameters and multiplies wider than 16 bits as 16; ``False`` never.
    - ``default_bits``: the width of every weight and activation when the user sets none (``None``: from the
      dtypes); the course's ``b``.
    - ``per_token``: operations are divided by batch x sequence length (the WikiText-103 track).
    - ``formula``: ``"micronet"`` (storage / P_base + ops / O_base) or ``"imta-2025"`` (the course's closed
      form: nnz_w at q_w, conv/linear MACs at max(q_w, q_a)); see :mod:`micronet_score.rules.formulas`.
    """

    name: str = "micronet"
    attribution: str = "operators"
    costs: tuple[CostOverride, ...] = ()
    fold_batchnorm: bool = True
    sparse_format: str = "element"
    sparse_tensors: str = "weights"
    accumulator_bits: int = 32
    freebie: bool | None = None
    default_bits: int | None = None
    per_token: bool = False
    formula: str = "micronet"
    description: str = "MicroNet 2019 rules as the official counter applies them (spec sections 1-3)"
    sources: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConventionError(f"a convention needs a non-empty name, got {self.name!r}")
        for attr, allowed in (("attribution", ATTRIBUTIONS), ("sparse_format", SPARSE_FORMATS),
                              ("sparse_tensors", SPARSE_TENSORS), ("formula", FORMULAS)):
            if getattr(self, attr) not in allowed:
                raise ConventionError(f"convention {self.name!r}: {attr} must be one of {allowed}, got "
                                      f"{getattr(self, attr)!r}")
        if not isinstance(self.accumulator_bits, int) or isinstance(self.accumulator_bits, bool) \
                or not 1 <= self.accumulator_bits <= 64:
            raise ConventionError(f"convention {self.name!r}: accumulator_bits must be an integer in 1..64, got "
                                  f"{self.accumulator_bits!r}")
        if self.default_bits is not None and (not isinstance(self.default_bits, int)
                                              or isinstance(self.default_bits, bool)
                                              or not 1 <= self.default_bits <= 64):
            raise ConventionError(f"convention {self.name!r}: default_bits must be None or an integer in 1..64, "
                                  f"got {self.default_bits!r}")
        for attr in ("fold_batchnorm", "per_token"):
            if not isinstance(getattr(self, attr), bool):
                raise ConventionError(f"convention {self.name!r}: {attr} must be true or false, got "
                                      f"{getattr(self, attr)!r}")
        if self.freebie not in (None, True, False):
            raise ConventionError(f"convention {self.name!r}: freebie must be None, True or False, got "
                                  f"{self.freebie!r}")
        object.__setattr__(self, "costs", _costs(self.costs))
        object.__setattr__(self, "sources", tuple(self.sources))
        if self.costs and self.attribution == "operators" and not _ENGINE_READS_OPERATOR_COSTS:
            # refused rather than ignored: the tracer does not read operator overrides from a convention yet
            raise ConventionError(f"convention {self.name!r}: cost overrides need attribution = "
                                  "\"leaf-modules\" for now; for operators pass ms.count(..., costs=...) "
                                  "or register a cost with micronet_score.counting.register")
        targets = [c.target for c in self.costs]
        if len(set(targets)) != len(targets):
            raise ConventionError(f"convention {self.name!r}: a target has two cost overrides: {targets}")

    @property
    def storage(self) -> StoragePolicy:
        """The storage choices, as :func:`micronet_score.counting.storage.price` takes them."""
        return StoragePolicy(self.sparse_format, self.sparse_tensors)

    @property
    def mask_policy(self) -> StoragePolicy:
        """Alias of :attr:`storage`, the name the engine passes to ``storage.measure``/``storage.price``.

        The operator engine reads it first, so a convention it cannot count under (leaf modules, the closed
        form) is refused here rather than counted wrong."""
        if self.attribution != "operators" or self.formula != "micronet":
            raise ConventionError(
                f"convention {self.name!r} counts {self.attribution} with the {self.formula!r} formula, which "
                "micronet_score.count does not do: score the model itself, ms.score(model, inputs, rules=...)")
        return self.storage

    def cost(self, target: str) -> CostOverride | None:
        """The override for ``target`` (an aten operator or module class name), or None."""
        for c in self.costs:
            if c.target == target:
                return c
        return None

    def with_options(self, **changes: object) -> Convention:
        """A copy with some fields changed (``None`` values are ignored; ``costs`` may be a mapping
        target -> ``"free"`` or a table, which is merged over the existing overrides)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "mask_policy" in changes:
            raise ConventionError("mask_policy was replaced by sparse_format (\"element\", \"block\" or "
                                  "\"cheapest\") and sparse_tensors (\"weights\", \"all\" or \"none\")")
        unknown = set(changes) - set(Convention.__dataclass_fields__)
        if unknown:
            raise ConventionError(f"unknown convention field(s) {sorted(unknown)}; known: "
                                  f"{sorted(Convention.__dataclass_fields__)}")
        if isinstance(changes.get("costs"), Mapping):
            merged = {c.target: c for c in self.costs}
            merged.update({c.target: c for c in _costs(changes["costs"])})
            changes["costs"] = tuple(merged.values())
        return replace(self, **changes)


def _costs(value: Any) -> tuple[CostOverride, ...]:
    if isinstance(value, Mapping):
        return tuple(CostOverride.parse(str(k), v) for k, v in value.items())
    if isinstance(value, Iterable) and not isinstance(value, str):
        items = tuple(value)
        if all(isinstance(c, CostOverride) for c in items):
            return items
    raise ConventionError(f"costs must be CostOverride objects or a mapping target -> cost, got {value!r}")


MICRONET = Convention(sources=(
    "https://micronet-challenge.github.io/scoring_and_submission",
    "google-research/google-research micronet_challenge/counting.py",
))

IMTA_PROFILE = Convention(
    name="imta-profile",
    attribution="leaf-modules",
    costs=(
        CostOverride("BatchNorm2d", ops=3, per="input"),  # 3 ops per input element, never folded
        CostOverride("ReLU", ops=1, per="output"),  # 1 op per element, only as an nn.Module
        CostOverride("AvgPool2d", ops=1, per="window"),  # k^2 ops per output, only as an nn.Module
    ),
    fold_batchnorm=False,
    sparse_tensors="none",
    freebie=False,
    default_bits=16,
    description="the IMT Atlantique course's profile.py (2021-2024): leaf modules only, conv/linear "
                "multiplies at b/32 and additions at 1, batch norm 3 ops per element, parameters "
                "non-zero x b/32 without mask",
    sources=("brain-bzh/efficient-deep-learning micronet-ressources/profile.py (before 0ab757d)",),
)

IMTA_2025 = Convention(
    name="imta-2025",
    attribution="leaf-modules",
    fold_batchnorm=False,
    sparse_tensors="none",
    freebie=False,
    formula="imta-2025",
    description="the IMT Atlantique course since late 2024: nnz_w x q_w/32 / 5.6e6 + conv/linear MACs "
                "(zero filters dropped) x max(q_w, q_a)/32 / 2.8e8",
    sources=("brain-bzh/efficient-deep-learning lab4.md (after 0ab757d)",),
)

MICRONET_PER_TOKEN = replace(
    MICRONET, name="micronet-per-token", per_token=True,
    description="the micronet convention with operations per token (the WikiText-103 track: batch 1, one "
                "token per step, the recurrent state an input)",
)

_CONVENTIONS: dict[str, Convention] = {c.name: c for c in (MICRONET, MICRONET_PER_TOKEN, IMTA_PROFILE, IMTA_2025)}


def register_convention(convention: Convention) -> Convention:
    """Make ``convention`` available by name."""
    _CONVENTIONS[convention.name] = convention
    return convention


def get_convention(convention: str | Convention) -> Convention:
    """Resolve a convention by name (or pass one through)."""
    if isinstance(convention, Convention):
        return convention
    found = _CONVENTIONS.get(convention)
    if found is None:
        raise UnknownConventionError(
            f"unknown counting convention {convention!r}; known: {', '.join(sorted(_CONVENTIONS))}"
        )
    return found


def convention_names() -> list[str]:
    """Every registered convention name."""
    return sorted(_CONVENTIONS)
