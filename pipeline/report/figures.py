"""Figures of the study report, drawn with matplotlib (Agg) to PNG and embedded as data URIs,
plus the cohort flow diagram as inline SVG.

Every function here draws what it is given: the suppression decisions (which groups, bins and
points may be drawn) are made in ``pipeline.report.sections``. Output is byte-identical for the
same input: fixed style, fonts shipped with matplotlib (DejaVu Sans), fixed size and dpi, and no
PNG metadata (matplotlib writes its version and a "Software" key otherwise).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import io
import multiprocessing
import pickle
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from html import escape

import matplotlib

matplotlib.use("Agg")  # no display: the report embeds the bytes
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

# Colour-blind-safe palette (Okabe & Ito, "Color Universal Design", 2008).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")

_STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "path.simplify": False,
}


# Figures are drawn once, after the report is assembled. The report is assembled in several
# disclosure-control passes (pipeline.report.assemble), each asking for the same figures, and
# drawing was most of the report step's time. Inside ``deferred_figures()`` a figure function
# returns a placeholder naming its arguments; ``draw_deferred`` draws the figures the final data
# still holds, each distinct one once.
_PENDING: dict[str, tuple[Callable[..., str], tuple, dict]] | None = None
_MARK = "\ue001figure:"
# Fewer figures than this are drawn in the calling process (forking costs more than it saves).
MIN_FIGURES_PER_POOL = 6


@contextmanager
def deferred_figures() -> Iterator[None]:
    """Within the block, figure functions return placeholders (see ``draw_deferred``)."""
    global _PENDING
    outer, _PENDING = _PENDING, ({} if _PENDING is None else _PENDING)
    try:
        yield
    finally:
        _PENDING = outer


def _deferrable(draw: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(draw)
    def deferred(*args, **kwargs) -> str:
        if _PENDING is None:
            return draw(*args, **kwargs)
        key = hashlib.sha256(pickle.dumps((draw.__name__, args, sorted(kwargs.items())), protocol=5)).hexdigest()
        _PENDING.setdefault(key, (draw, args, kwargs))
        return f"{_MARK}{key}\ue001"
    return deferred


def _draw_pending(key: str) -> str:
    draw, args, kwargs = _PENDING[key]
    return draw(*args, **kwargs)


def _draw_all(keys: list[str], workers: int) -> dict[str, str]:
    """Draw the figures ``keys`` of ``_PENDING``, on ``workers`` forked processes when there are
    enough of them to pay for it (a fork inherits matplotlib and the pending arguments, so a
    worker starts in milliseconds; the PNG bytes are the same in any process)."""
    if workers > 1 and len(keys) >= MIN_FIGURES_PER_POOL and "fork" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            return dict(zip(keys, pool.map(_draw_pending, keys)))
    return {key: _draw_pending(key) for key in keys}


def draw_deferred(data: Any, workers: int = 1) -> Any:
    """``data`` with every figure placeholder replaced by its drawn figure (called inside the
    ``deferred_figures()`` block that made them; each distinct figure is drawn once, on up to
    ``workers`` processes)."""
    assert _PENDING is not None, "draw_deferred outside deferred_figures()"
    keys: dict[str, None] = {}

    def walk(obj: Any, visit) -> Any:
        if isinstance(obj, str):
            return visit(obj[len(_MARK):-1]) if obj.startswith(_MARK) else obj
        if isinstance(obj, Mapping):
            return {k: walk(v, visit) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, visit) for v in obj]
        if isinstance(obj, tuple):
            return tuple(walk(v, visit) for v in obj)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.replace(obj, **{f.name: walk(getattr(obj, f.name), visit)
                                               for f in dataclasses.fields(obj) if f.init})
        return obj

    walk(data, lambda key: keys.setdefault(key))  # the figures the final data still shows
    drawn = _draw_all(list(keys), workers)
    return walk(data, drawn.__getitem__)


def _png(fig, dpi: int) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Curve:
    """One step curve: ``times`` (days) and ``values`` (proportions 0-1), optional CI band."""

    label: str
    times: Sequence[float]
    values: Sequence[float]
    ci_low: Sequence[float] | None = None
    ci_high: Sequence[float] | None = None


@_deferrable
def step_curves_png(curves: Sequence[Curve], *, ylabel: str, xlabel: str, xmax: float,
                    ylim: tuple[float, float] = (0.0, 1.0), dpi: int = 100,
                    as_percent: bool = True) -> str:
    """Step curves (Kaplan-Meier survival, cumulative incidence) with 95% bands."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 3.2))
        scale = 100.0 if as_percent else 1.0
        for i, c in enumerate(curves):
            colour = PALETTE[i % len(PALETTE)]
            ax.step(list(c.times), [scale * v for v in c.values], where="post", color=colour,
                    linewidth=1.6, label=c.label)
            if c.ci_low is not None and c.ci_high is not None:
                ax.fill_between(list(c.times), [scale * v for v in c.ci_low],
                                [scale * v for v in c.ci_high], step="post", color=colour,
                                alpha=0.15, linewidth=0)
        ax.set_xlim(0, xmax)
        ax.set_ylim(ylim[0] * scale, ylim[1] * scale)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if curves:
            ax.legend(frameon=True, framealpha=0.85, edgecolor="white", fontsize=8, loc="best")
        fig.tight_layout()
        return _png(fig, dpi)


