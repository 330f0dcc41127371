"""Compare two reports of the same model: what pruning or quantization changed, layer by layer.

``compare(before, after)`` matches the layer rows of two :class:`~micronet_score.report.Report` objects by
module name (pruning, fake quantization, ``model.half()`` and structured pruning keep the names) and returns a
frozen :class:`Comparison` with the before/after numbers of every row, their differences and the totals.

>>> import torch, micronet_score as ms
>>> from micronet_score.compare import compare
>>> layer = torch.nn.Linear(4, 2, bias=False)
>>> before = ms.count(layer, (1, 4))
>>> with torch.no_grad():
...     _ = layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, 0.0]]))
>>> after = ms.count(layer, (1, 4))
>>> diff = compare(before, after)
>>> diff.total.nonzero_params.before, diff.total.nonzero_params.after  # 8 weights, 3 left
(8, 3)
>>> diff.total.mults.delta, diff.total.adds.delta  # 8 -> 3 mults; adds (4-1)*2 = 6 -> (2-1) + 0 = 1
(-5, -5)
>>> diff.total.mask_bits.after  # 3 values at 16 bits + an 8-bit mask (56 bits) beat 8 dense (128 bits)
8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from micronet_score.errors import InputError
from micronet_score.report import LayerRow, Metrics, Report, metric_names

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from pandas import DataFrame

    from micronet_score.rules.ruleset import RuleSet
    from micronet_score.rules.score import Score

_ZERO = Metrics(0, 0, 0, 0, 0, 0.0, 0.0)


@dataclass(frozen=True)
class Change:
    """One number before and after. ``None`` means unknown (a layer absent from one report counts as 0; only
    non-zeros of meta tensors are unknown)."""

    before: float | int | None
    after: float | int | None

    @property
    def delta(self) -> float | int | None:
        """``after - before`` (None when either is unknown)."""
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def ratio(self) -> float | None:
        """``after / before`` (None when unknown or when ``before`` is 0)."""
        if self.before is None or self.after is None or self.before == 0:
            return None
        return self.after / self.before

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def __add__(self, other: Change) -> Change:
        def plus(a, b):
            return None if a is None or b is None else a + b

        return Change(plus(self.before, other.before), plus(self.after, other.after))


@dataclass(frozen=True)
class BitsChange:
    """Bit widths before and after (sorted tuples; empty when the row has no such values)."""

    before: tuple[int, ...]
    after: tuple[int, ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def __or__(self, other: BitsChange) -> BitsChange:
        return BitsChange(tuple(sorted(set(self.before) | set(other.before))),
                          tuple(sorted(set(self.after) | set(other.after))))


@dataclass(frozen=True)
class LayerComparison:
    """One module's row before and after. ``type_before``/``type_after`` are None where the module has no
    row in that report (it was added or removed, or costs nothing there); its numbers then count as zeros.

    Every :class:`~micronet_score.report.Metrics` field reads as a :class:`Change`: ``row.mults.delta``.
    """

    name: str
    type_before: str | None
    type_after: str | None
    before: Metrics
    after: Metrics
    param_bits: BitsChange
    mult_bits: BitsChange

    def __getattr__(self, name: str) -> Change:
        if name in metric_names():
            return self.change(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def change(self, metric: str) -> Change:
        """The :class:`Change` of one metric (a :class:`~micronet_score.report.Metrics` field name)."""
        return Change(getattr(self.before, metric), getattr(self.after, metric))

    def changes(self) -> dict[str, Change]:
        """Every metric's :class:`Change`, in table order."""
        return {name: self.change(name) for name in metric_names()}

    @property
    def status(self) -> str:
        """``"added"``, ``"removed"``, ``"changed"`` or ``"unchanged"``."""
        if self.type_before is None:
            return "added"
        if self.type_after is None:
            return "removed"
        changed = self.before != self.after or self.param_bits.changed or \
            self.mult_bits.changed or self.type_before != self.type_after
        return "changed" if changed else "unchanged"

    def __or__(self, other: LayerComparison) -> LayerComparison:
        """Two rows summed into one named like ``self`` (types become "…" where either side has a row)."""
        kinds = ["…" if a is not None or b is not None else None
                 for a, b in ((self.type_before, other.type_before), (self.type_after, other.type_after))]
        return LayerComparison(self.name, kinds[0], kinds[1], self.before + other.before, self.after + other.after,
                               self.param_bits | other.param_bits, self.mult_bits | other.mult_bits)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "type_before": self.type_before, "type_after": self.type_after,
                                "status": self.status}
        for f, change in self.changes().items():
            data[f] = {"before": change.before, "after": change.after, "delta": change.delta}
        for f in ("param_bits", "mult_bits"):
            data[f] = {"before": list(getattr(self, f).before), "after": list(getattr(self, f).after)}
        return data


