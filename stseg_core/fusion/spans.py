"""Per-span recommendation: cut a video where the models' agreement with the pseudo-label changes, choose per span.

Notation as in `stseg_core.fusion.video` (M models, T frames, K objects). a[m, t] = model m's agreement with
the pseudo-label in frame t (mean IoU over the objects; 1 for an object both leave empty). The *leader* of a
frame is the model with the highest a[m, t] (ties: the model listed first). A span is a maximal run of frames
with one leader, after runs shorter than `min_len` frames are merged into the span before them (a leader that
holds for a frame or two is noise, not a change). Each span is then given to the recommender as a video of its
own: same scene features, the models' agreement over the span only, so a model that agrees unusually well there
is predicted to do well there.

Stitching keeps object ids consistent: where the chosen output changes at a border frame b, the new output's
ids are matched to the previous output's ids on frame b itself (both outputs have it) by greedy IoU (≥
`MATCH_IOU`); matched ids are renamed to their partner, the rest keep their own id where it is free, so an
output that swapped two look-alikes is swapped back instead of exchanging them in the middle of the video.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stseg_core.fusion.consistency import mask_iou
from stseg_core.fusion.features import VideoFeatures
from stseg_core.fusion.perfdb import FUSED
from stseg_core.fusion.recommend import Recommender

MIN_SPAN = 4
MATCH_IOU = 0.3
AGREEMENT_STEP = 2


@dataclass(frozen=True)
class Span:
    """Frames [start, end) kept from candidate `choice`; `rename`: its id → the id written (only changed ids)."""

    start: int
    end: int
    choice: str
    rename: dict[int, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "choice": self.choice,
            "rename": {str(k): v for k, v in self.rename.items()},
        }


def frame_agreement(
    labels: np.ndarray, reference: np.ndarray, object_ids: tuple[int, ...], step: int = AGREEMENT_STEP
) -> np.ndarray:
    """(T,) per-frame mean IoU over objects between a model's (T, H, W) ids and a reference (1 for an object
    both leave empty), on every `step`-th pixel of every `step`-th row (a span cut needs no exact IoU)."""
    if not object_ids:
        return np.ones(labels.shape[0])
    a, b = labels[:, ::step, ::step], reference[:, ::step, ::step]
    return np.array([np.mean([mask_iou(a[t] == i, b[t] == i) for i in object_ids]) for t in range(a.shape[0])])


def split_spans(agreement: np.ndarray, min_len: int = MIN_SPAN) -> list[tuple[int, int]]:
    """(M, T) per-frame agreement → [(start, end)] covering 0…T, cut where the leading model changes."""
    T = agreement.shape[1]
    if T == 0:
        return []
    leader = np.argmax(np.round(agreement, 9), axis=0)
    runs: list[list[int]] = []  # [start, end, leader]
    for t in range(T):
        if runs and runs[-1][2] == leader[t]:
            runs[-1][1] = t + 1
        else:
            runs.append([t, t + 1, int(leader[t])])
    merged: list[list[int]] = []
    for run in runs:
        if merged and (run[1] - run[0] < min_len or merged[-1][2] == run[2]):
            merged[-1][1] = run[1]  # too short to count as a change (or the same leader again): extend
        elif merged and merged[-1][1] - merged[-1][0] < min_len:
            merged[-1][1], merged[-1][2] = run[1], run[2]  # the span before was too short: it joins this one
        else:
            merged.append(list(run))
    return [(s, e) for s, e, _ in merged]


def id_renaming(previous: np.ndarray, new: np.ndarray, object_ids: tuple[int, ...]) -> dict[int, int]:
    """Greedy IoU matching of `new`'s ids to `previous`'s on the same frame → a bijection (changed ids only)."""
    pairs = sorted(
        ((mask_iou(new == a, previous == b), a, b) for a in object_ids for b in object_ids),
        key=lambda p: (-round(p[0], 9), p[1], p[2]),
    )
    mapping: dict[int, int] = {}
    for iou, a, b in pairs:
        if iou < MATCH_IOU:
            break
        if a not in mapping and b not in mapping.values():
            mapping[a] = b
    rest = [a for a in object_ids if a not in mapping]
    for a in rest:  # unmatched ids keep their own id where it is still free …
        if a not in mapping.values():
            mapping[a] = a
    free = [b for b in object_ids if b not in mapping.values()]
    for a in rest:  # … and the others take the ids left over, in order
        if a not in mapping:
            mapping[a] = free.pop(0)
    return {a: b for a, b in mapping.items() if a != b}


class Stitcher:
    """`stitch` a frame at a time, for a caller that streams the candidates' frames (the fuse stage).

    tables: candidate → its (T, K) scores and presence; plan: [(start, end, choice)] covering the video in order.
    Feed every frame t = 0, 1, … to `frame`; the rows of a span in `scores`/`present` are filled when its
    first frame is stitched, and `spans` grows by one span there.
    """

    def __init__(
        self,
        tables: dict[str, tuple[np.ndarray, np.ndarray]],
        plan: list[tuple[int, int, str]],
        object_ids: tuple[int, ...],
    ) -> None:
        first = next(iter(tables.values()))
        self.scores, self.present = np.empty_like(first[0]), np.empty_like(first[1])
        self.spans: list[Span] = []
        self._tables, self._plan, self._ids = tables, list(plan), tuple(object_ids)
        self._index = {oid: k for k, oid in enumerate(self._ids)}

    def frame(self, t: int, frames: dict[str, np.ndarray]) -> np.ndarray:
        """Frame t of the stitched output from frame t of the candidates (name → (H, W) ids; at a span's first
        frame the previous span's choice is needed too, elsewhere only the current one)."""
        if len(self.spans) < len(self._plan) and self._plan[len(self.spans)][0] == t:
            self._start(t, frames)
        span = self.spans[-1]
        return _renamed(frames[span.choice], span.rename)

    def _start(self, t: int, frames: dict[str, np.ndarray]) -> None:
        start, end, choice = self._plan[len(self.spans)]
        rename: dict[int, int] = {}
        if self.spans and self.spans[-1].choice == choice:
            rename = self.spans[-1].rename
        elif self.spans:  # compare on the border frame itself, where both the previous choice and this one have output
            prev = self.spans[-1]
            rename = id_renaming(_renamed(frames[prev.choice], prev.rename), frames[choice], self._ids)
        sc, pr = self._tables[choice]
        order = [self._index[rename.get(oid, oid)] for oid in self._ids]  # column of new id ← column of old id
        self.scores[start:end, order] = sc[start:end]
        self.present[start:end, order] = pr[start:end]
        self.spans.append(Span(start, end, choice, rename))


def stitch(
    candidates: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    plan: list[tuple[int, int, str]],
    object_ids: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Span]]:
    """Concatenate per-span choices. candidates: name → (labels (T,H,W), scores (T,K), present (T,K));
    plan: [(start, end, choice)] covering the video in order. → (labels, scores, present, spans)."""
    stitcher = Stitcher({c: (sc, pr) for c, (_lab, sc, pr) in candidates.items()}, plan, object_ids)
    labels = np.empty_like(next(iter(candidates.values()))[0])
    for t in range(labels.shape[0]):
        labels[t] = stitcher.frame(t, {c: lab[t] for c, (lab, _sc, _pr) in candidates.items()})
    return labels, stitcher.scores, stitcher.present, stitcher.spans


