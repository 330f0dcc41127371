"""Named, versioned rule sets: baselines, accuracy threshold and the counting convention they score under."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from micronet_score.convention import Convention, get_convention
from micronet_score.errors import UnknownRuleSetError


@dataclass(frozen=True)
class RuleSet:
    """score = parameter storage / ``param_baseline`` + math operations / ``ops_baseline``.

    ``threshold`` is the top-1 accuracy (a fraction, e.g. 0.8) an entry must reach, compared exactly (8,000 of
    10,000 passes 0.8); with ``lower_is_better`` it is the most the ``metric`` may be (a perplexity of 35).
    ``convention`` names how counts are made (see :mod:`micronet_score.convention`). ``sources`` say where the
    baselines and rules come from, ``references`` the published numbers the library is tested against.

    >>> RuleSet("my-course", 5.6e6, 2.8e8, threshold=0.9, dataset="CIFAR-10").name
    'my-course'
    """

    name: str
    param_baseline: float
    ops_baseline: float
    threshold: float | None = None
    dataset: str = ""
    convention: str | Convention = "micronet"
    version: str = "1"
    description: str = ""
    source: str = ""
    input_size: tuple[int, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    metric: str = "top1"
    lower_is_better: bool = False  # the threshold is a maximum (perplexity), not a minimum (accuracy)
    sources: tuple[str, ...] = ()
    references: dict[str, Any] = field(default_factory=dict)
    # The test data and its preprocessing (read by micronet_score.organizer; an entry may override them).
    data_format: str = ""  # cifar10, cifar100, imagefolder or npz
    data_scale: float = 1 / 255  # pixel values are multiplied by this before mean/std
    data_mean: tuple[float, ...] | None = None
    data_std: tuple[float, ...] | None = None
    data_resize: int | None = None  # shorter side, before the center crop (imagefolder)
    data_crop: int | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a rule set needs a non-empty name")
        for attr in ("param_baseline", "ops_baseline"):
            value = getattr(self, attr)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"rule set {self.name!r}: {attr} must be a positive number, got {value!r}")
        if self.lower_is_better:
            if self.threshold is not None and (isinstance(self.threshold, bool) or
                                               not isinstance(self.threshold, (int, float)) or self.threshold <= 0):
                raise ValueError(f"rule set {self.name!r}: threshold is the largest {self.metric} that passes, a "
                                 f"positive number; got {self.threshold!r}")
        elif self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"rule set {self.name!r}: threshold is a fraction in [0, 1] (0.8 for 80%), "
                             f"got {self.threshold!r}")
        get_convention(self.convention)  # fail early on an unknown convention

    @property
    def counting(self) -> Convention:
        """The convention object this rule set counts under."""
        return get_convention(self.convention)

    def passes(self, accuracy: float | tuple[int, int]) -> bool | None:
        """Whether ``accuracy`` (a fraction, or (correct, total)) reaches the threshold, compared exactly."""
        if self.threshold is None:
            return None
        if self.lower_is_better:
            if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not accuracy >= 0:
                raise ValueError(f"{self.metric} must be a non-negative number, got {accuracy!r}")
            return Fraction(repr(float(accuracy))) <= Fraction(repr(float(self.threshold)))
        return accuracy_fraction(accuracy) >= Fraction(repr(float(self.threshold)))


def accuracy_fraction(accuracy: float | tuple[int, int]) -> Fraction:
    """An exact fraction from a float in [0, 1] (read as the decimal it prints as) or (correct, total)."""
    if isinstance(accuracy, tuple):
        correct, total = accuracy
        if not (isinstance(correct, int) and isinstance(total, int)) or total <= 0 or not 0 <= correct <= total:
            raise ValueError(f"accuracy as (correct, total) needs 0 <= correct <= total, total > 0; got {accuracy}")
        return Fraction(correct, total)
    if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy must be a fraction in [0, 1] (0.9012 for 90.12%) or (correct, total); "
                         f"got {accuracy!r}")
    return Fraction(repr(float(accuracy)))


_RULES: dict[str, RuleSet] = {}


def register(rules: RuleSet, *, replace: bool = False) -> RuleSet:
    """Make ``rules`` available by name; refuses to replace an existing name unless ``replace=True``."""
    if rules.name in _RULES and not replace:
        raise ValueError(f"a rule set named {rules.name!r} is already registered; pass replace=True")
    _RULES[rules.name] = rules
    return rules


def names() -> list[str]:
    """Every registered rule set name."""
    return sorted(_RULES)


def get(rules: str | RuleSet) -> RuleSet:
    """A rule set by name, by path to a TOML file, or passed through."""
    if isinstance(rules, RuleSet):
        return rules
    if not isinstance(rules, str):
        raise TypeError(f"rules must be a rule set name, a TOML path or a RuleSet, got {type(rules).__name__}")
    found = _RULES.get(rules)
    if found is not None:
        return found
    if rules.endswith(".toml"):
        return load(rules)
    raise UnknownRuleSetError(rules, list(_RULES))


def load(path: str | Path) -> RuleSet:
    """Read a rule set from a TOML file with a ``[rules]`` table (keys as :class:`RuleSet` fields) and an
    optional ``[rules.convention]`` table overriding fields of the base convention (``base = "micronet"``).

    ```toml
    [rules]
    name = "my-course-2026"
    param_baseline = 5.6e6
    ops_baseline = 2.8e8
    threshold = 0.9
    dataset = "CIFAR-10"

    [rules.convention]
    base = "micronet"
    accumulator_bits = 16
    ```

    ``convention`` may also be a name (``convention = "imta-profile"``); a ``[rules.convention.costs]`` table
    overrides costs (``BatchNorm2d = { ops = 2, per = "input" }``, ``"aten.relu" = "free"``), and a
    ``[rules.references]`` table records reference numbers. The shipped rule sets are such files.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rule set file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    table = data.get("rules")
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected a [rules] table with name, param_baseline and ops_baseline")
    table = dict(table)
    known = set(RuleSet.__dataclass_fields__)
    convention = table.pop("convention", "micronet")
    if isinstance(convention, dict):
        convention = convention_from_table(convention, default_name=f"{table.get('name', path.stem)}", where=path)
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"{path}: unknown rule set field(s) {sorted(unknown)}; known: {sorted(known)}")
    for key in ("input_size", "sources", "data_mean", "data_std"):
        if table.get(key) is not None:
            table[key] = tuple(table[key])
    try:
        return RuleSet(convention=convention, **table)
    except TypeError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def convention_from_table(table: dict[str, Any], *, default_name: str, where: Any = "") -> Convention:
    """A convention from a TOML table: ``base`` (a convention name, default ``"micronet"``) and any
    :class:`~micronet_score.convention.Convention` fields to override (``costs`` as a table)."""
    overrides = dict(table)
    base = get_convention(overrides.pop("base", "micronet"))
    bad = set(overrides) - set(Convention.__dataclass_fields__)
    if bad:
        raise ValueError(f"{where}: unknown convention field(s) {sorted(bad)}; known: "
                         f"{sorted(Convention.__dataclass_fields__)}")
    overrides.setdefault("name", f"{base.name}+{default_name}")
    if "sources" in overrides:
        overrides["sources"] = tuple(overrides["sources"])
    return base.with_options(**overrides)


def _register_shipped() -> None:
    """Register every rule set shipped as a TOML file next to this module."""
    from importlib.resources import as_file, files

    for entry in sorted(files("micronet_score.rules").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            with as_file(entry) as path:
                register(load(path))


_register_shipped()
