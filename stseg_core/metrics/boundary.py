"""Boundary F-measure of the DAVIS toolkit, computed on boundary points instead of dilated full-frame images.

Notation: a mask is an HxW bool array; a *point set* is a sorted int64 array of keys `y * stride + x` with
`stride = key_stride(H, W)` (wide enough that two keys on different rows are always further apart than any
footprint row is long). Working on points keeps the cost proportional to the boundary length, not to the
frame area, which is what makes 1080p frames cheap.

Boundary rule (DAVIS `seg2bmap`): a pixel is a boundary pixel when it differs from its east, south or
south-east neighbour; on the last row only the east neighbour counts, on the last column only the south
one, and the bottom-right pixel never is. That is exactly "compare with the neighbours, replicating the last
row and column", which is how it is computed here.

Matching (DAVIS `f_measure`): a boundary point counts as matched when the other mask's boundary, dilated by
the footprint (`cv2.dilate` of a `skimage.morphology.disk(radius)`), covers it. A footprint is stored per
row offset `dy` as the inclusive column interval `[lo, hi]` it covers, so a query is one binary search per
row of the footprint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

_FAR = np.int64(1) << np.int64(62)  # sentinel past every key


def key_stride(height: int, width: int) -> int:
    """Row stride of point keys for HxW frames: wider than the frame by more than any match radius, so a
    footprint row never reaches into the next or previous image row."""
    return 2 * width + height + 64


def davis_radius(height: int, width: int, fraction: float = 0.008) -> int:
    """The DAVIS match radius in pixels: ceil(fraction × image diagonal) (8 at 480p, 12 at 720p, 18 at 1080p)."""
    return math.ceil(fraction * math.sqrt(height * height + width * width))


@dataclass(frozen=True, eq=False)  # identity hash: footprints are cached singletons
class Footprint:
    """A structuring element as per-row intervals: row offset `dys[i]` covers columns `los[i]…his[i]`.

    Offsets are relative to the anchor the way `cv2.dilate` applies them: a point q is covered when
    q + (dy, dx) is a boundary point for some (dy, dx) in the footprint.
    """

    dys: np.ndarray  # (R,) int64
    los: np.ndarray  # (R,) int64
    his: np.ndarray  # (R,) int64
    has_origin: bool  # (0, 0) is in the footprint: a point covers itself

    def passes(self, stride: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Key offsets (lo, hi) of the footprint rows, split into the rows within 2 of the anchor and the rest."""
        return _passes(self, stride)


@lru_cache(maxsize=256)
def _passes(fp: Footprint, stride: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    lo, hi = fp.dys * stride + fp.los, fp.dys * stride + fp.his
    near = np.abs(fp.dys) <= 2
    return tuple((lo[sel], hi[sel]) for sel in (near, ~near) if sel.any())


@lru_cache(maxsize=256)
def disk_footprint(radius: float) -> Footprint:
    """`skimage.morphology.disk(radius)` as `cv2.dilate` uses it (anchor at the centre cell).

    For an integer radius this is the disk x² + y² ≤ r². A fractional radius (the MOSEv2 toolkit passes one)
    samples the grid `arange(-radius, radius + 1)`, which is not centred on the anchor; that shift is kept so
    the result stays identical to the toolkit's.
    """
    grid = np.arange(-radius, radius + 1)
    n = grid.size
    inside = (grid[None, :] ** 2 + grid[:, None] ** 2) <= radius**2
    anchor = n // 2
    dys, los, his = [], [], []
    for row in range(n):
        cols = np.flatnonzero(inside[row])
        if cols.size:
            dys.append(row - anchor)
            los.append(cols[0] - anchor)
            his.append(cols[-1] - anchor)
    has_origin = any(dy == 0 and lo <= 0 <= hi for dy, lo, hi in zip(dys, los, his, strict=True))
    return Footprint(np.asarray(dys, np.int64), np.asarray(los, np.int64), np.asarray(his, np.int64), has_origin)


def boundary_points(mask: np.ndarray, stride: int, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Sorted keys of the `seg2bmap` boundary pixels of a bool mask (empty array for an empty mask).

    `mask` may be a crop of the frame at `origin` (row, column), as long as the crop holds the object with
    a one-pixel margin of background wherever it does not reach the frame's edge: then its last row and
    column are either the frame's or background, and the border rule gives the frame's answer. Only the
    bounding box of the mask, grown by one pixel up and left, can hold boundary pixels, so the work is
    done on that crop.
    """
    import cv2

    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    if w == 0:
        return np.empty(0, np.int64)
    height, width = mask.shape
    r0, c0 = max(y - 1, 0), max(x - 1, 0)
    r1, c1 = y + h, x + w  # one past the content; the neighbour row/column
    sub = mask[r0 : min(r1 + 1, height), c0 : min(c1 + 1, width)]
    if r1 + 1 > height or c1 + 1 > width:  # touches the last row/column: replicate it
        sub = np.pad(sub, ((0, r1 + 1 - min(r1 + 1, height)), (0, c1 + 1 - min(c1 + 1, width))), mode="edge")
    a = sub[:-1, :-1]
    b = (a != sub[:-1, 1:]) | (a != sub[1:, :-1]) | (a != sub[1:, 1:])
    ys, xs = np.nonzero(b)
    return (ys.astype(np.int64) + (r0 + origin[0])) * stride + (xs.astype(np.int64) + (c0 + origin[1]))


def count_covered(queries: np.ndarray, points: np.ndarray, footprint: Footprint, stride: int) -> int:
    """How many `queries` lie in `points` dilated by `footprint` (all sorted key arrays).

    The footprint rows nearest the anchor are tried first: most queries are covered there, and only the
    rest pay for the outer rows.
    """
    if queries.size == 0 or points.size == 0:
        return 0
    padded = np.append(points, _FAR)
    rest, covered = queries, 0
    if footprint.has_origin:  # a query that is itself a point is covered: skip its search
        same = padded[np.searchsorted(padded, queries)] == queries
        rest, covered = queries[~same], int(np.count_nonzero(same))
    for lo, hi in footprint.passes(stride):
        if not rest.size:
            break
        first = padded[np.searchsorted(padded, (rest[:, None] + lo[None, :]).ravel())].reshape(rest.size, lo.size)
        hit = (first <= rest[:, None] + hi[None, :]).any(axis=1)
        covered += int(np.count_nonzero(hit))
        rest = rest[~hit]
    return covered


def f_measure(pred_points: np.ndarray, gt_points: np.ndarray, footprint: Footprint, stride: int) -> float:
    """Boundary F of one object in one frame, with the toolkit's rules for empty boundaries.

    No predicted and no true boundary: 1. Only one of them empty: 0 (precision or recall is 0).
    """
    n_pred, n_gt = pred_points.size, gt_points.size
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    precision = count_covered(pred_points, gt_points, footprint, stride) / float(n_pred)
    recall = count_covered(gt_points, pred_points, footprint, stride) / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)