@dataclass(frozen=True)
class ForestRow:
    label: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    group: str  # colour key (e.g. "naive", "time-varying")


@_deferrable
def forest_png(rows: Sequence[ForestRow], *, measure: str = "hazard ratio", dpi: int = 100) -> str:
    """Forest plot on a log scale; rows without an estimate are listed with "not estimable"."""
    groups = list(dict.fromkeys(r.group for r in rows))
    with plt.rc_context(_STYLE):
        height = 1.1 + 0.26 * max(len(rows), 1)
        fig, ax = plt.subplots(figsize=(8.5, height))
        ys = list(range(len(rows)))[::-1]
        finite = [v for r in rows for v in (r.ci_low, r.ci_high) if v is not None and v > 0]
        lo = min([0.5, *finite]) / 1.1
        hi = max([2.0, *finite]) * 1.1
        for y, r in zip(ys, rows):
            colour = PALETTE[groups.index(r.group) % len(PALETTE)]
            if r.estimate is None or r.ci_low is None or r.ci_high is None:
                ax.text(1.0, y, "not estimable", ha="center", va="center", fontsize=7, color="#666666")
                continue
            ax.plot([r.ci_low, r.ci_high], [y, y], color=colour, linewidth=1.4)
            ax.plot([r.estimate], [y], marker="s", color=colour, markersize=5)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ticks = [t for t in (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0) if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_yticks(ys, [r.label for r in rows], fontsize=8.5)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel(f"{measure} (log scale)\nbelow 1: fewer deaths with vasopressin")
        ax.grid(axis="y", visible=False)
        fig.tight_layout()
        return _png(fig, dpi)


@_deferrable
def histogram_png(edges: Sequence[float], heights: Sequence[int | None], *, xlabel: str,
                  thresholds: Sequence[tuple[float, str]], small_label: str, small_height: float,
                  overflow_label: str, dpi: int = 100) -> str:
    """Bar chart of counts per bin (``len(edges) == len(heights) + 1``); the last bin is the
    overflow bin. A height of ``None`` is a suppressed bin, drawn hatched at ``small_height``
    with the ``small_label``; guideline thresholds are dashed vertical lines."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 3.0))
        for left, right, h in zip(edges[:-1], edges[1:], heights):
            if h is None:
                ax.bar(left, small_height, width=right - left, align="edge", color="white",
                       edgecolor="#888888", hatch="///", linewidth=0.6)
            elif h > 0:
                ax.bar(left, h, width=right - left, align="edge", color=PALETTE[0],
                       edgecolor="white", linewidth=0.6)
        top = max([small_height, *[h for h in heights if h is not None]]) * 1.25
        for i, (x, text) in enumerate(thresholds):
            ax.axvline(x, color=PALETTE[1], linestyle="--", linewidth=1.0)
            ax.text(x, top * (0.96 - 0.09 * (i % 3)), " " + text, color=PALETTE[1], fontsize=7,
                    va="top")
        ax.set_ylim(0, top)
        ax.set_xlim(edges[0], edges[-1])
        ax.text(edges[-2], -0.12 * top, overflow_label, fontsize=7, clip_on=False)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("patients")
        ax.bar([0], [0], color="white", edgecolor="#888888", hatch="///", label=f"{small_label} patients")
        ax.legend(frameon=False, fontsize=7, loc="upper right")
        fig.tight_layout()
        return _png(fig, dpi)


@dataclass(frozen=True)
class ChartPoint:
    period: str
    p: float | None  # None: not drawn (suppressed or nobody assessed)
    lcl: float | None
    ucl: float | None
    is_signal: bool


@_deferrable
def p_chart_png(points: Sequence[ChartPoint], centre: float | None, *, dpi: int = 100) -> str:
    """Adherence (%) per period with the centre line and 3-sigma limits (which vary with each
    period's n); special-cause points in orange. Suppressed points are left out."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 2.4))
        x = list(range(len(points)))
        pct = lambda v: None if v is None else 100.0 * v  # noqa: E731
        drawn = [(xi, pt) for xi, pt in zip(x, points) if pt.p is not None]
        if centre is not None:
            ax.axhline(100.0 * centre, color="black", linewidth=1.0, label="centre line")
        if drawn:
            ax.step([xi for xi, _ in drawn], [pct(pt.ucl) for _, pt in drawn], where="mid",
                    color="#888888", linestyle="--", linewidth=0.9, label="control limits")
            ax.step([xi for xi, _ in drawn], [pct(pt.lcl) for _, pt in drawn], where="mid",
                    color="#888888", linestyle="--", linewidth=0.9)
            ax.plot([xi for xi, _ in drawn], [pct(pt.p) for _, pt in drawn], color=PALETTE[0],
                    marker="o", linewidth=1.2, label="adherence")
            sig = [(xi, pt) for xi, pt in drawn if pt.is_signal]
            if sig:
                ax.plot([xi for xi, _ in sig], [pct(pt.p) for _, pt in sig], linestyle="none",
                        marker="o", markersize=8, color=PALETTE[1], label="special cause")
        else:
            ax.text(0.5, 0.5, "no period can be shown (too few patients)", ha="center",
                    va="center", transform=ax.transAxes, color="#666666")
        ax.set_xticks(x, [pt.period for pt in points], fontsize=7)
        ax.set_xlim(-0.5, max(len(points) - 0.5, 0.5))
        ax.set_ylim(-2, 102)
        ax.set_ylabel("adherence (%)")
        if drawn or centre is not None:
            ax.legend(frameon=False, fontsize=7, loc="lower left")
        fig.tight_layout()
        return _png(fig, dpi)


@dataclass(frozen=True)
class FlowBox:
    text: str  # e.g. "All ICU stays"
    count_text: str  # e.g. "140 ICU stays, 100 patients"
    excluded_text: str | None  # side box: "excluded: 12 stays" (None for the first box)


def flow_svg(boxes: Sequence[FlowBox]) -> str:
    """CONSORT-style flow diagram as inline SVG: one box per step, exclusions to the right.
    Every text is HTML-escaped here (it may come from data or config)."""
    width, box_w, box_h, gap = 720, 380, 54, 34
    side_x, side_w = box_w + 60, 260
    height = len(boxes) * (box_h + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="cohort flow diagram" class="flow">'
    ]
    for i, box in enumerate(boxes):
        y = i * (box_h + gap) + 4
        parts.append(f'<rect x="10" y="{y}" width="{box_w}" height="{box_h}" rx="4" '
                     f'fill="#f4f8fb" stroke="#0072B2"/>')
        parts.append(f'<text x="{10 + box_w / 2}" y="{y + 21}" text-anchor="middle" '
                     f'font-size="13">{escape(box.text)}</text>')
        parts.append(f'<text x="{10 + box_w / 2}" y="{y + 40}" text-anchor="middle" '
                     f'font-size="13" font-weight="bold">{escape(box.count_text)}</text>')
        if i + 1 < len(boxes):
            x = 10 + box_w / 2
            parts.append(f'<line x1="{x}" y1="{y + box_h}" x2="{x}" y2="{y + box_h + gap - 2}" '
                         f'stroke="#333" marker-end="url(#arrow)"/>')
        if box.excluded_text is not None:
            ym = y - gap / 2 - 2
            parts.append(f'<line x1="{10 + box_w / 2}" y1="{ym + 4}" x2="{side_x}" y2="{ym + 4}" '
                         f'stroke="#999" stroke-dasharray="3,3"/>')
            parts.append(f'<rect x="{side_x}" y="{ym - 10}" width="{side_w}" height="28" rx="3" '
                         f'fill="#fff7f0" stroke="#D55E00"/>')
            parts.append(f'<text x="{side_x + 8}" y="{ym + 8}" font-size="12">'
                         f'{escape(box.excluded_text)}</text>')
    parts.insert(1, '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" '
                    'markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
                    'fill="#333"/></marker></defs>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class StrategyPoint:
    """One treatment strategy of the target-trial emulation: risk (0-1) with its interval and,
    for synthetic data, the generator's true risk."""

    label: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    truth: float | None = None


@_deferrable
def strategy_risk_png(points: Sequence[StrategyPoint], *, ylabel: str, xlabel: str, dpi: int = 100) -> str:
    """Risk (%) by strategy with 95% intervals; true values as open diamonds; "not estimable"
    written where a strategy has no estimate."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.6, 3.1))
        xs = list(range(len(points)))
        values = [v for p in points for v in (p.estimate, p.ci_low, p.ci_high, p.truth) if v is not None]
        top = min(100.0, 100.0 * max([0.1, *values]) * 1.15)
        has_truth = False
        for x, p in zip(xs, points):
            if p.estimate is None:
                ax.text(x, top * 0.5, "not\nestimable", ha="center", va="center", fontsize=8, color="#666666")
            else:
                if p.ci_low is not None and p.ci_high is not None:
                    ax.plot([x, x], [100 * p.ci_low, 100 * p.ci_high], color=PALETTE[0], linewidth=2.0)
                ax.plot([x], [100 * p.estimate], marker="o", color=PALETTE[0], markersize=7,
                        label="estimate (95% CI)" if x == next(i for i, q in enumerate(points) if q.estimate is not None) else None)
            if p.truth is not None:
                ax.plot([x + 0.18], [100 * p.truth], marker="D", markerfacecolor="white", markeredgecolor=PALETTE[1],
                        markeredgewidth=1.6, markersize=7, linestyle="none",
                        label=None if has_truth else "true value (generator)")
                has_truth = True
        ax.set_xticks(xs, [p.label for p in points], fontsize=9)
        ax.set_xlim(-0.6, len(points) - 0.4)
        ax.set_ylim(0, top)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(axis="x", visible=False)
        if any(p.estimate is not None for p in points) or has_truth:
            ax.legend(frameon=True, framealpha=0.9, edgecolor="white", fontsize=8, loc="lower left")
        fig.tight_layout()
        return _png(fig, dpi)
