"""Counting conventions: the choices the rules leave open, bundled and named.

A rule set names the convention it is scored under; :func:`micronet_score.count` counts under one
(``"micronet"`` by default, spec section 3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from micronet_score.errors import MicronetError

MASK_POLICIES = ("cheaper", "when-zeros", "nonzeros-only")


@dataclass(frozen=True)
class Convention:
    """How to count where the rules are silent.

    - ``fold_batchnorm``: fold an inference batch norm into the conv/linear whose output feeds only it.
    - ``mask_policy``: how sparse tensors are stored (see :func:`micronet_score.counting.storage.price`).
    - ``accumulator_bits``: width of every addition.
    - ``freebie``: ``None`` applies the 16-bit freebie when nothing is below 16 bits (the rules); ``True``
      always counts parameters and multiplies wider than 16 bits as 16; ``False`` never.
    """

    name: str = "micronet"
    fold_batchnorm: bool = True
    mask_policy: str = "cheaper"
    accumulator_bits: int = 32
    freebie: bool | None = None
    description: str = "MicroNet 2019 rules as the official counter applies them (spec sections 1-3)"

    def __post_init__(self) -> None:
        if self.mask_policy not in MASK_POLICIES:
            raise ValueError(f"mask_policy must be one of {MASK_POLICIES}, got {self.mask_policy!r}")
        if not isinstance(self.accumulator_bits, int) or not 1 <= self.accumulator_bits <= 64:
            raise ValueError(f"accumulator_bits must be an integer in 1..64, got {self.accumulator_bits!r}")
        if self.freebie not in (None, True, False):
            raise ValueError(f"freebie must be None, True or False, got {self.freebie!r}")

    def with_options(self, **changes: object) -> Convention:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


MICRONET = Convention()
_CONVENTIONS: dict[str, Convention] = {MICRONET.name: MICRONET}


class UnknownConventionError(MicronetError, ValueError):
    """A convention name that is not registered."""


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
    return sorted(_CONVENTIONS)