def _renamed(labels: np.ndarray, rename: dict[int, int]) -> np.ndarray:
    if not rename:
        return labels
    lut = np.arange(256, dtype=np.uint8)
    for a, b in rename.items():
        lut[a] = b
    out: np.ndarray = lut[labels]
    return out


def choose_spans(
    spans: list[tuple[int, int]], predict: Callable[[int, int], dict[str, float]], order: list[str]
) -> list[tuple[int, int, str]]:
    """Per span the candidate with the highest predicted J&F (ties: earlier in `order`); adjacent spans with the
    same choice merge."""
    plan: list[tuple[int, int, str]] = []
    for start, end in spans:
        predicted = predict(start, end)
        choice = max(order, key=lambda c: (round(predicted[c], 6), -order.index(c)))
        if plan and plan[-1][2] == choice:
            plan[-1] = (plan[-1][0], end, choice)
        else:
            plan.append((start, end, choice))
    return plan


def span_plan(
    recommender: Recommender, features: VideoFeatures, per_frame: np.ndarray, names: list[str], min_len: int = MIN_SPAN
) -> list[tuple[int, int, str]]:
    """The per-span choice of one video: spans from the models' (M, T) per-frame agreement with the pseudo-label
    (`frame_agreement`, models in `names` order), each span's candidate (a model or the pseudo-label) by the
    recommender's prediction from the span's agreement. Stitch it with `Stitcher` (or `stitch`)."""

    def predict(start: int, end: int) -> dict[str, float]:
        return recommender.predict(features, {m: float(per_frame[i, start:end].mean()) for i, m in enumerate(names)})[0]

    return choose_spans(split_spans(per_frame, min_len), predict, [FUSED, *names])