@dataclass(frozen=True)
class ScoreDelta:
    """The two scores against one rule set and their differences (negative: the score improved)."""

    before: Score
    after: Score

    @property
    def delta(self) -> float:
        return self.after.value - self.before.value

    @property
    def param_term_delta(self) -> float:
        return self.after.param_term - self.before.param_term

    @property
    def ops_term_delta(self) -> float:
        return self.after.ops_term - self.before.ops_term

    @property
    def ratio(self) -> float | None:
        """``after / before`` of the score value (None when the first score is 0)."""
        return self.after.value / self.before.value if self.before.value else None

    def __str__(self) -> str:
        return (f"{self.before.rules}: score {self.before.value:.6f} -> {self.after.value:.6f} "
                f"({self.delta:+.6f}: parameters {self.param_term_delta:+.6f}, operations "
                f"{self.ops_term_delta:+.6f})")


@dataclass(frozen=True, repr=False)
class Comparison:
    """Per-layer and total differences between two reports (see :func:`compare`)."""

    layers: tuple[LayerComparison, ...]
    total: LayerComparison
    params_by_bits: tuple[dict[int, int], dict[int, int]]
    mults_by_bits: tuple[dict[int, float], dict[int, float]]
    freebie: tuple[bool, bool]
    before: Report
    after: Report

    def layer(self, name: str) -> LayerComparison:
        """The comparison row of module ``name`` (KeyError naming the known rows otherwise)."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(f"no layer {name!r} in the comparison; rows: "
                       f"{', '.join(r.name or '<root>' for r in self.layers)}")

    def changed(self) -> tuple[LayerComparison, ...]:
        """The rows whose numbers, widths or type differ (added and removed rows included)."""
        return tuple(r for r in self.layers if r.status != "unchanged")

    def score_delta(self, rules: str | RuleSet, *, accuracy_before: float | tuple[int, int] | None = None,
                    accuracy_after: float | tuple[int, int] | None = None) -> ScoreDelta:
        """Both reports scored against ``rules`` (a name or a :class:`~micronet_score.rules.RuleSet`)."""
        from micronet_score.api import score

        return ScoreDelta(score(self.before, rules=rules, accuracy=accuracy_before),
                          score(self.after, rules=rules, accuracy=accuracy_after))

    def merged(self, depth: int | None = None) -> tuple[LayerComparison, ...]:
        """The rows, with rows deeper than ``depth`` name levels summed into their ancestor at that depth
        (type "…" for a merged row). ``None``: the rows as they are."""
        if depth is None:
            return self.layers
        merged: dict[str, LayerComparison] = {}
        for row in self.layers:
            name = ".".join(row.name.split(".")[:depth]) if row.name else row.name
            current = merged.get(name)
            if current is None:
                if name != row.name:
                    row = LayerComparison(name, "…" if row.type_before else None, "…" if row.type_after else None,
                                          row.before, row.after, row.param_bits, row.mult_bits)
                merged[name] = row
            else:
                merged[name] = current | row
        return tuple(merged.values())

    def table(self, depth: int | None = None, tablefmt: str = "simple", changed_only: bool = False) -> str:
        """A per-layer diff table (tabulate), then the total. See :func:`comparison_table`."""
        return comparison_table(self, depth=depth, tablefmt=tablefmt, changed_only=changed_only)

    def __repr__(self) -> str:
        from micronet_score.render.text import comparison_repr

        return comparison_repr(self)

    def _repr_html_(self) -> str:
        from micronet_score.render.html import comparison_html

        return comparison_html(self)

    def to_pandas(self, depth: int | None = None) -> DataFrame:
        """One row per module with ``<metric>_before``/``<metric>_after``/``<metric>_delta`` columns (needs
        ``pip install pandas``)."""
        from micronet_score.render.frames import comparison_frame

        return comparison_frame(self, depth=depth)

    def plot(self, depth: int | None = None, top: int = 12) -> Figure:
        """What compression changed: the ``top`` layers (however deep; merged to ``depth`` name levels when given)
        with the largest change of 32-bit-equivalent storage and operations, before against after, and the totals
        by bit width. Returns the matplotlib Figure (``pip install matplotlib``)."""
        from micronet_score.render.plots import comparison_plot

        return comparison_plot(self, depth=depth, top=top)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able numbers (the two reports are not included; use their own ``to_dict``)."""
        return {
            "layers": [r.to_dict() for r in self.layers],
            "total": self.total.to_dict(),
            "params_by_bits": [{str(k): v for k, v in d.items()} for d in self.params_by_bits],
            "mults_by_bits": [{str(k): v for k, v in d.items()} for d in self.mults_by_bits],
            "freebie": list(self.freebie),
        }

    def __str__(self) -> str:
        return self.table()


