"""Synthetic MOSE-like generator: layout, determinism, and the hard cases checked on the written ground truth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from stseg_core.data.mose import MoseSplit
from stseg_core.data.synth import HARD_CASES, SynthConfig, generate_dataset, generate_split, video_name
from stseg_core.errors import BadInputError
from stseg_core.store import open_store

SMALL = dict(height=64, width=112, min_frames=12, max_frames=16, min_objects=1, max_objects=3, videos=2)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_layout_and_meta(tmp_path):
    cfg = SynthConfig(seed=3, **SMALL)
    meta = generate_dataset(tmp_path, cfg)
    assert set(meta["splits"]) == {"train", "valid", "test"} and meta["config"]["seed"] == 3
    train = MoseSplit(tmp_path / "train")
    assert train.validate() == []
    assert train.videos() == sorted(video_name(3, "train", i) for i in range(2))
    for split in ("valid", "test"):
        s, gt = MoseSplit(tmp_path / split), MoseSplit(tmp_path / f"{split}_gt", frames=False)
        assert s.validate() == [] and gt.validate() == []
        for name in s.videos():
            info, gt_info = s.video(name), gt.video(name)
            assert info.annotated == ("00000",)  # valid/test carry the first frame's annotation only
            assert gt_info.frames == info.frames and gt_info.object_ids == info.object_ids
            np.testing.assert_array_equal(gt.first_annotation(name), s.first_annotation(name))
    for name in train.videos():
        info, m = train.video(name), meta["splits"]["train"][name]
        assert info.annotated == info.frames and len(info.frames) == m["frames"]
        assert (info.height, info.width) == (64, 112) and 12 <= m["frames"] <= 16
        assert list(info.object_ids) == m["object_ids"] == list(range(1, len(m["object_ids"]) + 1))
        # meta.json's visible pixel counts are those of the written ground truth.
        for stem, labels in train.iter_annotations(name):
            counts = np.bincount(labels.ravel(), minlength=256)
            assert [m["visible_px"][str(i)][int(stem)] for i in info.object_ids] == [
                int(counts[i]) for i in info.object_ids
            ]


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    cfg = SynthConfig(seed=11, **SMALL)
    generate_split(tmp_path / "a", cfg, "valid")
    generate_split(tmp_path / "b", cfg, "valid", workers=2)  # parallel rendering gives the very same bytes
    generate_split(tmp_path / "c", SynthConfig(seed=12, **SMALL), "valid")
    a, b, c = (_tree(tmp_path / x) for x in "abc")
    assert a == b and len(a) > 10
    frames_a = {k: v for k, v in a.items() if k.endswith(".jpg")}
    frames_c = {k: v for k, v in c.items() if k.endswith(".jpg")}
    assert frames_a.keys().isdisjoint(frames_c.keys())  # video names come from the seed
    assert sorted(frames_a.values()) != sorted(frames_c.values())


def _visible(labels: list[np.ndarray], oid: int) -> np.ndarray:
    return np.array([int((lab == oid).sum()) for lab in labels])


def test_hard_cases_are_really_in_the_ground_truth(tmp_path):
    rates = dict.fromkeys(HARD_CASES, 1.0)
    cfg = SynthConfig(
        seed=5, height=96, width=176, min_frames=36, max_frames=36, min_objects=4, max_objects=4, videos=1, **rates
    )
    meta = generate_split(tmp_path, cfg, "train")
    ((name, m),) = meta.items()
    split = MoseSplit(tmp_path / "train")
    labels = [lab for _, lab in split.iter_annotations(name)]
    frames = [rgb for _, rgb in split.iter_frames(name)]
    ids = split.video(name).object_ids
    assert len(ids) == 4 and len(labels) == 36
    vis = {oid: _visible(labels, oid) for oid in ids}

    # Disappearance and re-appearance: some id is visible at first, gone for ≥ 3 frames, then visible again.
    def gone_and_back(v: np.ndarray) -> bool:
        zero = np.flatnonzero(v == 0)
        return len(zero) >= 3 and v[: zero[0]].any() and v[zero[-1] + 1 :].any()

    assert any(gone_and_back(v) for v in vis.values())
    # Occlusion: during the planned interval the hidden object shrinks to < 60 % of its area before, and its
    # pixels touch the occluder's.
    (occ,) = m["hard_cases"]["occlusion"]["planned"]
    back, front, (t0, t1) = occ["object"], occ["by"], occ["frames"]
    before = vis[back][max(0, t0 - 6)]
    hit = [
        t
        for t in range(t0, t1 + 1)
        if vis[back][t] < 0.6 * before
        and (
            cv2.dilate((labels[t] == back).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            & (labels[t] == front)
        ).any()
    ]
    assert hit, (back, front, vis[back][t0 - 6 : t1 + 1])
    # Similar distractors: ≥ 2 ids with the same look (mean colour within 25 levels, similar area) in frame 0.
    look = {oid: (frames[0][labels[0] == oid].mean(axis=0), vis[oid][0]) for oid in ids}
    similar = [
        (a, b)
        for a in ids
        for b in ids
        if a < b and np.abs(look[a][0] - look[b][0]).max() < 25 and 0.6 < look[a][1] / look[b][1] < 1.6
    ]
    crowd = m["hard_cases"]["distractors"][0]
    assert len(crowd) >= 2 and all((a, b) in similar for a in crowd for b in crowd if a < b)
    # Small object: visible somewhere, never more than 1 % of the frame.
    assert any(0 < v.max() < 0.01 * 96 * 176 for v in vis.values())
    assert set(m["present"]) == set(HARD_CASES)


def test_switched_off_cases_do_not_occur(tmp_path):
    off = dict.fromkeys(HARD_CASES, 0.0)
    cfg = SynthConfig(
        seed=2, height=64, width=112, min_frames=20, max_frames=20, min_objects=2, max_objects=2, videos=2, **off
    )
    for m in generate_split(tmp_path, cfg, "train").values():
        hc = m["hard_cases"]
        assert hc["occlusion"]["planned"] == [] and hc["distractors"] == [] and hc["camera_motion"] is None
        assert hc["small_objects"] == [] and not hc["textured_background"] and hc["deformation"]["objects"] == []
        assert all(min(v) > 0 for v in m["visible_px"].values())  # nobody disappears


def test_bad_config():
    with pytest.raises(BadInputError, match=r"synth frames 10-5: need 2 ≤ min ≤ max"):
        SynthConfig(min_frames=10, max_frames=5)
    with pytest.raises(BadInputError, match=r"synth rate occlusion=1\.5: must be in \[0, 1\]"):
        SynthConfig(occlusion=1.5)
    with pytest.raises(BadInputError, match="unknown split 'dev'; known: train, valid, test"):
        generate_split(open_store("/nonexistent-unused"), SynthConfig(**SMALL), "dev")
