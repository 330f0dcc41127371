"""pandas DataFrames of reports and comparisons (pandas imported when called: the ``notebook`` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from micronet_score.errors import MissingExtraError

if TYPE_CHECKING:
    from pandas import DataFrame

    from micronet_score.compare import Comparison
    from micronet_score.report import Report


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise MissingExtraError("to_pandas() needs pandas: pip install pandas (in a clone: pip install -e '.[notebook]')") from exc
    return pandas


_BIT_COLUMNS = ("param_bits", "mult_bits", "add_bits")


def bits_cell(widths: tuple[int, ...]) -> int | str | None:
    """A bit-width cell: the width as an int when there is one, ``"8/16"`` (ascending) when several, None when none.

    >>> bits_cell((16,)), bits_cell((8, 16)), bits_cell(())
    (16, '8/16', None)
    """
    if not widths:
        return None
    if len(widths) == 1:
        return int(widths[0])
    return "/".join(str(w) for w in sorted(widths))


def report_frame(report: Report, depth: int | None = None) -> DataFrame:
    """One row per layer (merged to ``depth``), indexed by module name, one column per metric and bit widths.

    ``param_bits``, ``mult_bits`` and ``add_bits`` hold the width as an int when the layer has one (an ``Int64``
    column, ``<NA>`` for a layer with none), and a string such as ``"8/16"`` (its widths, ascending) in a layer
    that mixes widths (the column is then of ``object`` dtype).
    """
    from dataclasses import fields

    pd = _pandas()
    names = [f.name for f in fields(report) if "kind" in f.metadata]
    records = [{"name": r.name, "type": r.type, "calls": r.calls, **{n: getattr(r, n) for n in names},
                **{b: bits_cell(getattr(r, b)) for b in _BIT_COLUMNS},
                "unsupported": sum(r.unsupported.values())} for r in report.merged(depth)]
    frame = pd.DataFrame.from_records(records, index="name",
                                      columns=["name", "type", "calls", *names, *_BIT_COLUMNS, "unsupported"])
    for column in _BIT_COLUMNS:
        if not any(isinstance(v, str) for v in frame[column]):
            frame[column] = frame[column].astype("Int64")
    return frame


def comparison_frame(comparison: Comparison, depth: int | None = None) -> DataFrame:
    """One row per module with ``status``, the two types and ``<metric>_before/_after/_delta`` columns."""
    pd = _pandas()
    records = []
    for r in comparison.merged(depth):
        record: dict[str, Any] = {"name": r.name, "status": r.status, "type_before": r.type_before,
                                  "type_after": r.type_after}
        for metric, change in r.changes().items():
            record.update({f"{metric}_before": change.before, f"{metric}_after": change.after,
                           f"{metric}_delta": change.delta})
        records.append(record)
    return pd.DataFrame.from_records(records, index="name")
