"""The ``groups`` argument of the DenseNet builders: every form it accepts, resolved to group counts per kind
of convolution.

Accepted forms (the same from Python and from ``--arg groups=...`` on the command line):

* ``None``: the builder's default;
* an int ``g``: every grouped stage of the builder whose convolutions ``g`` can split (it divides their
  input and output channels); the other stages keep their default, and a warning names them;
* a mapping ``{"conv3x3": 2, "transition": 3}`` or the string ``"conv3x3:2,transition:3"`` (also
  ``conv3x3=2``): the named kinds, the others at the builder's default;
* a :class:`~micronet_score.models.DenseNetGroups`: exactly those counts.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

from . import _checks
from .errors import ModelArgumentError

KINDS = ("stem", "bottleneck", "conv3x3", "transition")

FORMS = (
    "groups must be an int (every grouped stage it can split), a mapping such as {'conv3x3': 2, 'transition': 3}, "
    "the string 'conv3x3:2,transition:3', a DenseNetGroups, or None (the default); kinds: " + ", ".join(KINDS)
)


def conv_channels(growth_rate: Any, blocks: Any, reduction: Any) -> dict[str, list[tuple[int, int]]]:
    """``(in_channels, out_channels)`` of every convolution of each kind, in the layout of
    :class:`~micronet_score.models.densenet_cifar.DenseNetCIFAR`."""
    k = _checks.positive_int(growth_rate, "growth_rate")
    counts = _checks.positive_ints(blocks, "blocks")
    r = _checks.positive_float(reduction, "reduction")
    planes = 2 * k
    out: dict[str, list[tuple[int, int]]] = {"stem": [(3, planes)], "bottleneck": [], "conv3x3": [], "transition": []}
    for b, n_layers in enumerate(counts, start=1):
        for _ in range(n_layers):
            out["bottleneck"].append((planes, 4 * k))
            out["conv3x3"].append((4 * k, k))
            planes += k
        if b < len(counts):
            reduced = math.floor(planes * r)
            out["transition"].append((planes, reduced))
            planes = reduced
    return out


def _parse_text(text: str) -> Any:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    pairs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.replace("=", ":").partition(":")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise ModelArgumentError(f"groups={text!r} is not understood; {FORMS}")
        pairs[key.strip()] = int(value)
    if not pairs:
        raise ModelArgumentError(f"groups={text!r} is not understood; {FORMS}")
    return pairs


def resolve_groups(
    value: Any,
    default: Any,
    shorthand_kinds: Sequence[str],
    channels: dict[str, list[tuple[int, int]]] | None,
) -> Any:
    """``value`` in any accepted form -> a ``DenseNetGroups`` (``default`` is one too). ``shorthand_kinds``
    are the stages an int applies to; ``channels`` (from :func:`conv_channels`) tells which it can split."""
    cls = type(default)
    if value is None:
        return default
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        value = _parse_text(value)
    if isinstance(value, Mapping):
        unknown = sorted(str(k) for k in value if k not in KINDS)
        if unknown:
            raise ModelArgumentError(f"groups has unknown key(s) {unknown}; known keys: {list(KINDS)}")
        return replace(default, **dict(value))
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelArgumentError(f"groups={value!r}: {FORMS}")
    g = _checks.positive_int(value, "groups")
    assert channels is not None
    chosen, kept = {}, []
    for kind in shorthand_kinds:
        if all(i % g == 0 and o % g == 0 for i, o in channels[kind]):
            chosen[kind] = g
        else:
            kept.append(kind)
    if not chosen:
        valid = {
            kind: sorted(d for d in range(2, 65) if all(i % d == 0 and o % d == 0 for i, o in channels[kind]))
            for kind in shorthand_kinds
        }
        raise ModelArgumentError(
            f"groups={g} divides the channels of none of the grouped stages {list(shorthand_kinds)}; counts each "
            f"stage accepts (up to 64): {valid}. {FORMS}"
        )
    if kept:
        now = {f.name: getattr(default, f.name) for f in fields(default)}
        warnings.warn(
            f"groups={g} cannot split the channels of {', '.join(kept)}: "
            + ", ".join(f"{kind} keeps groups={now[kind]}" for kind in kept)
            + f" (pass a mapping such as {{'{kept[0]}': ...}} to choose)",
            UserWarning,
            stacklevel=5,
        )
    return replace(default, **chosen)
