"""matplotlib figures of reports, comparisons and compression histories (the ``plot`` extra).

matplotlib is imported when a plot is drawn; without a display (and no backend chosen) it uses ``Agg``. Each
function returns the :class:`matplotlib.figure.Figure`, already closed in pyplot so it is shown once in a
notebook (as the cell's value) and never leaks in a script: save it with ``fig.savefig(path)``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from micronet_score.errors import InputError, MissingExtraError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from micronet_score.compare import Comparison
    from micronet_score.report import Report
    from micronet_score.rules.score import Score


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError("plots need matplotlib: pip install matplotlib (in a clone: pip install -e '.[plot]')") from exc
    headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and \
        not os.environ.get("WAYLAND_DISPLAY")
    if headless and "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _percent(values: list[float], total: float) -> list[float]:
    return [100.0 * v / total if total else 0.0 for v in values]


def _ranked(rows: list[Any], metric: str, top: int) -> tuple[list[Any], float, int]:
    """The ``top`` rows with the largest ``metric`` (largest first), the sum of the rest and how many they are."""
    costly = sorted((r for r in rows if getattr(r, metric)), key=lambda r: getattr(r, metric), reverse=True)
    rest = costly[top:]
    return costly[:top], sum(getattr(r, metric) for r in rest), len(rest)


def _layer_panel(ax: Any, rows: list[Any], metric: str, total: float, top: int, what: str, color: str) -> list[Any]:
    """Horizontal bars of the ``top`` rows by ``metric`` and one grey "other" bar, each labelled with its value and
    its share of ``total``; returns the rows shown."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    shown, rest, n_rest = _ranked(rows, metric, top)
    names = [r.name or "(root)" for r in shown]
    values = [float(getattr(r, metric)) for r in shown]
    colors = [color] * len(shown)
    if n_rest:
        names.append(f"other ({n_rest} layer{'s' if n_rest != 1 else ''})")
        values.append(rest)
        colors.append("0.65")
    y = list(range(len(values)))
    # a long tail's "other" bar would squash the ranked bars: past the axis it is cut, hatched and labelled
    limit = 1.45 * max(values[:len(shown)] or values or [1.0]) or 1.0
    bars = ax.barh(y, [min(v, limit) for v in values], 0.7, color=colors)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    for i, v, bar in zip(y, values, bars):
        share = f" ({100 * v / total:.1f}%)" if total else ""
        if v > limit:
            bar.set_hatch("//")
            bar.set_edgecolor("white")
            ax.annotate(f"{v:,.1f}{share} (bar cut short)", (0.98 * limit, i), ha="right", va="center",
                        fontsize=7, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none"})
        else:
            ax.annotate(f"{v:,.1f}{share}", (v, i), xytext=(3, 0), textcoords="offset points", va="center",
                        fontsize=7)
    ax.set_xlim(0, limit)
    ax.set_xlabel(f"32-bit equivalents (total {total:,.1f})")
    ax.set_title(f"{what}: top {len(shown)} of {len(shown) + n_rest} layers", fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    return shown


def report_plot(report: Report, depth: int | None = None, top: int = 12) -> Figure:
    """Four panels: the ``top`` layers by 32-bit-equivalent parameter storage and by math operations (each with
    an "other" bar for the rest, so the bars add up to the total), the stored values and multiplications by bit
    width, and the density (non-zero / stored values) of the layers of the storage panel.

    ``depth``: ``None`` ranks the layer rows as counted (however deep they sit); a number first sums the rows
    below that many name levels into their ancestor (``1``: one bar per top-level child)."""
    plt = _pyplot()
    if top < 1:
        raise InputError(f"report.plot(top={top}): top must be at least 1")
    rows = [r for r in report.merged(depth) if r.param_storage or r.math_ops]
    n_bars = min(top, len(rows)) + 1
    fig, axes = plt.subplots(2, 2, figsize=(14, max(7.0, 0.5 * n_bars + 4.5)),
                             gridspec_kw={"height_ratios": [max(n_bars, 3), 4]})
    (storage_ax, ops_ax), (by_bits, density) = axes
    stored = _layer_panel(storage_ax, rows, "param_storage", report.param_storage, top, "Parameter storage",
                          "tab:blue")
    _layer_panel(ops_ax, rows, "math_ops", report.math_ops, top, "Math operations", "tab:orange")

    widths = sorted(set(report.params_by_bits) | set(report.mults_by_bits))
    x = list(range(len(widths)))
    by_bits.bar([i - 0.2 for i in x], _percent([report.params_by_bits.get(b, 0) for b in widths], report.params),
                0.4, label="stored values", color="tab:blue")
    by_bits.bar([i + 0.2 for i in x], _percent([report.mults_by_bits.get(b, 0) for b in widths], report.mults),
                0.4, label="multiplications", color="tab:orange")
    by_bits.set_xticks(x, [f"{b}-bit" for b in widths])
    by_bits.set_ylabel("% of all")
    by_bits.set_ylim(0, 105)
    by_bits.set_title("By bit width", fontsize=10)
    by_bits.legend(fontsize=8)

    stored = [r for r in stored if r.params]
    if report.nonzeros_known and stored:
        dens = [100.0 * (r.nonzero_params or 0) / r.params for r in stored]
        names = [r.name or "(root)" for r in stored]
        if report.params and report.nonzero_params is not None:
            dens.append(100.0 * report.nonzero_params / report.params)
            names.append("whole model")
        y = list(range(len(dens)))
        density.barh(y, dens, 0.7, color=["tab:green"] * len(stored) + ["0.45"] * (len(dens) - len(stored)))
        density.set_yticks(y, names, fontsize=7)
        density.invert_yaxis()
        density.set_xlim(0, 100)
        density.set_title("Density of the storage panel's layers", fontsize=10)
    else:
        density.text(0.5, 0.5, "non-zeros unknown\n(meta tensors)", ha="center", va="center",
                     transform=density.transAxes)
        density.set_title("Density of stored values", fontsize=10)
    density.set_xlabel("% non-zero")
    fig.suptitle(f"{report.model or 'model'}: parameter storage {report.param_storage:,.1f}, math operations "
                 f"{report.math_ops:,.1f} (32-bit equivalents)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def comparison_plot(comparison: Comparison, depth: int | None = None, top: int = 12) -> Figure:
    """Two panels: the ``top`` layers whose storage or operations changed most, before and after, and the
    stored values and multiplications by bit width before and after."""
    plt = _pyplot()
    rows = sorted((r for r in comparison.merged(depth) if r.status != "unchanged"), key=lambda r: abs(r.change("param_storage").delta or 0) /
                  (comparison.total.before.param_storage or 1) + abs(r.change("math_ops").delta or 0) /
                  (comparison.total.before.math_ops or 1), reverse=True)[:top]
    fig, (layers, widths_ax) = plt.subplots(1, 2, figsize=(14, max(3.5, 0.4 * len(rows) + 1.5)),
                                            gridspec_kw={"width_ratios": [3, 2]})
    y = list(range(len(rows)))
    tb, ta = comparison.total.before, comparison.total.after
    for offset, metric, side, total, label in (
            (-0.3, "param_storage", "before", tb.param_storage, "storage before"),
            (-0.1, "param_storage", "after", tb.param_storage, "storage after"),
            (0.1, "math_ops", "before", tb.math_ops, "ops before"),
            (0.3, "math_ops", "after", tb.math_ops, "ops after")):
        values = [getattr(getattr(r, side), metric) for r in rows]
        layers.barh([i + offset for i in y], _percent(values, total), 0.2, label=label)
    layers.set_yticks(y, [r.name or "(root)" for r in rows], fontsize=8)
    layers.invert_yaxis()
    layers.set_xlabel("% of the total before (32-bit equivalents)")
    layers.set_title(f"Largest changes ({len(comparison.changed())} of {len(comparison.layers)} layers changed)")
    layers.legend(fontsize=8, loc="lower right")

    (pb, pa), (mb, ma) = comparison.params_by_bits, comparison.mults_by_bits
    widths = sorted(set(pb) | set(pa) | set(mb) | set(ma))
    x = list(range(len(widths)))
    for offset, data, total, label in ((-0.3, pb, tb.params, "values before"), (-0.1, pa, tb.params, "values after"),
                                       (0.1, mb, tb.mults, "mults before"), (0.3, ma, tb.mults, "mults after")):
        widths_ax.bar([i + offset for i in x], _percent([data.get(b, 0) for b in widths], total), 0.2,
                      label=label)
    widths_ax.set_xticks(x, [f"{b}-bit" for b in widths])
    widths_ax.set_ylabel("% of the total before")
    widths_ax.set_title("By bit width")
    widths_ax.legend(fontsize=8)
    fig.suptitle(f"storage {tb.param_storage:,.1f} → {ta.param_storage:,.1f}, "
                 f"ops {tb.math_ops:,.1f} → {ta.math_ops:,.1f} (32-bit equivalents)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def _steps(steps: Mapping[str, Any] | Iterable[Any]) -> list[tuple[str, float, float, float | None]]:
    items = list(steps.items()) if isinstance(steps, Mapping) else list(steps)
    out = []
    for item in items:
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            raise InputError(f"plot_history() takes (label, Score) or (label, score, accuracy) steps, got {item!r}")
        label, result = item[0], item[1]
        if len(item) == 3:
            value, accuracy, threshold = float(result), item[2], None
        else:
            value, accuracy, threshold = result.value, result.accuracy, result.threshold
        if accuracy is None:
            raise InputError(f"step {label!r} has no accuracy: score it with ms.score(..., accuracy=...) or pass "
                             f"(label, score, accuracy)")
        out.append((str(label), value, float(accuracy), threshold))
    if not out:
        raise InputError("plot_history() needs at least one step")
    return out


def plot_history(steps: Mapping[str, Score] | Iterable[tuple[str, Score] | tuple[str, float, float]]) -> Figure:
    """Accuracy against score, one point per step of a compression story (dense → pruned → quantized →
    fine-tuned), joined in order, with the rule set's accuracy threshold as a dashed line.

    ``steps``: ``{label: Score}`` or ``[(label, Score), ...]`` with scores made with ``accuracy=``, or
    ``[(label, score_value, accuracy), ...]``. Lower score is better: the x axis runs right to left. Each label
    sits at the nearest spot clear of the other labels, the points and the legend (joined to its point by a line
    when moved out); steps at the same point (a fine-tuning that changed nothing) share one label.

    >>> import micronet_score as ms
    >>> fig = ms.plot_history([("dense", 0.40, 0.81), ("pruned", 0.21, 0.79), ("fine-tuned", 0.21, 0.805)])
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['score (lower is better)']
    """
    from micronet_score.render.labels import place_labels

    plt = _pyplot()
    points = _steps(steps)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs, ys = [p[1] for p in points], [100 * p[2] for p in points]
    ax.plot(xs, ys, "-", color="0.6", zorder=1)
    ax.scatter(xs, ys, zorder=2, c=range(len(points)), cmap="viridis", edgecolors="0.25", linewidths=0.6)
    ax.margins(0.15, 0.12)
    threshold = next((p[3] for p in points if p[3] is not None), None)
    legend = []
    if threshold is not None:
        ax.axhline(100 * threshold, ls="--", color="tab:red", label=f"threshold {threshold:.2%}")
        legend.append(ax.legend(fontsize=8, loc="best"))
    ax.set_xlabel("score (lower is better)")
    ax.set_ylabel("accuracy (%)")
    ax.invert_xaxis()
    ax.set_title("Compression history")
    fig.tight_layout()
    fig.draw_without_rendering()  # fixes the limits and the legend's spot, which the labels then keep clear of
    for leg in legend:
        corner = ax.transAxes.inverted().transform(leg.get_window_extent().p0)
        leg.set_loc(tuple(corner))
    spots: dict[tuple[float, float], list[str]] = {}  # steps that changed nothing share a point and one label
    for label, x, y in zip((p[0] for p in points), xs, ys):
        spots.setdefault((x, y), []).append(label)
    place_labels(ax, list(spots), [", ".join(labels) for labels in spots.values()], avoid=legend)
    plt.close(fig)
    return fig
