"""Which classification task a rule set scores, and whether some test data is of that task.

A rule set names its data in ``dataset`` (``"CIFAR-100"``) and ``data_format`` (``"cifar100"``); the class count
of the well-known datasets follows from the name. A custom rule set without a known dataset declares nothing and
is never checked.

>>> from micronet_score.rules import get
>>> task_classes(get("micronet-2019-cifar100")), task_classes(get("imta-2025"))
(100, 10)
>>> dataset_mismatch(get("micronet-2019-cifar100"), "CIFAR-10")
"rule set 'micronet-2019-cifar100' scores CIFAR-100 (100 classes) but the data is CIFAR-10 (10 classes)"
>>> dataset_mismatch(get("micronet-2019-cifar100"), "cifar-100") is None
True
"""

from __future__ import annotations

import re
from typing import Any

# normalised dataset name (lower case, no spaces, dashes or underscores) -> number of classes
_KNOWN = {"cifar10": 10, "cifar100": 100, "imagenet": 1000, "imagenet1k": 1000, "ilsvrc2012": 1000,
          "mnist": 10, "fashionmnist": 10, "svhn": 10}


class DatasetMismatchWarning(UserWarning):
    """A score made under a rule set for one dataset with an accuracy measured on another."""


def known_classes(name: str | None) -> int | None:
    """The class count of a well-known dataset name (``"CIFAR-10"``, ``"cifar100"``), else None."""
    if not isinstance(name, str):
        return None
    return _KNOWN.get(re.sub(r"[\s_\-]", "", name.lower()))


def task_classes(ruleset: Any) -> int | None:
    """The number of classes the rule set's task has, from its ``dataset`` or ``data_format``; None when the
    rule set names no well-known dataset (a custom rule set: nothing to check)."""
    for name in (getattr(ruleset, "dataset", ""), getattr(ruleset, "data_format", "")):
        classes = known_classes(name)
        if classes is not None:
            return classes
    return None


def _task_name(ruleset: Any) -> str:
    return str(getattr(ruleset, "dataset", "") or getattr(ruleset, "data_format", ""))


def dataset_mismatch(ruleset: Any, dataset: str | None = None, classes: int | None = None) -> str | None:
    """A sentence saying that data named ``dataset`` (or of ``classes`` classes) is not of the rule set's task;
    None when they agree or when either side is unknown."""
    want = task_classes(ruleset)
    have = classes if classes is not None else known_classes(dataset)
    if want is None or have is None or want == have:
        return None
    what = f"{dataset} ({have} classes)" if dataset else f"of {have} classes"
    return (f"rule set {getattr(ruleset, 'name', '?')!r} scores {_task_name(ruleset)} ({want} classes) but the "
            f"data is {what}")
