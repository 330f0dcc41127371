"""Frozen results of a count: per-layer rows, per-tensor rows and totals, with a JSON round trip.

Rendering lives in :mod:`micronet_score.render`; these classes only hold numbers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class LayerRow:
    """What one module costs by itself (its children have their own rows).

    ``name`` is the module's state_dict prefix ("" for the root). Operation counts are per example; ``params``
    counts the values the module stores (zeros included, batch norms folded), ``param_storage`` and
    ``math_ops`` are 32-bit equivalents after the bit widths (and the 16-bit freebie, if it applies).
    """

    name: str
    type: str
    calls: int
    params: int
    nonzero_params: int | None
    mask_bits: int
    param_storage: float
    mults: float
    adds: float
    math_ops: float
    param_bits: tuple[int, ...]
    mult_bits: tuple[int, ...]
    add_bits: tuple[int, ...]
    unsupported: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TensorRow:
    """One stored tensor: its label (parameter name, or the effective weight of a pruned parameter), the module
    that owns it, the format chosen (``block`` None: dense; (1, 1): bitmask per element) and its cost."""

    name: str
    module: str
    shape: tuple[int, ...]
    params: int
    nonzero_params: int | None
    bits: int
    stored_values: int
    mask_bits: int
    block: tuple[int, int] | None
    param_storage: float
    finite: bool = True
    role: str = ""  # "weight" (may be stored sparse), "vector" (dense) or "mask/index" (own width, no freebie)
    format: str = ""  # "dense", "element" (1 mask bit per element) or "block"
    reason: str = ""  # why: the engine's classification, then the pricing's choice


@dataclass(frozen=True)
class Report:
    """The result of :func:`micronet_score.count`.

    Totals: ``params`` (values stored, zeros included), ``nonzero_params`` (None when values are unknown, e.g.
    on the meta device), ``mask_bits``, ``param_storage`` (32-bit-equivalent parameters: the score's
    numerator), ``mults`` and ``adds`` (raw, per example) and ``math_ops`` (32-bit-equivalent operations).
    """

    params: int
    nonzero_params: int | None
    mask_bits: int
    param_storage: float
    mults: float
    adds: float
    math_ops: float
    layers: tuple[LayerRow, ...]
    tensors: tuple[TensorRow, ...]
    unsupported: dict[str, dict[str, int]]
    unused: tuple[str, ...]
    params_by_bits: dict[int, int]
    mults_by_bits: dict[int, float]
    adds_by_bits: dict[int, float]
    batch_size: int
    input_shapes: tuple[tuple[int, ...], ...]
    convention: str
    freebie: bool
    accumulator_bits: int
    nonzeros_known: bool
    warnings: tuple[str, ...] = ()
    model: str = ""
    schema_version: int = SCHEMA_VERSION
    examples: float = 0  # what the counts were divided by (batch, or batch x sequence length per token)
    batch_dim: int | None = None  # the dimension of the first input read as the batch (None: not read)
    examples_from: str = ""  # how ``examples`` was found, in words
    formula_inputs: dict[str, float] = field(default_factory=dict)  # a closed-form formula's inputs (imta-2025)

    # ------------------------------------------------------------------ views
    def layer(self, name: str) -> LayerRow:
        """The row of module ``name`` (KeyError naming the known rows otherwise)."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(f"no layer {name!r} in the report; rows: {', '.join(r.name or '<root>' for r in self.layers)}")

    def subtotal(self, prefix: str) -> dict[str, float]:
        """Sums over the module ``prefix`` and everything below it (``""``: the whole model)."""
        keys = ("params", "mask_bits", "param_storage", "mults", "adds", "math_ops")
        total = dict.fromkeys(keys, 0.0)
        for row in self.layers:
            if not prefix or row.name == prefix or row.name.startswith(prefix + "."):
                for k in keys:
                    total[k] += getattr(row, k)
        return total

    @property
    def unsupported_total(self) -> int:
        """How many operator calls had no cost function (0 means everything was counted)."""
        return sum(sum(ops.values()) for ops in self.unsupported.values())

    def table(self, depth: int | None = None, tablefmt: str = "simple") -> str:
        """Per-layer table with a total row (rendered with tabulate). ``depth`` merges rows below that depth."""
        from micronet_score.render import report_table

        return report_table(self, depth=depth, tablefmt=tablefmt)

    def summary(self) -> str:
        """A few lines: totals and the bit widths used."""
        from micronet_score.render import report_summary

        return report_summary(self)

    def __str__(self) -> str:
        return self.summary()

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (integer keys become strings), with ``schema_version``."""
        data = asdict(self)
        for key in ("params_by_bits", "mults_by_bits", "adds_by_bits"):
            data[key] = {str(k): v for k, v in data[key].items()}
        return data

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Inverse of :meth:`to_dict`; refuses a schema version it does not know."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"report schema version {version!r} is not supported (this library reads "
                             f"version {SCHEMA_VERSION}); count the model again with this version")
        values = dict(data)
        values["layers"] = tuple(
            LayerRow(**{**row, **{k: tuple(row[k]) for k in ("param_bits", "mult_bits", "add_bits")}})
            for row in data["layers"]
        )
        values["tensors"] = tuple(
            TensorRow(**{**row, "shape": tuple(row["shape"]),
                         "block": tuple(row["block"]) if row["block"] is not None else None})
            for row in data["tensors"]
        )
        for key in ("params_by_bits", "mults_by_bits", "adds_by_bits"):
            values[key] = {int(k): v for k, v in data[key].items()}
        values["unused"] = tuple(data["unused"])
        values["warnings"] = tuple(data.get("warnings", ()))
        values["input_shapes"] = tuple(tuple(s) for s in data["input_shapes"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))
