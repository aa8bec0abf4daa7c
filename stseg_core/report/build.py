"""Build a run's report folder (index.html + PNG/GIF beside it) into any store: a local folder or next to the run."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from stseg_core.data.labels import read_label_png
from stseg_core.data.mose import MoseSplit
from stseg_core.errors import MissingArtifactError
from stseg_core.fusion.pgmr import DISPLAY_NAMES
from stseg_core.report import images
from stseg_core.report.collect import RunSummary, collect_run
from stseg_core.report.page import Closeup, render
from stseg_core.report.plots import frame_plot, per_video_plot
from stseg_core.report.select import (
    FrameSeries,
    VideoRow,
    agreement_series,
    eval_series,
    largest_drop,
    select_videos,
    video_rows,
)
from stseg_core.store import Store, open_store

PREVIEW_FRAMES = 48


@dataclass(frozen=True)
class ReportConfig:
    """run_root: the run; out: where the folder goes (None: `<run>/report`); videos: close-ups to show (empty:
    the `per_kind` worst and most disputed); data_root: the split's frames (None: the ground truth's sibling,
    `<split>_gt` → `<split>`); gt_root: every-frame annotations (None: the one eval/ recorded)."""

    run_root: str
    out: str | None = None
    videos: tuple[str, ...] = ()
    data_root: str | None = None
    gt_root: str | None = None
    per_kind: int = 2
    preview_frames: int = PREVIEW_FRAMES


@dataclass(frozen=True)
class ReportResult:
    """index: the URI of index.html; files: keys written under `out`; selected: the close-up videos."""

    out: str
    index: str
    files: tuple[str, ...]
    selected: tuple[str, ...]
    missing: tuple[str, ...]
    seconds: float


def _split(uri: str | None, frames: bool) -> MoseSplit | None:
    if not uri:
        return None
    split = MoseSplit(open_store(uri), frames=frames)
    try:
        return split if split.videos() else None
    except MissingArtifactError:  # an absent or empty folder is reported on the page, not fatal
        return None


def _sibling_data(gt_root: str | None) -> str | None:
    if not gt_root:
        return None
    root = gt_root.rstrip("/")
    root = root[: -len("/Annotations")] if root.endswith("/Annotations") else root
    return root[: -len("_gt")] if root.endswith("_gt") else None


def _seed(data_root: str | None) -> str:
    """The synthetic generator's seed from `<data>/../meta.json`, when the data is synthetic."""
    if not data_root or "/" not in data_root.rstrip("/"):
        return "not recorded"
    parent = open_store(data_root.rstrip("/").rsplit("/", 1)[0])
    if parent.exists("meta.json"):
        seed = (parent.read_json("meta.json").get("config") or {}).get("seed")
        if seed is not None:
            return f"{seed} (synthetic data, meta.json)"
    return "not recorded"


def _meta(run: RunSummary, data_root: str | None, gt_root: str | None) -> dict[str, str]:
    rec = run.recommend or {}
    return {
        "run": run.root,
        "split": run.split or (data_root.rstrip("/").rsplit("/", 1)[-1] if data_root else "unknown"),
        "seed": _seed(data_root),
        "models": ", ".join(run.models) or "none",
        "checkpoints": "; ".join(f"{m}: {c}" for m, c in run.checkpoints.items()) or "none",
        "performance database": f"{rec.get('database') or 'none'} ({rec.get('database_uri') or 'no URI'})",
        "recommender": str(rec.get("recommender", "none")),
        "ground truth": gt_root or "none (agreement with the pseudo-label shown instead of J&F)",
        "frames from": data_root or "none (masks over grey)",
        "fallbacks": "; ".join(rec.get("fallbacks", [])) or "none",
        "videos": str(len(run.videos)),
    }


