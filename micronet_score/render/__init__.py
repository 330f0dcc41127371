"""Everything that turns result data into text, HTML or plots, one file per output kind.

The result classes (:class:`~micronet_score.report.Report`, scores, comparisons, leaderboards) hold only
numbers; they call into this package to be shown.
"""

from micronet_score.render.text import format_count, report_summary, report_table, score_summary

__all__ = ["format_count", "report_summary", "report_table", "score_summary"]
