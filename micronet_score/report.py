"""Frozen results of a count: per-layer rows, per-tensor rows and totals, with a JSON round trip.

The seven numbers every row and total carries are declared once, in :class:`Metrics`; :class:`LayerRow`,
:class:`Report`, :mod:`micronet_score.compare` and the renderers all read that one declaration.
Rendering lives in :mod:`micronet_score.render` (imported only inside the display methods); these classes
only hold numbers.

>>> import torch, micronet_score as ms
>>> report = ms.count(torch.nn.Linear(4, 2), (1, 4))
>>> [m for m in metric_names()]
['params', 'nonzero_params', 'mask_bits', 'mults', 'adds', 'param_storage', 'math_ops']
>>> report.metrics().params, report.metrics().mults  # 4*2 + 2 values; 4*2 mults
(10, 8)
>>> repr(report)
'<Report Linear: 10 params (10 non-zero), 8 mults, 8 adds, storage 5.0, ops 12.0>'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pandas import DataFrame

SCHEMA_VERSION = 1


def _metric(header: str, kind: str, doc: str) -> Any:
    return field(metadata={"header": header, "kind": kind, "doc": doc})


@dataclass(frozen=True)
class Metrics:
    """The seven numbers of a count, for one layer or for the whole model (the one place they are declared).

    Each field's ``metadata`` gives its table ``header``, its ``kind`` (``"count"``: an exact number of
    values, bits or operations; ``"equiv"``: a 32-bit equivalent after bit widths) and a ``doc`` line.
    ``nonzero_params`` is None when values are unknown (meta tensors).

    >>> a = Metrics(params=4, nonzero_params=3, mask_bits=4, mults=8, adds=6, param_storage=2.0, math_ops=7.0)
    >>> (a + a).params, (a + a).nonzero_params
    (8, 6)
    >>> (a + Metrics(1, None, 0, 0, 0, 0.5, 0.0)).nonzero_params is None  # unknown stays unknown
    True
    """

    params: int = _metric("params", "count", "values stored, zeros included")
    nonzero_params: int | None = _metric("nonzero", "count", "non-zero values stored (None: unknown)")
    mask_bits: int = _metric("mask bits", "count", "bits of the sparsity bitmasks")
    mults: float = _metric("mults", "count", "multiplications per example")
    adds: float = _metric("adds", "count", "additions per example")
    param_storage: float = _metric("param storage", "equiv", "32-bit-equivalent parameters (score numerator)")
    math_ops: float = _metric("math ops", "equiv", "32-bit-equivalent operations (score numerator)")

    def metrics(self) -> Metrics:
        """Only the seven numbers (a plain :class:`Metrics`, whatever row or report this is)."""
        return Metrics(**{name: getattr(self, name) for name in metric_names()})

    def __add__(self, other: Metrics) -> Metrics:
        def plus(a: Any, b: Any) -> Any:
            return None if a is None or b is None else a + b

        return Metrics(**{n: plus(getattr(self, n), getattr(other, n)) for n in metric_names()})


def metric_names() -> tuple[str, ...]:
    """The names of the :class:`Metrics` fields, in table order."""
    return tuple(f.name for f in fields(Metrics))


def metric_fields() -> tuple[Any, ...]:
    """The :class:`Metrics` dataclass fields (with their ``header``/``kind``/``doc`` metadata), in order."""
    return fields(Metrics)


@dataclass(frozen=True)
class LayerRow(Metrics):
    """What one module costs by itself (its children have their own rows).

    ``name`` is the module's state_dict prefix ("" for the root). Operation counts are per example; ``params``
    counts the values the module stores (zeros included, batch norms folded), ``param_storage`` and
    ``math_ops`` are 32-bit equivalents after the bit widths (and the 16-bit freebie, if it applies).
    """

    name: str
    type: str
    calls: int
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
class OperatorRow:
    """What one aten operator costs over the whole forward: ``mults`` and ``adds`` per example (batch norms
    folded, as in the totals), ``calls`` the costed calls in one forward pass."""

    mults: float
    adds: float
    calls: int


@dataclass(frozen=True, repr=False)
class Report(Metrics):
    """The result of :func:`micronet_score.count`.

    Totals: ``params`` (values stored, zeros included), ``nonzero_params`` (None when values are unknown, e.g.
    on the meta device), ``mask_bits``, ``param_storage`` (32-bit-equivalent parameters: the score's
    numerator), ``mults`` and ``adds`` (raw, per example) and ``math_ops`` (32-bit-equivalent operations).
    """

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
    by_operator: dict[str, OperatorRow] = field(default_factory=dict, compare=False)
    """Counts per aten operator name (``aten.convolution`` -> :class:`OperatorRow`), as fvcore's by-operator
    view; operators without a cost are in ``unsupported``, free ones cost nothing and are not listed. The names
    depend on the kernels that ran (an attention fast path on real values, its decomposition on the meta
    device) while the counts do not, so this view is left out of ``==``."""
    examples: float = 0  # what the counts were divided by (batch, or batch x sequence length per token)
    batch_dim: int | None = None  # the dimension of the first input read as the batch (None: not read)
    examples_from: str = ""  # how ``examples`` was found, in words
    formula_inputs: dict[str, float] = field(default_factory=dict)  # a closed-form formula's inputs (imta-2025)
    load_time: tuple[str, ...] = ()
    """The constants the forward computed from weights alone (a position table gathered with constant ids, a
    relative-position bias table, a sub-network run on fixed inputs): load-time work, free, each line naming
    the stored tensors priced whole in its place (spec section 3)."""

    # ------------------------------------------------------------------ views
    def layer(self, name: str) -> LayerRow:
        """The row of module ``name`` (KeyError naming the known rows otherwise)."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(f"no layer {name!r} in the report; rows: {', '.join(r.name or '<root>' for r in self.layers)}")

    def subtotal(self, prefix: str) -> dict[str, float | None]:
        """Sums of every :class:`Metrics` field over the module ``prefix`` and everything below it (``""``: the
        whole model). ``nonzero_params`` is None when any summed row's non-zeros are unknown."""
        total = Metrics(0, 0, 0, 0, 0, 0.0, 0.0)
        for row in self.layers:
            if not prefix or row.name == prefix or row.name.startswith(prefix + "."):
                total = total + row
        return {name: getattr(total, name) for name in metric_names()}

    def merged(self, depth: int | None = None) -> tuple[LayerRow, ...]:
        """The layer rows, with rows deeper than ``depth`` name levels summed into their ancestor at that depth
        (type ``"…"`` when the merged rows differ; bit widths united). ``None``: the rows as they are."""
        if depth is None:
            return self.layers
        merged: dict[str, LayerRow] = {}
        for row in self.layers:
            name = ".".join(row.name.split(".")[:depth]) if row.name else row.name
            kind = row.type if name == row.name else "…"
            current = merged.get(name)
            if current is None:
                merged[name] = replace(row, name=name, type=kind, unsupported=dict(row.unsupported))
                continue
            unsupported = dict(current.unsupported)
            for op, n in row.unsupported.items():
                unsupported[op] = unsupported.get(op, 0) + n
            merged[name] = LayerRow(
                **asdict(current + row), name=name, type=current.type if current.type == kind else "…",
                calls=current.calls + row.calls,
                param_bits=tuple(sorted(set(current.param_bits) | set(row.param_bits))),
                mult_bits=tuple(sorted(set(current.mult_bits) | set(row.mult_bits))),
                add_bits=tuple(sorted(set(current.add_bits) | set(row.add_bits))), unsupported=unsupported)
        return tuple(merged.values())

    def costliest(self, n: int = 5, by: str = "math_ops") -> tuple[LayerRow, ...]:
        """The ``n`` layer rows with the largest ``by`` (a :class:`Metrics` field name), largest first."""
        if by not in metric_names():
            raise KeyError(f"no metric {by!r}; metrics: {', '.join(metric_names())}")
        return tuple(sorted(self.layers, key=lambda r: getattr(r, by) or 0, reverse=True)[:n])

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

    def __repr__(self) -> str:
        from micronet_score.render.text import report_repr

        return report_repr(self)

    def _repr_html_(self) -> str:
        from micronet_score.render.html import report_html

        return report_html(self)

    def print(self, depth: int | None = None) -> None:
        """Print the summary and the table: with ``rich`` when it is installed (``pip install
        rich``), as plain text otherwise."""
        from micronet_score.render.console import print_report

        print_report(self, depth=depth)

    def to_pandas(self, depth: int | None = None) -> DataFrame:
        """The layer rows as a pandas DataFrame (one column per field; needs ``pip install
        pandas``)."""
        from micronet_score.render.frames import report_frame

        return report_frame(self, depth=depth)

    def plot(self, depth: int | None = None, top: int = 12) -> Figure:
        """Where the parameters and operations go: the ``top`` layers (however deep; merged to ``depth`` name
        levels when given) by parameter storage and by math ops, each with an "other" bar, by bit width and by
        sparsity. Returns the matplotlib Figure (``pip install matplotlib``)."""
        from micronet_score.render.plots import report_plot

        return report_plot(self, depth=depth, top=top)

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
        values["load_time"] = tuple(data.get("load_time", ()))
        values["input_shapes"] = tuple(tuple(s) for s in data["input_shapes"])
        values["by_operator"] = {op: OperatorRow(**row) for op, row in data.get("by_operator", {}).items()}
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))
