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
        raise MissingExtraError("to_pandas() needs pandas: pip install 'micronet-score[notebook]'") from exc
    return pandas


def report_frame(report: Report, depth: int | None = None) -> DataFrame:
    """One row per layer (merged to ``depth``), indexed by module name, one column per metric and bit widths."""
    from dataclasses import fields

    pd = _pandas()
    names = [f.name for f in fields(report) if "kind" in f.metadata]
    records = [{"name": r.name, "type": r.type, "calls": r.calls, **{n: getattr(r, n) for n in names},
                "param_bits": r.param_bits, "mult_bits": r.mult_bits, "add_bits": r.add_bits,
                "unsupported": sum(r.unsupported.values())} for r in report.merged(depth)]
    return pd.DataFrame.from_records(records, index="name",
                                     columns=["name", "type", "calls", *names, "param_bits", "mult_bits",
                                              "add_bits", "unsupported"])


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
