"""The leaderboard's Pareto plot as inline SVG: top-1 accuracy against score (lower is better).

Scores that span more than a few times their smallest value get a log axis, others a linear one; both with
several labelled ticks. The rule set's accuracy threshold is a dashed line; entries that meet it are green
circles, those below it red triangles (shape and colour, named in a legend); entries at the same point share one
label ("alice, bob"); labels that would overlap move to a free spot. Published rows without an accuracy are grey
ticks along the bottom.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

PASS, FAIL, NEUTRAL, PUBLISHED, FRONT = "#1b7f4a", "#c0392b", "#2a6fb0", "#8a8a8a", "#1b7f4a"
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def pareto_svg(rows: Sequence[dict[str, Any]], *, threshold: float | None = None, width: int = 860,
               height: int = 420) -> str:
    """Accuracy (y) against score (x) as an ``<svg>`` element; ``threshold`` (a fraction) is drawn as a line."""
    points = [r for r in rows if _number(r.get("score")) and _number(r.get("accuracy"))]
    ticks = [r for r in rows if _number(r.get("score")) and not _number(r.get("accuracy"))]
    if not points and not ticks:
        return "<p>No scored entries to plot.</p>"
    left, right, top, bottom = 64, 190, 16, 56
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    xaxis = _Axis.for_scores([float(r["score"]) for r in points + ticks])
    accs = [float(r["accuracy"]) for r in points]
    if threshold is not None:
        accs.append(float(threshold))
    lo_acc, hi_acc, acc_ticks = _accuracy_range(accs or [0.0, 1.0])

    def sx(v: float) -> float:
        return x0 + xaxis.fraction(v) * (x1 - x0)

    def sy(a: float) -> float:
        return y1 - 18 - (a - lo_acc) / (hi_acc - lo_acc) * (y1 - 18 - y0)  # 18 px at the bottom for ticks

    esc = html.escape
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} "
           f"{height}' role='img' aria-label='top-1 accuracy against score' class='pareto'>",
           f"<rect x='{x0}' y='{y0}' width='{x1 - x0}' height='{y1 - y0}' fill='#fbfbfb' stroke='#bbb'/>"]
    for a in acc_ticks:
        y = sy(a)
        out.append(f"<line x1='{x0}' y1='{y:.1f}' x2='{x1}' y2='{y:.1f}' stroke='#e6e6e6'/>"
                   f"<text class='ytick' x='{x0 - 6}' y='{y + 4:.1f}' text-anchor='end' font-size='11'>"
                   f"{_percent(a)}</text>")
    for v, labelled in _spaced(xaxis.ticks(), sx):
        x = sx(v)
        out.append(f"<line x1='{x:.1f}' y1='{y1}' x2='{x:.1f}' y2='{y1 + (5 if labelled else 3)}' stroke='#444'/>")
        if labelled:
            out.append(f"<line x1='{x:.1f}' y1='{y0}' x2='{x:.1f}' y2='{y1}' stroke='#e6e6e6'/>"
                       f"<text class='xtick' x='{x:.1f}' y='{y1 + 18}' text-anchor='middle' font-size='11'>"
                       f"{_number_label(v)}</text>")
    out.append(f"<text x='{(x0 + x1) / 2}' y='{height - 12}' text-anchor='middle' font-size='12'>score "
               f"({xaxis.kind} scale; lower is better)</text>"
               f"<text x='16' y='{(y0 + y1) / 2}' font-size='12' text-anchor='middle' "
               f"transform='rotate(-90 16 {(y0 + y1) / 2})'>top-1 accuracy</text>")
    if threshold is not None:
        y = sy(float(threshold))
        out.append(f"<line class='threshold' x1='{x0}' y1='{y:.1f}' x2='{x1}' y2='{y:.1f}' stroke='#555' "
                   f"stroke-dasharray='6 4'/><text x='{x1 - 4}' y='{y - 5:.1f}' text-anchor='end' font-size='11' "
                   f"fill='#555'>threshold {_percent(float(threshold))}</text>")
    front = _front(points)
    if len(front) > 1:
        path = " ".join(f"{sx(float(r['score'])):.1f},{sy(float(r['accuracy'])):.1f}" for r in front)
        out.append(f"<polyline points='{path}' fill='none' stroke='{FRONT}' stroke-width='1.2' opacity='0.6'/>")
    for r in ticks:
        x = sx(float(r["score"]))
        out.append(f"<line x1='{x:.1f}' y1='{y1 - 14}' x2='{x:.1f}' y2='{y1}' stroke='{PUBLISHED}' "
                   f"stroke-width='1.5'><title>{esc(str(r.get('name')))} (published): score "
                   f"{float(r['score']):g}</title></line>")
    groups = _groups(points, sx, sy)
    for (x, y), members in groups:
        for r in members:
            out.append(_marker(x, y, r.get("passed"), f"{r.get('name')}: score {float(r['score']):.6f}, "
                               f"accuracy {float(r['accuracy']):.2%}"))
    out.extend(_labels(groups, (x0, y0, x1, y1)))
    out.append(_legend(x1 + 16, y0 + 4, threshold is not None, bool(ticks), len(front) > 1,
                       any(r.get("passed") is None for r in points)))
    out.append("</svg>")
    return "\n".join(out)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Axis:
    """A score axis: ``log`` when the scores span more than four times their smallest, else ``linear``."""

    def __init__(self, kind: str, lo: float, hi: float) -> None:
        self.kind, self.lo, self.hi = kind, lo, hi

    @classmethod
    def for_scores(cls, scores: list[float]) -> _Axis:
        positive = [v for v in scores if v > 0] or [1e-3]
        lo, hi = min(positive), max(positive)
        if hi / lo > 4:
            a, b = math.log10(lo), math.log10(hi)
            pad = max(0.08 * (b - a), 0.1)
            return cls("log", 10 ** (a - pad), 10 ** (b + pad))
        span = hi - lo or hi * 0.2
        return cls("linear", max(lo - 0.12 * span, 0.0), hi + 0.12 * span)

    def fraction(self, v: float) -> float:
        if self.kind == "log":
            v = min(max(v, self.lo), self.hi)
            return (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return (v - self.lo) / (self.hi - self.lo)

    def ticks(self) -> list[tuple[float, bool]]:
        """``(value, labelled)`` pairs: 4 to 12 labelled ticks where the range allows."""
        if self.kind == "linear":
            return [(v, True) for v in _nice(self.lo, self.hi)]
        first, last = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
        every = [m * 10.0 ** e for e in range(first, last + 1) for m in range(1, 10)]
        inside = [v for v in every if self.lo <= v * (1 + 1e-12) and v <= self.hi * (1 + 1e-12)]
        for marks in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
            labelled = [v for v in inside if _mantissa(v) in marks]
            if len(labelled) >= 4 or marks[-1] == 9:
                if len(labelled) > 12:
                    labelled = [v for v in inside if _mantissa(v) in (1, 2, 5)]
                return [(v, v in labelled) for v in inside]
        return []  # pragma: no cover


def _spaced(ticks: list[tuple[float, bool]], sx: Any) -> list[tuple[float, bool]]:
    """The ticks with labels kept only where they do not crowd each other: 1s first, then 2s and 5s, then the
    rest (on a linear axis every tick is a 1)."""
    def priority(v: float) -> int:
        m = _mantissa(v) if v > 0 else 1
        return 0 if m == 1 else 1 if m in (2, 5) else 2

    spans: list[tuple[float, float]] = []
    keep = set()
    for v, _ in sorted((t for t in ticks if t[1]), key=lambda t: (priority(t[0]), t[0])):
        half = 3.4 * len(_number_label(v)) + 6
        span = (sx(v) - half, sx(v) + half)
        if not any(span[0] < b and a < span[1] for a, b in spans):
            spans.append(span)
            keep.add(v)
    return [(v, v in keep) for v, _ in ticks]


def _mantissa(v: float) -> int:
    return round(v / 10.0 ** math.floor(math.log10(v) + 1e-9))


def _nice(lo: float, hi: float, target: int = 6) -> list[float]:
    raw = (hi - lo) / target
    step = min((m * 10.0 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)),
               key=lambda s: abs((hi - lo) / s - target))
    start = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(start, math.floor(hi / step + 1e-9) + 1)]


def _number_label(v: float) -> str:
    if 1e-3 <= v < 1e4:
        return f"{v:.6g}"
    exponent = math.floor(math.log10(v) + 1e-9)
    mantissa = round(v / 10.0 ** exponent, 6)
    power = "10" + str(exponent).translate(_SUPERSCRIPT)
    return power if mantissa == 1 else f"{mantissa:g}×{power}"


def _accuracy_range(accs: list[float]) -> tuple[float, float, list[float]]:
    lo, hi = min(accs), max(accs)
    pad = max(0.06 * (hi - lo), 0.02)
    lo, hi = max(0.0, lo - pad), min(1.0, hi + pad)
    if hi - lo < 1e-9:
        lo, hi = max(0.0, lo - 0.05), min(1.0, hi + 0.05)
    return lo, hi, [t for t in _nice(lo, hi, 5) if lo - 1e-12 <= t <= hi + 1e-12]


def _percent(a: float) -> str:
    return f"{round(a * 100, 4):g}%"


def _front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    front, best = [], -math.inf
    for r in sorted(points, key=lambda r: (float(r["score"]), -float(r["accuracy"]))):
        if float(r["accuracy"]) > best:
            front.append(r)
            best = float(r["accuracy"])
    return front


def _groups(points: list[dict[str, Any]], sx: Any, sy: Any) -> list[tuple[tuple[float, float], list[dict]]]:
    """Entries drawn at the same spot (within 3 px), best rank first: they share one label."""
    groups: list[tuple[tuple[float, float], list[dict]]] = []
    order = sorted(points, key=lambda r: (r.get("rank") is None, r.get("rank") or 0, str(r.get("name"))))
    for r in order:
        x, y = sx(float(r["score"])), sy(float(r["accuracy"]))
        for (gx, gy), members in groups:
            if abs(gx - x) <= 3 and abs(gy - y) <= 3:
                members.append(r)
                break
        else:
            groups.append(((x, y), [r]))
    return groups


def _marker(x: float, y: float, passed: Any, title: str) -> str:
    tip = f"<title>{html.escape(title)}</title>"
    if passed is False:
        return (f"<path d='M{x:.1f},{y - 6:.1f} L{x + 5.5:.1f},{y + 4:.1f} L{x - 5.5:.1f},{y + 4:.1f} Z' "
                f"fill='{FAIL}' stroke='#fff' stroke-width='0.8'>{tip}</path>")
    color = PASS if passed else NEUTRAL
    return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='5' fill='{color}' stroke='#fff' stroke-width='0.8'>{tip}</circle>"


def _labels(groups: list[tuple[tuple[float, float], list[dict]]], area: tuple[float, float, float, float]
            ) -> list[str]:
    """One label per group, at the first spot around it that overlaps no label, marker or the frame."""
    x0, y0, x1, y1 = area
    taken = [(x - 6, y - 6, x + 6, y + 6) for (x, y), _ in groups]
    out = []
    for (x, y), members in groups:
        names = [_short(str(r.get("name"))) for r in members]
        text = ", ".join(names) if len(names) <= 3 else ", ".join(names[:3]) + f" +{len(names) - 3}"
        w, h = 6.2 * len(text) + 2, 12
        spots = [(8, -7, "start"), (8, 13, "start"), (-8, -7, "end"), (-8, 13, "end"), (0, -11, "middle"),
                 (0, 19, "middle")] + [(8, s * k, "start") for k in range(2, 8) for s in (-12, 12)]
        chosen = None
        for dx, dy, anchor in spots:
            left = x + dx - (w if anchor == "end" else w / 2 if anchor == "middle" else 0)
            box = (left, y + dy - h + 2, left + w, y + dy + 2)
            inside = box[0] >= x0 + 2 and box[2] <= x1 - 2 and box[1] >= y0 + 2 and box[3] <= y1 - 16
            if inside and not any(_overlap(box, other) for other in taken):
                chosen = (dx, dy, anchor, box)
                break
        if chosen is None:  # nowhere free: still labelled, beside the marker
            dx, dy, anchor = (8, -7, "start") if x + 8 + w <= x1 else (-8, -7, "end")
            left = x + dx - (w if anchor == "end" else 0)
            chosen = (dx, dy, anchor, (left, y + dy - h + 2, left + w, y + dy + 2))
        dx, dy, anchor, box = chosen
        taken.append(box)
        if abs(dy) > 19:
            out.append(f"<line x1='{x:.1f}' y1='{y:.1f}' x2='{x + dx:.1f}' y2='{y + dy - 4:.1f}' stroke='#999' "
                       "stroke-width='0.7'/>")
        out.append(f"<text class='label' x='{x + dx:.1f}' y='{y + dy:.1f}' text-anchor='{anchor}' "
                   f"font-size='11'>{html.escape(text)}</text>")
    return out


def _short(name: str, limit: int = 24) -> str:
    """A name as a plot label: one line, at most ``limit`` characters (the tooltip has it whole)."""
    name = " ".join(name.split())
    return name if len(name) <= limit else name[:limit - 1] + "…"


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _legend(x: float, y: float, threshold: bool, published: bool, front: bool, neutral: bool) -> str:
    items = []
    if threshold:
        items += [(_marker(x + 6, 0, True, "meets the threshold"), "meets the threshold"),
                  (_marker(x + 6, 0, False, "below the threshold"), "below the threshold")]
    if neutral or not threshold:
        items.append((_marker(x + 6, 0, None, "scored"), "scored (no threshold)"))
    if threshold:
        items.append((f"<line x1='{x}' y1='0' x2='{x + 14}' y2='0' stroke='#555' stroke-dasharray='4 3'/>",
                      "accuracy threshold"))
    if front:
        items.append((f"<line x1='{x}' y1='0' x2='{x + 14}' y2='0' stroke='{FRONT}' opacity='0.6'/>",
                      "Pareto front"))
    if published:
        items.append((f"<line x1='{x + 6}' y1='-7' x2='{x + 6}' y2='7' stroke='{PUBLISHED}' stroke-width='1.5'/>",
                      "published (score only)"))
    parts = ["<g class='legend' font-size='11'>"]
    for i, (mark, label) in enumerate(items):
        dy = y + 10 + 20 * i
        parts.append(f"<g transform='translate(0 {dy:.1f})'>{mark}<text x='{x + 20}' y='4'>{label}</text></g>")
    parts.append("</g>")
    return "".join(parts)
