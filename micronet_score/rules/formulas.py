"""Score formulas: which two 32-bit-equivalent terms a convention's counts give the baselines to divide.

Pure arithmetic (no counting here). ``score = storage / P_base + ops / O_base`` for every shipped rule set; what
changes is how ``storage`` and ``ops`` come from the counts:

- ``"micronet"``: the counted parameter storage and math operations (a :class:`~micronet_score.Report`, or a
  :class:`~micronet_score.counting.leaf_profile.LeafProfile` under ``imta-profile``), as they are;
- ``"imta-2025"`` (spec section 4): nnz_w · q_w/32 and f · max(q_w, q_a)/32, with nnz_w the non-zero
  parameters, f the conv/linear MACs with zeroed filters dropped, q_w and q_a the weight and activation widths.

How an API scores a model under a rule set (``ms.score(model, inputs, rules=...)``)::

    conv = ruleset.counting
    if conv.attribution == "leaf-modules":
        measured = leaf_profile.profile(model, inputs, convention=conv, **options)
    else:
        measured = count(model, inputs, convention=conv, **options)
    storage, ops = formulas.terms(conv, measured)
    return evaluate(storage, ops, rules=ruleset, accuracy=accuracy)

>>> from micronet_score.convention import get_convention
>>> class ResNet18:  # trained ResNet-18, CIFAR-10: every parameter non-zero; 555,422,720 conv+linear MACs
...     nonzero_params, macs, weight_bits, activation_bits = 11_173_962, 555_422_720, 16, 16
>>> terms(get_convention("imta-2025"), ResNet18)  # 11,173,962 x 16/32; 555,422,720 x 16/32
(5586981.0, 277711360.0)
"""

from __future__ import annotations

from typing import Any, Protocol

from micronet_score.convention import Convention
from micronet_score.errors import InputError


class Counted(Protocol):
    """What the ``"micronet"`` formula reads (a Report or a LeafProfile)."""

    param_storage: float
    math_ops: float


class ClosedFormInputs(Protocol):
    """What the ``"imta-2025"`` formula reads (a LeafProfile)."""

    nonzero_params: int
    macs: float
    weight_bits: int
    activation_bits: int


def imta_2025(nonzero_params: float, macs: float, weight_bits: int, activation_bits: int) -> tuple[float, float]:
    """The closed form's two terms before the baselines: (nnz_w · q_w/32, f · max(q_w, q_a)/32).

    >>> imta_2025(11_173_962, 555_422_720, 32, 32)  # ResNet-18 at 32 bits: / 5.6e6 + / 2.8e8 = 3.9790
    (11173962.0, 555422720.0)
    """
    for label, value in (("weight_bits", weight_bits), ("activation_bits", activation_bits)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
            raise InputError(f"{label} must be an integer number of bits in 1..64, got {value!r}")
    return nonzero_params * weight_bits / 32, macs * max(weight_bits, activation_bits) / 32


def terms(convention: Convention, measured: Any) -> tuple[float, float]:
    """(parameter storage, math operations) that the rule set's baselines divide, under ``convention``'s
    formula, from what was counted (``measured``: a Report, or a LeafProfile for leaf-module conventions)."""
    if convention.formula == "imta-2025":
        given = getattr(measured, "formula_inputs", None)
        if given:  # a Report counted under the closed form's convention carries its inputs
            return imta_2025(given["nonzero_params"], given["macs"], int(given["weight_bits"]),
                             int(given["activation_bits"]))
        missing = [a for a in ("nonzero_params", "macs", "weight_bits", "activation_bits")
                   if getattr(measured, a, None) is None]
        if missing:
            raise InputError(f"the imta-2025 formula needs {', '.join(missing)}, which "
                             f"{type(measured).__name__} does not give: score the model itself "
                             "(ms.score(model, inputs, rules=...))")
        return imta_2025(measured.nonzero_params, measured.macs, measured.weight_bits, measured.activation_bits)
    return measured.param_storage, measured.math_ops


def one_token_per_example(inputs: Any) -> bool:
    """Whether the first input holds one token per example (shape (batch, 1, ...)), the only layout that
    per-token rule sets can be counted on while the engine divides by the batch alone."""
    first = inputs
    while isinstance(first, (tuple, list)) and first and not isinstance(first[0], int):
        first = first[0]
    if isinstance(first, dict):
        first = next(iter(first.values()), None)
    shape = tuple(first) if isinstance(first, (tuple, list)) else tuple(getattr(first, "shape", ()))
    return all(s == 1 for s in shape[1:])