def _stems(run_store: Store, run: RunSummary, data: MoseSplit | None, video: str) -> tuple[str, ...]:
    if data is not None and video in data.videos():
        return tuple(data.video(video).frames)
    for _label, prefix in run.mask_sources():
        stems = [k.rsplit("/", 1)[-1][:-4] for k in run_store.list(f"{prefix}/{video}") if k.endswith(".png")]
        if stems:
            return tuple(sorted(stems, key=lambda s: (len(s), s)))
    return ()


def _columns(stems: tuple[str, ...], series: FrameSeries | None) -> list[str]:
    """First frame, and the frames before, at and after the largest drop (else the middle and the last)."""
    if not stems:
        return []
    if series is None or len(series.stems) < 2:
        picks = [0, len(stems) // 2, len(stems) - 1]
    else:
        i = stems.index(series.stems[largest_drop(series)]) if series.stems[largest_drop(series)] in stems else 0
        picks = [0, i - 1, i, i + 1]
    return [stems[i] for i in dict.fromkeys(p for p in picks if 0 <= p < len(stems))]


class _Builder:
    def __init__(self, cfg: ReportConfig, run_store: Store, run: RunSummary, out: Store) -> None:
        self.cfg, self.run_store, self.run, self.out = cfg, run_store, run, out
        self.gt_root = cfg.gt_root or (run.gt_root if run.has_gt else None)
        self.data_root = cfg.data_root or _sibling_data(self.gt_root)
        self.data = _split(self.data_root, frames=True)
        self.gt = _split(self.gt_root, frames=False)
        self.files: list[str] = []
        if self.data_root and self.data is None:
            run.missing.append(f"{self.data_root}: no frames there — overlays are drawn over grey")
        elif not self.data_root:
            run.missing.append(
                "frames: no data root (--data) and none implied by the ground truth — overlays are drawn over grey"
            )

    def write(self, key: str, data: bytes) -> str:
        self.out.write_bytes(key, data)
        self.files.append(key)
        return key

    def masks(self, prefix: str, video: str, stem: str) -> np.ndarray | None:
        key = f"{prefix}/{video}/{stem}.png"
        try:
            return read_label_png(self.run_store.read_bytes(key), self.run_store.uri(key))
        except MissingArtifactError:
            return None

    def frame(self, video: str, stem: str) -> np.ndarray | None:
        if self.data is None or video not in self.data.videos():
            return None
        return self.data.read_frame(video, stem)

    def truth(self, video: str, stem: str) -> np.ndarray | None:
        if self.gt is None or video not in self.gt.videos():
            return None
        info = self.gt.video(video)
        return self.gt.annotation(video, stem) if stem in info.annotated else None

    def closeup(self, video: str, why: str) -> Closeup:
        rec = (self.run.recommend or {}).get("videos", {}).get(video, {})
        stems = _stems(self.run_store, self.run, self.data, video)
        sources = self.run.mask_sources()
        notes: list[str] = []
        if self.run.has_gt:
            series = eval_series(self.run, video)
        else:
            ids = tuple(sorted({int(i) for i in np.unique(self._first_labels(video, stems)) if i not in (0, 255)}))
            loaded = {label: [self.masks(prefix, video, s) for s in stems] for label, prefix in sources}
            full = {k: [m for m in v if m is not None] for k, v in loaded.items() if all(m is not None for m in v)}
            series = agreement_series(video, stems, ids, full) if ids else None
        cols = _columns(stems, series)
        strip_key = self._strip(video, cols, sources, notes) if cols else None
        if strip_key is None:
            notes.append(f"no masks of {video} in pred/ or fused/: no overlay strip")
        plot_key = None
        if series is not None:
            plot_key = self.write(f"img/{video}-frames.png", frame_plot(series, cols))
        preview = self._preview(video, stems) if self.run.has_fused else None
        return Closeup(
            video,
            why,
            str(rec.get("choice", "–")),
            str(rec.get("reason", "no recommend.json entry")),
            strip_key,
            ", ".join(cols),
            plot_key,
            preview,
            tuple(notes),
        )

    def _first_labels(self, video: str, stems: tuple[str, ...]) -> np.ndarray:
        if self.data is not None and video in self.data.videos():
            return self.data.first_annotation(video)
        first = self.masks("fused", video, stems[0]) if stems else None
        return first if first is not None else np.zeros((1, 1), np.uint8)

    def _strip(self, video: str, cols: list[str], sources: list[tuple[str, str]], notes: list[str]) -> str | None:
        rows: list[tuple[str, list[np.ndarray]]] = []
        frames = {s: self.frame(video, s) for s in cols}
        layers = {label: {s: self.masks(prefix, video, s) for s in cols} for label, prefix in sources}
        layers = {k: v for k, v in layers.items() if any(m is not None for m in v.values())}
        shape = next((m.shape for v in layers.values() for m in v.values() if m is not None), None)
        if shape is None:
            return None
        size = images.thumb_size(*shape)
        small = {s: None if f is None else images.shrink(f, size) for s, f in frames.items()}
        if any(f is not None for f in small.values()):
            rows.append(
                (
                    "frame",
                    [
                        f if (f := small[s]) is not None else images.overlay(None, np.zeros(size, np.uint8))
                        for s in cols
                    ],
                )
            )
        truths = {s: self.truth(video, s) for s in cols}
        if any(t is not None for t in truths.values()):
            rows.append(("ground truth", [self._cell(small[s], truths[s], size) for s in cols]))
        elif self.gt is None:
            notes.append("no ground truth: the strip has no ground-truth row")
        for label, per_stem in layers.items():
            rows.append(
                (
                    DISPLAY_NAMES.get(label, label).split(" (")[0],
                    [self._cell(small[s], per_stem[s], size) for s in cols],
                )
            )
        return self.write(f"img/{video}-overlay.png", images.strip(rows, cols))

    @staticmethod
    def _cell(rgb: np.ndarray | None, labels: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
        lab = np.zeros(size, np.uint8) if labels is None else images.shrink(labels, size, labels=True)
        return images.overlay(rgb, lab)

    def _preview(self, video: str, stems: tuple[str, ...]) -> str | None:
        if not stems:
            return None
        step = max(1, -(-len(stems) // self.cfg.preview_frames))
        frames = []
        for stem in stems[::step]:
            labels = self.masks("fused", video, stem)
            if labels is None:
                return None
            size = images.thumb_size(*labels.shape)
            rgb = self.frame(video, stem)
            frames.append(
                images.overlay(
                    None if rgb is None else images.shrink(rgb, size), images.shrink(labels, size, labels=True)
                )
            )
        return self.write(f"img/{video}-pgmr.gif", images.gif(frames))


def build_report(cfg: ReportConfig) -> ReportResult:
    """Collect the run, select videos, draw plots/overlays/previews, write `index.html` last."""
    t0 = time.perf_counter()
    run_store = open_store(cfg.run_root)
    run = collect_run(run_store)
    out = open_store(cfg.out) if cfg.out else run_store.child("report")
    builder = _Builder(cfg, run_store, run, out)
    rows: list[VideoRow] = video_rows(run)
    selected = select_videos(rows, cfg.per_kind, cfg.videos)
    methods = list(run.methods) if run.has_gt else [m for m in run.models]
    ylabel = "J&F %" if run.has_gt else "agreement with pseudo-label %"
    plot = builder.write("img/per-video.png", per_video_plot(rows, methods, ylabel))
    closeups = [builder.closeup(video, why) for video, why in selected]
    html = render(run, _meta(run, builder.data_root, builder.gt_root), rows, methods, plot, closeups)
    builder.write("index.html", html.encode())
    return ReportResult(
        out.root,
        out.uri("index.html"),
        tuple(builder.files),
        tuple(v for v, _ in selected),
        tuple(run.missing),
        time.perf_counter() - t0,
    )
