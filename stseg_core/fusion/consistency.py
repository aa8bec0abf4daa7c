"""Consistency check: where the models agree and where they conflict, and how much each agrees with a reference.

Label maps here are label-index stacks (see `stseg_core.fusion.video`): (M, H, W) uint8 with 0 for
background and k+1 for the k-th object. Only conflict pixels need a vote; agreement pixels keep their label.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FrameConsistency:
    """Agreement of M models on one frame.

    agree: (H, W) bool, every model gives the pixel the same label (background included).
    object_agree_px: (K,) int, pixels every model assigns to object k.
    object_conflict_px: (K,) int, pixels some but not all models assign to object k.
    """

    agree: np.ndarray
    object_agree_px: np.ndarray
    object_conflict_px: np.ndarray

    @property
    def conflict(self) -> np.ndarray:
        return ~self.agree

    def object_agreement(self) -> np.ndarray:
        """(K,) float: agreed share of each object's claimed region (1.0 when no model claims it)."""
        claimed = self.object_agree_px + self.object_conflict_px
        return np.where(claimed > 0, self.object_agree_px / np.maximum(claimed, 1), 1.0)


def agreement_map(stack: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """M label maps (an (M, H, W) array or a list of (H, W)) → (H, W) bool: all models give the same label."""
    agree = np.ones(stack[0].shape, bool)
    for m in range(1, len(stack)):
        agree &= stack[m] == stack[0]
    return agree


def frame_consistency(stack: np.ndarray, num_objects: int) -> FrameConsistency:
    """Agreement and conflict regions of one frame, overall and per object."""
    agree = agreement_map(stack)
    agree_px = np.zeros(num_objects, np.int64)
    conflict_px = np.zeros(num_objects, np.int64)
    for k in range(num_objects):
        claims = (stack == k + 1).sum(axis=0)
        agree_px[k] = int((claims == stack.shape[0]).sum())
        conflict_px[k] = int(((claims > 0) & (claims < stack.shape[0])).sum())
    return FrameConsistency(agree, agree_px, conflict_px)


def object_regions(stack: np.ndarray, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(agree, conflict) masks of one object (label index ≥ 1): all models claim it / some but not all do."""
    claims = (stack == index).sum(axis=0)
    return claims == stack.shape[0], (claims > 0) & (claims < stack.shape[0])


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty (nothing to find, nothing found)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


class AgreementSum:
    """`model_agreement` accumulated a frame at a time (same sums, same order, so the same float)."""

    def __init__(self, object_ids: tuple[int, ...]) -> None:
        self.object_ids = tuple(object_ids)
        self.total = 0.0
        self.frames = 0

    def add(self, labels: np.ndarray, reference: np.ndarray) -> None:
        for oid in self.object_ids:
            self.total += mask_iou(labels == oid, reference == oid)
        self.frames += 1

    def value(self) -> float:
        return 1.0 if not self.object_ids else self.total / (self.frames * len(self.object_ids))


def model_agreement(labels: np.ndarray, reference: np.ndarray, object_ids: tuple[int, ...]) -> float:
    """Mean IoU over objects and frames between a model's (T, H, W) id maps and a reference (e.g. the pseudo-label).

    A model that agrees with the ensemble's pseudo-label is more likely right: the recommender uses this.
    Returns 1.0 for a video without objects.
    """
    acc = AgreementSum(object_ids)
    for t in range(labels.shape[0]):
        acc.add(labels[t], reference[t])
    return acc.value()


def frame_disagreement(stack: np.ndarray) -> float:
    """One frame's conflict pixels / pixels any model calls foreground ((M, H, W) label indices); 0 if none."""
    fg = (stack > 0).any(axis=0)
    n = np.count_nonzero(fg)
    return 0.0 if n == 0 else np.count_nonzero(~agreement_map(stack) & fg) / n


def disagreement(stacks: Iterable[np.ndarray]) -> float:
    """Mean over frames of `frame_disagreement`; 0 when all agree. `stacks` yields one (M, H, W) stack per frame."""
    values = [frame_disagreement(stack) for stack in stacks]
    return float(np.mean(values)) if values else 0.0
