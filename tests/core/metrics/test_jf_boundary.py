"""Boundary pixels (DAVIS seg2bmap rule), the match disk, and per-frame J/F against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from stseg_core.metrics.boundary import (
    boundary_points,
    count_covered,
    davis_radius,
    disk_footprint,
    f_measure,
    key_stride,
)
from stseg_core.metrics.jf import VideoAccumulator


def _points(mask: np.ndarray) -> set[tuple[int, int]]:
    stride = key_stride(*mask.shape)
    keys = boundary_points(mask.astype(bool), stride)
    return {(int(k // stride), int(k % stride)) for k in keys}


def test_boundary_of_an_inner_square_is_offset_towards_the_origin():
    m = np.zeros((4, 5), bool)
    m[1:3, 1:3] = True
    # outside above/left of the square, inside on its right column and bottom row
    assert _points(m) == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)}


def test_last_row_and_column_only_compare_along_the_border():
    m = np.zeros((3, 3), bool)
    m[1:, 1:] = True  # touches the bottom and right borders
    # zero padding would add (1, 2), (2, 1), (2, 2); the toolkit's rule does not
    assert _points(m) == {(0, 0), (0, 1), (0, 2), (1, 0), (2, 0)}


def test_one_pixel_objects():
    m = np.zeros((3, 3), bool)
    m[1, 1] = True
    assert _points(m) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    m = np.zeros((3, 3), bool)
    m[2, 2] = True  # the bottom-right corner pixel is never a boundary pixel itself
    assert _points(m) == {(1, 1), (1, 2), (2, 1)}


def test_full_frame_and_empty_masks_have_no_boundary():
    assert _points(np.ones((4, 6), bool)) == set()
    assert _points(np.zeros((4, 6), bool)) == set()


@pytest.mark.parametrize(
    ("h", "w", "r"), [(480, 854, 8), (720, 1280, 12), (1080, 1920, 18), (100, 100, 2), (40, 300, 3)]
)
def test_davis_radius(h, w, r):
    assert davis_radius(h, w) == r


@pytest.mark.parametrize("r", [2, 8, 12, 18])
def test_disk_is_x2_plus_y2_within_r2_not_an_opencv_ellipse(r):
    import cv2

    fp = disk_footprint(r)
    disk = np.zeros((2 * r + 1, 2 * r + 1), bool)
    for dy, lo, hi in zip(fp.dys, fp.los, fp.his, strict=True):
        disk[dy + r, lo + r : hi + r + 1] = True
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    assert np.array_equal(disk, xx**2 + yy**2 <= r * r)
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).astype(bool)
    assert not np.array_equal(disk, ellipse)
    # a point just inside the disk and one just outside, along a diagonal
    stride = key_stride(100, 100)
    centre = np.array([50 * stride + 50], np.int64)
    inside = [(dy, dx) for dy in range(r + 1) for dx in range(r + 1) if dy * dy + dx * dx <= r * r]
    outside = [(dy, dx) for dy in range(r + 2) for dx in range(r + 2) if dy * dy + dx * dx == r * r + 1]
    for dy, dx in inside[-3:]:
        assert count_covered(np.array([(50 + dy) * stride + 50 + dx], np.int64), centre, fp, stride) == 1
    for dy, dx in outside:
        assert count_covered(np.array([(50 + dy) * stride + 50 + dx], np.int64), centre, fp, stride) == 0


def _frame(acc_metric: str, gt: np.ndarray, pred: np.ndarray, ids=(1,)):
    acc = VideoAccumulator("v", tuple(ids), acc_metric)
    acc.update(gt, pred, "00001")
    return {o.object_id: {n: float(s[0]) for n, s in o.series.items()} for o in acc.result().objects}


def test_shifted_square_j_and_f_by_hand():
    # 100×100 frame → radius ceil(0.008·141.4) = 2; a 10×10 square and the same square 3 px to the right.
    gt = np.zeros((100, 100), np.uint8)
    gt[20:30, 20:30] = 1
    pred = np.roll(gt, 3, axis=1)
    s = _frame("davis", gt, pred)[1]
    assert s["J"] == pytest.approx(70 / 130, abs=1e-15)
    # 40 boundary pixels each; 24 of each side lie within 2 px of the other side (counted by hand)
    assert s["F"] == pytest.approx(0.6, abs=1e-15)


def test_empty_cases():
    z = np.zeros((50, 70), np.uint8)
    obj = z.copy()
    obj[10:20, 10:30] = 1
    assert _frame("davis", obj, z)[1] == {"J": 0.0, "F": 0.0}  # empty prediction
    assert _frame("davis", z, obj)[1] == {"J": 0.0, "F": 0.0}  # empty ground truth
    assert _frame("davis", z, z)[1] == {"J": 1.0, "F": 1.0}  # both empty
    assert _frame("davis", obj, obj)[1] == {"J": 1.0, "F": 1.0}


@pytest.mark.parametrize(("h", "w"), [(720, 1280), (1080, 1920)])
def test_one_pixel_objects_at_the_radius(h, w):
    r = davis_radius(h, w)
    gt = np.zeros((h, w), np.uint8)
    gt[300, 400] = 1
    got = []
    for shift in (r, r + 1, r + 2):
        pred = np.zeros_like(gt)
        pred[300, 400 + shift] = 1
        got.append(_frame("davis", gt, pred)[1])
    # the 2×2 boundary blocks: all within r, one column of each within r, none
    assert got == [{"J": 0.0, "F": 1.0}, {"J": 0.0, "F": 0.5}, {"J": 0.0, "F": 0.0}]


def test_border_touching_object_on_a_non_square_frame():
    # 30×200 frame (radius ceil(0.008·202.2) = 2); the object fills the right end, touching three borders.
    gt = np.zeros((30, 200), np.uint8)
    gt[:, 190:] = 1
    pred = np.zeros_like(gt)
    pred[:, 189:] = 1
    s = _frame("davis", gt, pred)[1]
    assert s["J"] == pytest.approx(300 / 330, abs=1e-15)
    # only the left edge is a boundary: GT column 189 (30 px), prediction column 188 (30 px), 1 px apart
    assert s["F"] == 1.0


def test_f_measure_rules_for_empty_boundaries():
    fp = disk_footprint(2)
    empty = np.empty(0, np.int64)
    one = np.array([5], np.int64)
    assert f_measure(empty, empty, fp, 100) == 1.0
    assert f_measure(one, empty, fp, 100) == 0.0
    assert f_measure(empty, one, fp, 100) == 0.0


def test_fractional_disk_matches_skimage_and_cv2_dilate():
    """The MOSEv2 toolkit dilates with skimage.disk(0.008·diag), a non-integer radius: reproduce it exactly."""
    import cv2
    from skimage.morphology import disk

    rng = np.random.default_rng(3)
    for radius in (2.7, 7.837, 11.75):
        src = rng.random((60, 80)) < 0.02
        want = cv2.dilate(src.astype(np.uint8), disk(radius).astype(np.uint8)).astype(bool)
        stride = key_stride(60, 80)
        ys, xs = np.nonzero(src)
        pts = ys.astype(np.int64) * stride + xs
        fp = disk_footprint(radius)
        for y in range(60):
            q = np.arange(80, dtype=np.int64) + y * stride
            got = [count_covered(q[i : i + 1], pts, fp, stride) == 1 for i in range(80)]
            assert got == want[y].tolist()
