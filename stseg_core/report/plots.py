"""Matplotlib (Agg, no pyplot state) plots as PNG bytes: per-video scores of every method, per-frame J of one object."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from stseg_core.fusion.pgmr import DISPLAY_NAMES, PGMR
from stseg_core.report.select import FrameSeries, VideoRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_LABELLED_VIDEOS = 60
"""Beyond this many videos the x axis shows ranks, not names (names stay in the table)."""


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _style(method: str) -> dict[str, Any]:
    if method == PGMR:
        return {"color": "black", "marker": "*", "markersize": 7, "linewidth": 1.6}
    return {"marker": "o", "markersize": 3, "linewidth": 0.8}


def per_video_plot(rows: list[VideoRow], methods: list[str], ylabel: str) -> bytes:
    """Each method's value per video, videos in the page's order (most disputed first)."""
    fig = _figure(min(16.0, 8 + 0.1 * len(rows)), 3.8)
    ax = fig.add_subplot()
    x = range(len(rows))
    for method in methods:
        ys = [r.values.get(method, float("nan")) for r in rows]
        ax.plot(x, ys, label=DISPLAY_NAMES.get(method, method), linestyle="none", **{**_style(method), "linewidth": 0})
    if len(rows) <= MAX_LABELLED_VIDEOS:
        ax.set_xticks(list(x), [r.video for r in rows], rotation=90, fontsize=7)
    else:
        ax.set_xlabel("videos, most disputed first (rank)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _png(fig)


def frame_plot(series: FrameSeries, marks: list[str]) -> bytes:
    """One object's per-frame series across methods; dotted lines mark the frames shown in the strip."""
    fig = _figure(6.4, 2.8)
    ax = fig.add_subplot()
    index = {s: i for i, s in enumerate(series.stems)}
    for method, values in series.series.items():
        ax.plot(range(len(values)), values, label=DISPLAY_NAMES.get(method, method), **_style(method))
    for stem in marks:
        if stem in index:
            ax.axvline(index[stem], color="grey", linestyle=":", linewidth=1)
    step = max(1, len(series.stems) // 12)
    ticks = list(range(0, len(series.stems), step))
    ax.set_xticks(ticks, [series.stems[i] for i in ticks], rotation=45, fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(series.measure.split(" (")[0])
    ax.set_title(f"{series.video}, object {series.object_id}: {series.measure}", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return _png(fig)
