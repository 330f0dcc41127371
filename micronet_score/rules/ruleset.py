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
    10,000 passes 0.8). ``convention`` names how counts are made (see :mod:`micronet_score.convention`).

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
    # The test data and its preprocessing (read by micronet_score.organizer; an entry may override them).
    data_format: str = ""  # cifar10, cifar100, imagefolder or npz
    data_scale: float = 1 / 255  # pixel values are multiplied by this before mean/std
    data_mean: tuple[float, ...] | None = None
    data_std: tuple[float, ...] | None = None
    data_resize: int | None = None  # shorter side, before the center crop (imagefolder)
    data_crop: int | None = None
    metric: str = "top1"  # the accuracy measured; higher is better, ``threshold`` is its minimum

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a rule set needs a non-empty name")
        for attr in ("param_baseline", "ops_baseline"):
            value = getattr(self, attr)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"rule set {self.name!r}: {attr} must be a positive number, got {value!r}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
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
        overrides = dict(convention)
        base = get_convention(overrides.pop("base", "micronet"))
        bad = set(overrides) - set(Convention.__dataclass_fields__)
        if bad:
            raise ValueError(f"{path}: unknown convention field(s) {sorted(bad)}; known: "
                             f"{sorted(Convention.__dataclass_fields__)}")
        overrides.setdefault("name", f"{base.name}+{table.get('name', path.stem)}")
        convention = base.with_options(**overrides)
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"{path}: unknown rule set field(s) {sorted(unknown)}; known: {sorted(known)}")
    for key in ("input_size", "data_mean", "data_std"):
        if table.get(key) is not None:
            table[key] = tuple(table[key])
    try:
        return RuleSet(convention=convention, **table)
    except TypeError as exc:
        raise ValueError(f"{path}: {exc}") from exc


register(RuleSet(
    name="micronet-2019-cifar100", param_baseline=36.5e6, ops_baseline=10.49e9, threshold=0.80,
    dataset="CIFAR-100", version="2019",
    description="NeurIPS 2019 MicroNet Challenge, CIFAR-100 track (baseline WideResNet-28-10)",
    source="https://micronet-challenge.github.io/scoring_and_submission", input_size=(1, 3, 32, 32),
    data_format="cifar100", data_mean=(0.5071, 0.4865, 0.4409), data_std=(0.2673, 0.2564, 0.2762),
))
register(RuleSet(
    name="micronet-2019-imagenet", param_baseline=6.9e6, ops_baseline=1170e6, threshold=0.75,
    dataset="ImageNet", version="2019",
    description="NeurIPS 2019 MicroNet Challenge, ImageNet track (baseline MobileNetV2 width 1.4)",
    source="https://micronet-challenge.github.io/scoring_and_submission", input_size=(1, 3, 224, 224),
    data_format="imagefolder", data_mean=(0.485, 0.456, 0.406), data_std=(0.229, 0.224, 0.225),
    data_resize=256, data_crop=224,
))
