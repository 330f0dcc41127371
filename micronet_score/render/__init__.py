"""Everything that turns result data into text, HTML, DataFrames or plots, one file per output kind.

The result classes (:class:`~micronet_score.report.Report`, scores, comparisons, leaderboards) hold only
numbers; they call into this package, inside their display methods, to be shown. Nothing here imports the
result classes at run time (only for type checking), so there is no import cycle. ``html``, ``frames`` and
``plots`` import pandas or matplotlib only when called.
"""

from micronet_score.render.text import (
    comparison_table,
    format_count,
    report_summary,
    report_table,
    score_summary,
)

__all__ = ["comparison_table", "format_count", "report_summary", "report_table", "score_summary"]