# ---------------------------------------------------------------------------------------------- building
def compare(before: Report, after: Report) -> Comparison:
    """Match the layer rows of ``before`` and ``after`` by module name and put their numbers side by side.

    Rows appear in ``after``'s order, with rows only ``before`` has (modules removed, or costing nothing
    any more) placed after the row that preceded them in ``before``. A missing row counts as zeros.
    The total row is built from the reports' own totals; its widths are those of ``params_by_bits`` and
    ``mults_by_bits``.
    """
    for label, report in (("before", before), ("after", after)):
        if not isinstance(report, Report):
            raise InputError(f"compare() needs two Reports (from ms.count); {label} is {type(report).__name__}")
    rows_before = {r.name: r for r in before.layers}
    rows_after = {r.name: r for r in after.layers}
    layers = tuple(_layer(name, rows_before.get(name), rows_after.get(name))
                   for name in _merged_order([r.name for r in before.layers], [r.name for r in after.layers]))
    total = LayerComparison(
        name="total", type_before="", type_after="", before=before.metrics(), after=after.metrics(),
        param_bits=BitsChange(tuple(sorted(before.params_by_bits)), tuple(sorted(after.params_by_bits))),
        mult_bits=BitsChange(tuple(sorted(before.mults_by_bits)), tuple(sorted(after.mults_by_bits))),
    )
    return Comparison(
        layers=layers, total=total,
        params_by_bits=(dict(before.params_by_bits), dict(after.params_by_bits)),
        mults_by_bits=(dict(before.mults_by_bits), dict(after.mults_by_bits)),
        freebie=(before.freebie, after.freebie), before=before, after=after,
    )


def _merged_order(first: list[str], second: list[str]) -> list[str]:
    order = list(second)
    present = set(second)
    for i, name in enumerate(first):
        if name in present:
            continue
        anchor = next((first[j] for j in range(i - 1, -1, -1) if first[j] in present), None)
        position = order.index(anchor) + 1 if anchor is not None else 0
        order.insert(position, name)
        present.add(name)
    return order


def _layer(name: str, before: LayerRow | None, after: LayerRow | None) -> LayerComparison:
    return LayerComparison(
        name=name,
        type_before=before.type if before is not None else None,
        type_after=after.type if after is not None else None,
        before=before.metrics() if before is not None else _ZERO,
        after=after.metrics() if after is not None else _ZERO,
        param_bits=BitsChange(before.param_bits if before else (), after.param_bits if after else ()),
        mult_bits=BitsChange(before.mult_bits if before else (), after.mult_bits if after else ()),
    )


def comparison_table(comparison: Comparison, depth: int | None = None, tablefmt: str = "simple",
                     changed_only: bool = False) -> str:
    """Render ``comparison`` as a table: one row per module (merged to ``depth`` name levels when given;
    only the rows that changed with ``changed_only``), then the total. A changed number reads
    ``before → after``; the last two columns are the changes of the score's numerators (32-bit-equivalent
    parameter storage and math operations)."""
    from micronet_score.render.text import comparison_table as render

    return render(comparison, depth=depth, tablefmt=tablefmt, changed_only=changed_only)


__all__ = ["BitsChange", "Change", "Comparison", "LayerComparison", "ScoreDelta", "compare",
           "comparison_table"]
