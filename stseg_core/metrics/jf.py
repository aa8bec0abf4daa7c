"""Per-video J&F: a streaming accumulator fed one decoded frame pair at a time, and a picklable per-video scorer.

Definitions (semi-supervised DAVIS 2017 toolkit, which MOSEv1 uses unchanged), per object k and frame:
- J = |P∩G| / |P∪G|, 1 when both masks are empty (P = prediction == k, G = ground truth == k).
- F = boundary F-measure (`boundary.f_measure`) with the disk radius ceil(0.008 × image diagonal).
- Scored frames are the ground-truth frames 1…T−2 (first and last dropped); the object set is the ids of
  the first ground-truth frame; ground-truth pixels of other ids (and void, 255) count as background; an
  object the prediction lacks is an empty mask; a predicted id outside the object set is bad input.

`metric="mosev2"` follows the MOSEv2 toolkit (henghuiding/MOSE-api, `metricsv2.py` / `score.py`):
- J = (|P∩G| + 1) / (|P∪G| + 1), 1 when both are empty (the toolkit's smoothed IoU).
- Ḟ ("F_new") uses an adaptive radius: with D = 0.008 × diagonal and a = |G|, b = ceil(0.1·√a) (when G is
  empty, b = ceil(0.1 × diagonal)); if min(D, b) < D, Ḟ uses radius b and F uses ceil(D); otherwise both use
  the fractional radius D itself (a `skimage` disk of a non-integer radius, reproduced exactly).
- Disappearance / reappearance: over the scored frames, a disappearance segment runs from a frame where G
  becomes empty (not the first scored frame) to the next frame where it is non-empty again (or the end); a
  reappearance segment runs from that frame to the next disappearance (or the end). An object's J&Ḟ_d is the
  mean over its disappearance segments of the segment means of J and Ḟ; likewise J&Ḟ_r. Objects without
  such segments do not enter the global J&Ḟ_d / J&Ḟ_r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.metrics.boundary import boundary_points, davis_radius, disk_footprint, f_measure, key_stride

if TYPE_CHECKING:
    from stseg_core.store import Store

METRICS = ("davis", "mosev2")


@dataclass(frozen=True)
class Stats:
    """DAVIS statistics of one per-frame series: mean, recall (fraction of frames > 0.5), decay."""

    mean: float
    recall: float
    decay: float


def davis_statistics(values: np.ndarray) -> Stats:
    """Mean, recall and decay of a per-frame series, as the DAVIS toolkit's `db_statistics`.

    Decay = mean of the first quarter bin − mean of the last one, with bin edges
    round(linspace(1, n, 5) + 1e-10) − 1 and each bin including its right edge (adjacent bins share a frame).
    The toolkit stores the edges as uint8, which wraps for n > 256 frames; the edges are kept exact here.
    """
    values = np.asarray(values, dtype=np.float64)
    edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.int64)
    first = values[edges[0] : edges[1] + 1]
    last = values[edges[3] : edges[4] + 1]
    return Stats(float(np.mean(values)), float(np.mean(values > 0.5)), float(np.mean(first) - np.mean(last)))


def segment_scores(j: np.ndarray, f: np.ndarray, gt_empty: np.ndarray) -> tuple[tuple[float, float] | None, ...]:
    """(J, Ḟ) means over disappearance segments and over reappearance segments (None where there are none)."""
    gt_empty = np.asarray(gt_empty, dtype=bool)
    n = gt_empty.size
    gone = np.flatnonzero(~gt_empty[:-1] & gt_empty[1:]) + 1
    if n and gt_empty[0]:
        gone = np.insert(gone, 0, 0)
    back = np.flatnonzero(gt_empty[:-1] & ~gt_empty[1:]) + 1
    disappear = [
        (j[s:e].mean(), f[s:e].mean()) for i, s in enumerate(gone) if s > 0 for e in [back[i] if i < back.size else n]
    ]
    reappear = [
        (j[s:e].mean(), f[s:e].mean()) for i, s in enumerate(back) for e in [gone[i + 1] if i + 1 < gone.size else n]
    ]

    def mean_pair(pairs: list[tuple[float, float]]) -> tuple[float, float] | None:
        if not pairs:
            return None
        return float(np.mean([p[0] for p in pairs])), float(np.mean([p[1] for p in pairs]))

    return mean_pair(disappear), mean_pair(reappear)


@dataclass(frozen=True)
class ObjectScores:
    """One object of one video: per scored frame series and its summary.

    `series`: name → float64 array of length (scored frames): davis "J", "F"; mosev2 "J", "Fdot", "F",
    "gt_empty" (1.0 where the ground truth of the object is empty). `summary`: name → number or None,
    values in [0, 1] (see `VideoAccumulator.result`).
    """

    video: str
    object_id: int
    series: dict[str, np.ndarray]
    summary: dict[str, float | None]


@dataclass(frozen=True)
class VideoResult:
    """Scores of every object of one video over its scored frames."""

    video: str
    metric: str
    frames: tuple[str, ...]
    size: tuple[int, int]
    objects: tuple[ObjectScores, ...]

    def to_json(self) -> dict[str, Any]:
        """Everything, losslessly (floats round-trip through JSON exactly): sharded fuse indexes hand their
        results to the merge step this way."""
        return {
            "video": self.video,
            "metric": self.metric,
            "frames": list(self.frames),
            "size": list(self.size),
            "objects": [
                {"id": o.object_id, "series": {n: s.tolist() for n, s in o.series.items()}, "summary": o.summary}
                for o in self.objects
            ],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VideoResult:
        objects = tuple(
            ObjectScores(
                d["video"],
                int(o["id"]),
                {n: np.asarray(v, dtype=np.float64) for n, v in o["series"].items()},
                dict(o["summary"]),
            )
            for o in d["objects"]
        )
        return cls(d["video"], d["metric"], tuple(d["frames"]), (int(d["size"][0]), int(d["size"][1])), objects)


@dataclass
class VideoAccumulator:
    """Feeds on (ground truth, prediction) label maps of the scored frames, one frame at a time.

    Memory is a few floats per object and frame; nothing of the images is kept.
    """

    video: str
    object_ids: tuple[int, ...]
    metric: str = "davis"
    _series: dict[int, dict[str, list[float]]] = field(default_factory=dict, init=False, repr=False)
    _frames: list[str] = field(default_factory=list, init=False, repr=False)
    _size: tuple[int, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise BadInputError(f"unknown metric {self.metric!r} (known: {', '.join(METRICS)})")
        names = ("J", "F") if self.metric == "davis" else ("J", "Fdot", "F", "gt_empty")
        self._series = {k: {n: [] for n in names} for k in self.object_ids}

    def update(self, gt: np.ndarray, pred: np.ndarray, frame: str = "") -> None:
        """Score one frame: `gt`, `pred` are HxW uint8 id maps of the same size."""
        where = f"video {self.video} frame {frame}"
        if gt.shape != pred.shape:
            raise BadInputError(
                f"{where}: prediction is {pred.shape[1]}x{pred.shape[0]}, "
                f"ground truth is {gt.shape[1]}x{gt.shape[0]} (WxH)"
            )
        height, width = gt.shape
        stride = key_stride(height, width)
        diag = math.sqrt(height * height + width * width)  # as np.linalg.norm(shape)
        davis_fp = disk_footprint(davis_radius(height, width))
        # Work inside the bounding box of every labelled pixel of both maps, with a one-pixel margin: all
        # areas and boundaries lie there (see `boundary_points`).
        origin, gt, pred = _crop_to_labels(gt, pred)
        predicted = 0
        for k in self.object_ids:
            g = gt == k
            p = pred == k
            n_g = int(np.count_nonzero(g))
            n_p = int(np.count_nonzero(p))
            predicted += n_p
            inter = int(np.count_nonzero(g & p)) if n_g and n_p else 0
            union = n_g + n_p - inter
            out = self._series[k]
            if inter == n_g == n_p:  # identical masks (or both empty): every score is 1
                out["J"].append(1.0)
                out["F"].append(1.0)
                if self.metric == "mosev2":
                    out["Fdot"].append(1.0)
                    out["gt_empty"].append(float(n_g == 0))
                continue
            pb = boundary_points(p, stride, origin) if n_p else np.empty(0, np.int64)
            gb = boundary_points(g, stride, origin) if n_g else np.empty(0, np.int64)
            if self.metric == "davis":
                out["J"].append(inter / union)
                out["F"].append(f_measure(pb, gb, davis_fp, stride))
                continue
            out["J"].append(min((inter + 1) / (union + 1), 1.0))
            out["gt_empty"].append(float(n_g == 0))
            full = 0.008 * diag
            adaptive = min(full, math.ceil(0.1 * (math.sqrt(n_g) if n_g else diag)))
            if adaptive < full:
                out["F"].append(f_measure(pb, gb, davis_fp, stride))
                out["Fdot"].append(f_measure(pb, gb, disk_footprint(float(adaptive)), stride))
            else:
                out["F"].append(f_measure(pb, gb, disk_footprint(full), stride))
                out["Fdot"].append(out["F"][-1])
        if predicted != int(np.count_nonzero(pred)):
            extra = sorted(set(np.unique(pred).tolist()) - {0, *self.object_ids})
            for k in self.object_ids:  # keep the series aligned: this frame is rejected as a whole
                for values in self._series[k].values():
                    del values[len(self._frames) :]
            raise BadInputError(
                f"{where}: predicted ids {extra} are not objects of the first ground-truth frame "
                f"{list(self.object_ids)}"
            )
        self._frames.append(frame)
        self._size = (height, width)

    def result(self) -> VideoResult:
        """Per-object series and summaries. davis: J/F-Mean, -Recall, -Decay; mosev2: J-Mean, Fdot-Mean,
        F-Mean, J/Fdot-Disappear, J/Fdot-Reappear (None when the object has no such segment)."""
        if not self._frames or self._size is None:
            raise BadInputError(f"video {self.video}: no frame scored (a video needs at least 3 annotated frames)")
        objects = []
        for k in self.object_ids:
            series = {n: np.asarray(v, dtype=np.float64) for n, v in self._series[k].items()}
            summary: dict[str, float | None] = {}
            if self.metric == "davis":
                for n in ("J", "F"):
                    st = davis_statistics(series[n])
                    summary.update({f"{n}-Mean": st.mean, f"{n}-Recall": st.recall, f"{n}-Decay": st.decay})
            else:
                for n in ("J", "Fdot", "F"):
                    summary[f"{n}-Mean"] = float(series[n].mean())
                gone, back = segment_scores(series["J"], series["Fdot"], series["gt_empty"] > 0)
                for name, pair in (("Disappear", gone), ("Reappear", back)):
                    summary[f"J-{name}"] = None if pair is None else pair[0]
                    summary[f"Fdot-{name}"] = None if pair is None else pair[1]
            objects.append(ObjectScores(self.video, k, series, summary))
        return VideoResult(self.video, self.metric, tuple(self._frames), self._size, tuple(objects))


def _crop_to_labels(gt: np.ndarray, pred: np.ndarray) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """(row, column) origin and views of both maps cropped to their labelled pixels plus a 1-pixel margin."""
    import cv2

    boxes = [b for b in (cv2.boundingRect(gt), cv2.boundingRect(pred)) if b[2]]
    if not boxes:
        return (0, 0), gt[:0, :0], pred[:0, :0]
    height, width = gt.shape
    y0 = max(min(b[1] for b in boxes) - 1, 0)
    x0 = max(min(b[0] for b in boxes) - 1, 0)
    y1 = min(max(b[1] + b[3] for b in boxes) + 1, height)
    x1 = min(max(b[0] + b[2] for b in boxes) + 1, width)
    return (y0, x0), gt[y0:y1, x0:x1], pred[y0:y1, x0:x1]


@dataclass(frozen=True)
class VideoTask:
    """What one worker needs to score one video: store roots as URIs (stores are opened in the worker).

    `gt_root` holds `<video>/<stem>.png` ground truth; `pred_root` holds `<video>/<stem>.png` predictions;
    `stems` are the video's ground-truth frames in order; `pred_stems` the prediction frames that exist.
    """

    video: str
    gt_root: str
    pred_root: str
    stems: tuple[str, ...]
    pred_stems: frozenset[str]
    metric: str = "davis"
    missing_as_empty: bool = False


def score_video(task: VideoTask) -> VideoResult:
    """Decode each needed PNG once and stream the scored frames through a `VideoAccumulator`.

    Picklable (a plain function of a frozen dataclass), so a process pool can map it over videos.
    """
    from stseg_core.metrics.decode import read_label_png_fast as read_label_png

    gt_store, pred_store = _store(task.gt_root), _store(task.pred_root)
    if len(task.stems) < 3:
        raise BadInputError(
            f"video {task.video}: {len(task.stems)} annotated frame(s); at least 3 are needed "
            "(the first and the last are not scored)"
        )
    first_key = f"{task.video}/{task.stems[0]}.png"
    first = read_label_png(gt_store.read_bytes(first_key), gt_store.uri(first_key))
    ids = tuple(int(i) for i in np.unique(first) if i not in (0, 255))
    acc = VideoAccumulator(task.video, ids, task.metric)
    for stem in task.stems[1:-1]:
        key = f"{task.video}/{stem}.png"
        gt = read_label_png(gt_store.read_bytes(key), gt_store.uri(key))
        if stem in task.pred_stems:
            pred = read_label_png(pred_store.read_bytes(key), pred_store.uri(key))
        elif task.missing_as_empty:
            pred = np.zeros_like(gt)
        else:
            raise MissingArtifactError(
                f"{pred_store.uri(key)}: prediction missing (video {task.video} frame {stem}); "
                "--missing-as-empty scores it as an empty mask"
            )
        acc.update(gt, pred, stem)
    return acc.result()


_STORES: dict[str, Store] = {}


def _store(uri: str) -> Store:
    """One store per root and process (an S3 store holds a client worth reusing across videos)."""
    from stseg_core.store import open_store

    if uri not in _STORES:
        _STORES[uri] = open_store(uri)
    return _STORES[uri]
