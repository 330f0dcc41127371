"""Named, versioned rule sets: baselines, accuracy threshold and the counting convention they score under."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from micronet_score.convention import Convention, ConventionError, get_convention
from micronet_score.errors import MicronetError, UnknownRuleSetError


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
            raise RuleSetError("a rule set needs a non-empty name")
        for attr in ("param_baseline", "ops_baseline"):
            value = getattr(self, attr)
            if not _finite(value) or not value > 0:
                raise RuleSetError(f"rule set {self.name!r}: {attr} must be a finite positive number, got "
                                   f"{value!r}")
        for attr in ("dataset", "version", "description", "source", "metric", "data_format"):
            if not isinstance(getattr(self, attr), str):
                raise RuleSetError(f"rule set {self.name!r}: {attr} must be a string, got {getattr(self, attr)!r}")
        if not isinstance(self.lower_is_better, bool):
            raise RuleSetError(f"rule set {self.name!r}: lower_is_better must be true or false, got "
                               f"{self.lower_is_better!r}")
        if self.lower_is_better:
            if self.threshold is not None and (not _finite(self.threshold) or self.threshold <= 0):
                raise RuleSetError(f"rule set {self.name!r}: threshold is the largest {self.metric} that passes, "
                                   f"a finite positive number; got {self.threshold!r}")
        elif self.threshold is not None and (not _finite(self.threshold) or not 0 <= self.threshold <= 1):
            raise RuleSetError(f"rule set {self.name!r}: threshold is a fraction in [0, 1] (0.8 for 80%), "
                               f"got {self.threshold!r}")
        self._check_data()
        get_convention(self.convention)  # fail early on an unknown convention

    def _check_data(self) -> None:
        """The counting input and the test data's preprocessing: every field a usable value."""
        where = f"rule set {self.name!r}"
        if self.input_size is not None and not _ints(self.input_size, minimum=1):
            raise RuleSetError(f"{where}: input_size must be a list of positive whole numbers such as [1, 3, 32, "
                               f"32], got {self.input_size!r}")
        if self.data_format not in DATA_FORMATS:
            raise RuleSetError(f"{where}: data_format must be one of {', '.join(repr(f) for f in DATA_FORMATS)}, "
                               f"got {self.data_format!r}")
        if not _finite(self.data_scale) or not self.data_scale > 0:
            raise RuleSetError(f"{where}: data_scale must be a finite positive number (1/255 for 8-bit images), "
                               f"got {self.data_scale!r}")
        for attr in ("data_mean", "data_std"):
            value = getattr(self, attr)
            if value is not None and not (isinstance(value, tuple) and value and all(_finite(v) for v in value)):
                raise RuleSetError(f"{where}: {attr} must be a list of finite numbers, one per channel, got "
                                   f"{value!r}")
        if self.data_std is not None and not all(v > 0 for v in self.data_std):
            raise RuleSetError(f"{where}: data_std must be positive (it divides), got {self.data_std!r}")
        if self.data_mean is not None and self.data_std is not None and len(self.data_mean) != len(self.data_std):
            raise RuleSetError(f"{where}: data_mean has {len(self.data_mean)} values but data_std has "
                               f"{len(self.data_std)}; give one per channel in both")
        for attr in ("data_resize", "data_crop"):
            value = getattr(self, attr)
            if value is not None and not _ints((value,), minimum=1):
                raise RuleSetError(f"{where}: {attr} must be a positive whole number of pixels, got {value!r}")
        if not (isinstance(self.sources, tuple) and all(isinstance(v, str) for v in self.sources)):
            raise RuleSetError(f"{where}: sources must be a list of strings, got {self.sources!r}")
        for attr in ("metadata", "references"):
            if not isinstance(getattr(self, attr), dict):
                raise RuleSetError(f"{where}: {attr} must be a table, got {getattr(self, attr)!r}")

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
            if accuracy == math.inf:  # an infinite perplexity is above every (finite) threshold
                return False
            return Fraction(repr(float(accuracy))) <= Fraction(repr(float(self.threshold)))
        return accuracy_fraction(accuracy) >= Fraction(repr(float(self.threshold)))


class RuleSetError(MicronetError, ValueError):
    """A rule set with a field the library cannot score with, or a file taking a shipped rule set's name."""


#: The test-data formats ``data_format`` may name (``""``: none; see :mod:`micronet_score.organizer.datasets`).
DATA_FORMATS = ("", "cifar10", "cifar100", "imagefolder", "npz")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _ints(values: Any, *, minimum: int) -> bool:
    return isinstance(values, tuple) and len(values) > 0 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values)


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
        raise RuleSetError(f"a rule set named {rules.name!r} is already registered; pass replace=True")
    _RULES[rules.name] = rules
    return rules


def names() -> list[str]:
    """Every registered rule set name."""
    return sorted(_RULES)


def get(rules: str | RuleSet) -> RuleSet:
    """A rule set by name, by path to a TOML file, or passed through."""
    if isinstance(rules, RuleSet):
        shipped = _SHIPPED.get(rules.name)
        if shipped is not None and shipped != rules:
            raise RuleSetError(f"this rule set is named {rules.name!r}, a shipped rule set's, but its values "
                               "differ (a score under that name would not be that rule set's): give it another "
                               "name")
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
        raise RuleSetError(f"{path}: not valid TOML: {exc}") from exc
    table = data.get("rules")
    if not isinstance(table, dict):
        raise RuleSetError(f"{path}: expected a [rules] table with name, param_baseline and ops_baseline")
    table = dict(table)
    known = set(RuleSet.__dataclass_fields__)
    convention = table.pop("convention", "micronet")
    if isinstance(convention, dict):
        convention = convention_from_table(convention, default_name=f"{table.get('name', path.stem)}", where=path)
    unknown = set(table) - known
    if unknown:
        raise RuleSetError(f"{path}: unknown rule set field(s) {sorted(unknown)}; known: {sorted(known)}")
    for key in ("input_size", "sources", "data_mean", "data_std"):
        if isinstance(table.get(key), list):
            table[key] = tuple(table[key])
    try:
        rules = RuleSet(convention=convention, **table)
    except TypeError as exc:
        raise RuleSetError(f"{path}: {exc}") from exc
    except (RuleSetError, ConventionError) as exc:
        raise type(exc)(f"{path}: {exc}") from None
    shipped = _SHIPPED.get(rules.name)
    if shipped is not None and shipped != rules:
        raise RuleSetError(f"{path}: its name {rules.name!r} is a shipped rule set's, but its values differ (a "
                           "score under that name would not be that rule set's): rename it (name = "
                           f"\"{rules.name}-custom\", say)")
    return rules


def convention_from_table(table: dict[str, Any], *, default_name: str, where: Any = "") -> Convention:
    """A convention from a TOML table: ``base`` (a convention name, default ``"micronet"``) and any
    :class:`~micronet_score.convention.Convention` fields to override (``costs`` as a table)."""
    overrides = dict(table)
    base = get_convention(overrides.pop("base", "micronet"))
    bad = set(overrides) - set(Convention.__dataclass_fields__)
    if bad:
        raise RuleSetError(f"{where}: unknown convention field(s) {sorted(bad)}; known: "
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
                shipped = register(load(path))
                _SHIPPED[shipped.name] = shipped


_SHIPPED: dict[str, RuleSet] = {}  # the rule sets shipped with the library; no other file may take their names


_register_shipped()
