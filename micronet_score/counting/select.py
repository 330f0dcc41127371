"""Which convention one ``ms.count`` call counts under, and the options the leaf-module counter cannot take.

``ms.count(model, inputs, rules="imta-2023")`` counts under the rule set's convention; ``convention=`` names one
directly. Under a ``"leaf-modules"`` convention the course's counter runs (counting/leaf_report.py): options
of the operator engine that it has no use for are refused by name, never ignored.
"""

from __future__ import annotations

from typing import Any

from micronet_score.convention import Convention, get_convention
from micronet_score.errors import InputError


def select_convention(convention: str | Convention | None, rules: Any) -> Convention:
    """The convention of ``rules`` (a rule set name, TOML path or RuleSet) if given, else ``convention``."""
    if rules is None:
        return get_convention(convention if convention is not None else "micronet")
    from micronet_score.rules.ruleset import get

    counting = get(rules).counting
    if convention is not None and convention != "micronet" and get_convention(convention).name != counting.name:
        raise InputError(f"rules={getattr(rules, 'name', rules)!r} counts under convention {counting.name!r}, but "
                         f"convention={getattr(convention, 'name', convention)!r} was also given: pass one of them")
    return counting


def refuse_operator_options(conv: Convention, **options: Any) -> None:
    """Raise naming every option set (not None/False/empty) that leaf-module counting does not take."""
    given = sorted(k for k, v in options.items() if v is not None and v is not False and v != {})
    if given:
        raise InputError(f"{', '.join(given)}: not an option of leaf-module counting (convention {conv.name!r} "
                         "counts nn.Module calls as the course script does; it takes bits and batch_size)")
