"""How flowprop moves pixels and objects from frame to frame: dense optical flow (DIS or Farneback), the
working-size pixel grids it is computed on, the forward-backward agreement test, and the similarity motion of
an object fitted to its tracked corners. The tracker itself (`flowprop.FlowProp`) decides what to move how."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DenseFlow = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(grey a, grey b) → h×w×2 float32 flow a→b."""


def dense_flow(kind: str) -> DenseFlow:
    """The flow function of `FlowPropConfig.flow`: OpenCV's DIS ("dis") or Farneback ("farneback")."""
    import cv2

    if kind == "dis":
        # FAST, not MEDIUM: same J&F on the synthetic splits (the similarity fit and colour step carry the
        # precision), and DIS is most of the tracker's time.
        dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        # The output array None (OpenCV allocates it) is missing from OpenCV's stubs, here and below.
        return lambda a, b: np.asarray(dis.calc(a, b, None))  # type: ignore[call-overload]
    return lambda a, b: np.asarray(cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0))  # type: ignore[call-overload]


class Grids:
    """Full size H×W, working size h×w (= H×W · scale, short side ≤ `size`), and their pixel grids (remap)."""

    def __init__(self, H: int, W: int, size: int) -> None:
        self.H, self.W = H, W
        self.scale = min(1.0, size / min(H, W))
        self.h, self.w = max(8, round(H * self.scale)), max(8, round(W * self.scale))
        self.ys, self.xs = np.mgrid[0:H, 0:W].astype(np.float32)
        self.sy, self.sx = np.mgrid[0 : self.h, 0 : self.w].astype(np.float32)

    def small_rgb(self, rgb: np.ndarray) -> np.ndarray:
        import cv2

        if rgb.shape[:2] == (self.h, self.w):
            return np.ascontiguousarray(rgb)
        return np.asarray(cv2.resize(rgb, (self.w, self.h), interpolation=cv2.INTER_AREA))

    def small_labels(self, labels: np.ndarray) -> np.ndarray:
        import cv2

        return np.asarray(cv2.resize(labels, (self.w, self.h), interpolation=cv2.INTER_NEAREST))


def flows_agree(fb: np.ndarray, ff: np.ndarray, g: Grids) -> np.ndarray:
    """h×w bool: forward and backward flows agree (Sundaram et al. 2010), at working size."""
    import cv2

    ff_at = cv2.remap(ff, g.sx + fb[..., 0], g.sy + fb[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    err = np.sum((fb + ff_at) ** 2, axis=-1)
    ok: np.ndarray = err < 0.01 * (np.sum(fb**2, -1) + np.sum(ff_at**2, -1)) + 0.5
    return ok


def box_around(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of `mask` grown by `margin` pixels (clipped to the image); None when it is empty."""
    import cv2

    x, y, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
    if bw == 0 or bh == 0:
        return None
    h, w = mask.shape
    return (slice(max(0, y - margin), min(h, y + bh + margin)), slice(max(0, x - margin), min(w, x + bw + margin)))


def fit_motion(prev: np.ndarray, new: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float] | None:
    """A 2×3 similarity (rotation, scale, shift) moving an object from `prev` to `new`, and its inlier share.

    Dense flow is weak inside uniform regions (it underestimates their motion); corners on the object's own
    outline or texture track well with pyramidal Lucas–Kanade. None when too few points agree.
    """
    import cv2

    if mask.sum() < 16:
        return None
    roi = box_around(mask, 32)  # LK in a window around the object: its pyramids cost what the window costs
    if roi is None:
        return None
    origin = np.array([roi[1].start, roi[0].start], np.float32)
    prev, new = np.ascontiguousarray(prev[roi]), np.ascontiguousarray(new[roi])
    pts = cv2.goodFeaturesToTrack(
        prev, maxCorners=64, qualityLevel=0.01, minDistance=3, mask=mask[roi].astype(np.uint8)
    )
    if pts is None or len(pts) < 3:
        return None
    # nextPts None (OpenCV allocates them) is missing from OpenCV's stubs
    nxt, ok, _ = cv2.calcOpticalFlowPyrLK(prev, new, pts, None, winSize=(15, 15), maxLevel=3)  # type: ignore[call-overload]
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(new, prev, nxt, None, winSize=(15, 15), maxLevel=3)  # type: ignore[call-overload]
    good = (ok.ravel() == 1) & (ok_back.ravel() == 1) & (np.linalg.norm(back - pts, axis=-1).ravel() < 1.0)
    pts, nxt = pts + origin, nxt + origin
    n_good = int(good.sum())
    if n_good < 2:
        return None
    src, dst = pts[good].reshape(-1, 2), nxt[good].reshape(-1, 2)
    if n_good < 6:  # too few for a robust similarity: a pure shift, if the points agree on it
        shift = np.median(dst - src, axis=0)
        agree = np.linalg.norm(dst - src - shift, axis=-1) < 1.0
        if agree.sum() < 2:
            return None
        return np.array([[1.0, 0.0, shift[0]], [0.0, 1.0, shift[1]]]), float(agree.sum()) / len(pts)
    A, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if A is None or inliers.sum() < 3:
        return None
    return A, float(inliers.sum()) / len(pts)
