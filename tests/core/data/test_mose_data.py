"""MOSE layout reader/writer: round trips, lazy streaming, and every bad-input case with its exact message."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from stseg_core.data.mose import MoseSplit, MoseWriter, VideoInfo, write_video
from stseg_core.errors import BadInputError
from stseg_core.store import open_store

H, W = 24, 40


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (3, 5, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_LINEAR)
    return [np.roll(base, i, axis=1) for i in range(n)]


def _labels(ids: list[int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([0, *ids], np.uint8), size=(H, W))


def _split(tmp_path, videos: dict[str, int], every_frame: bool = True) -> MoseSplit:
    for name, n in videos.items():
        anns = {i: _labels([1, 2, 7], i) for i in (range(n) if every_frame else [0])}
        write_video(tmp_path, name, _frames(n), anns)
    return MoseSplit(tmp_path)


def test_round_trip_ids_bit_exact_and_video_info(tmp_path):
    ids = np.arange(256, dtype=np.uint8).repeat(4)[: H * W].reshape(H, W)  # every id 0…255, 255 included
    frames = _frames(3)
    write_video(tmp_path, "vid", frames, {0: ids, 2: ids[::-1].copy()})
    split = MoseSplit(open_store(tmp_path.as_uri()))
    assert split.videos() == ["vid"]
    info = split.video("vid")
    assert info == VideoInfo("vid", ("00000", "00001", "00002"), H, W, tuple(range(1, 240)), ("00000", "00002"))
    np.testing.assert_array_equal(split.first_annotation("vid"), ids)
    np.testing.assert_array_equal(split.annotation("vid", "00002"), ids[::-1])
    # The PNG on disk really is a palette image with the DAVIS colours.
    img = Image.open(tmp_path / "Annotations/vid/00000.png")
    assert img.mode == "P" and img.getpalette()[3:6] == [128, 0, 0]
    for (stem, rgb), ref in zip(split.iter_frames("vid"), frames, strict=True):
        assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
        assert np.abs(rgb.astype(int) - ref).mean() < 5.0, stem  # JPEG q95, 4:2:0 chroma on a tiny frame


def test_frames_sorted_numerically_and_streamed_lazily(tmp_path):
    split = _split(tmp_path, {"v": 12})
    assert split.video("v").frames == tuple(f"{i:05d}" for i in range(12))
    it = split.iter_frames("v")
    stem, _ = next(it)
    assert stem == "00000"
    # Corrupting a later frame after the first was read shows frames are fetched one at a time.
    (tmp_path / "JPEGImages/v/00005.jpg").write_bytes(b"\xff\xd8garbage")
    assert [next(it)[0] for _ in range(4)] == ["00001", "00002", "00003", "00004"]
    with pytest.raises(BadInputError, match=r"00005\.jpg: unreadable or corrupt image"):
        next(it)


def test_unpadded_names_sort_numerically(tmp_path):
    for i in (0, 1, 2, 10, 9, 8, 7, 6, 5, 4, 3):
        MoseWriter(tmp_path).write_frame("v", i, _frames(1)[0])
    MoseWriter(tmp_path).write_annotation("v", 0, _labels([3]))
    for p in (tmp_path / "JPEGImages/v").iterdir():  # rename 00010.jpg → 10.jpg etc.
        p.rename(p.with_name(f"{int(p.stem)}.jpg"))
    (tmp_path / "Annotations/v/00000.png").rename(tmp_path / "Annotations/v/0.png")
    info = MoseSplit(tmp_path).video("v")
    assert info.frames == tuple(str(i) for i in range(11)) and info.object_ids == (3,)


def _uri(split: MoseSplit, key: str) -> str:
    return split.store.uri(key)


def test_missing_first_frame_annotation(tmp_path):
    split = _split(tmp_path, {"v": 3})
    (tmp_path / "Annotations/v/00000.png").unlink()
    with pytest.raises(BadInputError) as err:
        split.video("v")
    assert str(err.value) == f"{_uri(split, 'Annotations/v/00000.png')}: missing first-frame annotation of video 'v'"


def test_annotation_not_palette_or_grey(tmp_path):
    split = _split(tmp_path, {"v": 2})
    buf = io.BytesIO()
    Image.fromarray(np.zeros((H, W, 3), np.uint8), "RGB").save(buf, "PNG")
    (tmp_path / "Annotations/v/00000.png").write_bytes(buf.getvalue())
    with pytest.raises(BadInputError) as err:
        split.video("v")
    assert str(err.value) == (
        f"{_uri(split, 'Annotations/v/00000.png')}: annotation must be a palette or grey "
        "single-channel PNG, got mode RGB"
    )


def test_grey_annotation_is_accepted(tmp_path):
    split = _split(tmp_path, {"v": 2})
    grey = _labels([2, 7])
    cv2.imwrite(str(tmp_path / "Annotations/v/00001.png"), grey)
    np.testing.assert_array_equal(split.annotation("v", "00001"), grey)


def test_a_later_annotation_with_an_id_absent_from_the_first_frame_is_refused_by_reader_and_validate(tmp_path):
    split = _split(tmp_path, {"v": 3})
    cv2.imwrite(str(tmp_path / "Annotations/v/00002.png"), _labels([2, 9]))
    line = (
        f"{_uri(split, 'Annotations/v/00002.png')}: object ids [9] are absent from the first frame 00000 of "
        "video 'v' (ids there: [1, 2, 7])"
    )
    with pytest.raises(BadInputError) as err:
        split.annotation("v", "00002")
    assert str(err.value) == line
    assert MoseSplit(tmp_path).validate() == [line]


def test_frame_annotation_size_mismatch(tmp_path):
    split = _split(tmp_path, {"v": 2})
    cv2.imwrite(str(tmp_path / "Annotations/v/00001.png"), np.zeros((H + 1, W), np.uint8))
    with pytest.raises(BadInputError) as err:
        split.annotation("v", "00001")
    assert str(err.value) == (
        f"{_uri(split, 'Annotations/v/00001.png')}: annotation is {H + 1}x{W} but frame "
        f"{_uri(split, 'JPEGImages/v/00001.jpg')} is {H}x{W}"
    )


def test_gap_in_frame_numbers(tmp_path):
    split = _split(tmp_path, {"v": 4})
    (tmp_path / "JPEGImages/v/00002.jpg").unlink()
    with pytest.raises(BadInputError) as err:
        split.video("v")
    assert str(err.value) == f"{_uri(split, 'JPEGImages/v')}: gap in frame numbers (00001 → 00003)"


def test_non_numeric_frame_name(tmp_path):
    split = _split(tmp_path, {"v": 2})
    (tmp_path / "JPEGImages/v/00001.jpg").rename(tmp_path / "JPEGImages/v/frame_b.jpg")
    with pytest.raises(BadInputError) as err:
        split.video("v")
    assert str(err.value) == f"{_uri(split, 'JPEGImages/v/frame_b.jpg')}: frame name 'frame_b' is not a number"


@pytest.mark.parametrize("payload", [b"", b"not a jpeg at all", "truncated"])
def test_unreadable_or_corrupt_frame(tmp_path, payload):
    split = _split(tmp_path, {"v": 2})
    path = tmp_path / "JPEGImages/v/00001.jpg"
    data = path.read_bytes()[: len(path.read_bytes()) // 2] if payload == "truncated" else payload
    path.write_bytes(data)
    with pytest.raises(BadInputError) as err:
        split.read_frame("v", "00001")
    uri = _uri(split, "JPEGImages/v/00001.jpg")
    assert str(err.value) == f"{uri}: unreadable or corrupt image (not a complete JPEG)"


def test_corrupt_annotation_png(tmp_path):
    split = _split(tmp_path, {"v": 2})
    path = tmp_path / "Annotations/v/00000.png"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(BadInputError, match=r"Annotations/v/00000\.png: unreadable or corrupt PNG \("):
        split.video("v")


def test_ids_above_255_in_16_bit_annotation(tmp_path):
    split = _split(tmp_path, {"v": 2})
    cv2.imwrite(str(tmp_path / "Annotations/v/00000.png"), np.full((H, W), 300, np.uint16))
    with pytest.raises(BadInputError) as err:
        split.video("v")
    assert str(err.value) == (
        f"{_uri(split, 'Annotations/v/00000.png')}: 16-bit annotation: object ids above 255 "
        "are not supported (8-bit ids 0…255)"
    )


def test_empty_video(tmp_path):
    split = _split(tmp_path, {"v": 2})
    (tmp_path / "JPEGImages/empty").mkdir()
    assert split.videos() == ["empty", "v"]
    with pytest.raises(BadInputError) as err:
        split.video("empty")
    assert str(err.value) == f"{_uri(split, 'JPEGImages/empty')}: empty video (no frames)"


def test_annotations_without_frames_is_an_empty_video(tmp_path):
    split = _split(tmp_path, {"v": 2})
    (tmp_path / "Annotations/ghost").mkdir()
    (tmp_path / "Annotations/ghost/00000.png").write_bytes((tmp_path / "Annotations/v/00000.png").read_bytes())
    with pytest.raises(BadInputError, match=r"JPEGImages/ghost: empty video \(no frames\)$"):
        split.video("ghost")


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "", ".hidden", "a\\b"])
def test_path_traversal_in_video_name(tmp_path, name):
    split = _split(tmp_path, {"v": 2})
    with pytest.raises(BadInputError) as err:
        split.video(name)
    assert str(err.value) == f"video name {name!r} is not a plain folder name (path traversal or empty)"
    with pytest.raises(BadInputError):
        write_video(tmp_path, name, _frames(1), {0: _labels([1])})


def test_validate_reports_every_problem(tmp_path):
    split = _split(tmp_path, {"ok": 3, "gap": 4, "badframe": 3, "nofirst": 2, "size": 2}, every_frame=True)
    (tmp_path / "JPEGImages/gap/00002.jpg").unlink()
    (tmp_path / "JPEGImages/badframe/00001.jpg").write_bytes(b"junk")
    (tmp_path / "JPEGImages/badframe/00002.jpg").write_bytes(b"junk")
    (tmp_path / "Annotations/nofirst/00000.png").unlink()
    (tmp_path / "JPEGImages/nofirst/00001.jpg").write_bytes(b"junk")
    cv2.imwrite(str(tmp_path / "Annotations/size/00001.png"), np.zeros((5, 5), np.uint8))
    (tmp_path / "JPEGImages/stray.jpg").write_bytes(b"x")
    u = split.store.uri
    assert sorted(split.validate()) == sorted(
        [
            f"{u('JPEGImages/stray.jpg')}: not in the layout JPEGImages/<video>/<frame> (stray file)",
            f"{u('JPEGImages/gap')}: gap in frame numbers (00001 → 00003)",
            f"{u('JPEGImages/badframe/00001.jpg')}: unreadable or corrupt image (not a complete JPEG)",
            f"{u('JPEGImages/badframe/00002.jpg')}: unreadable or corrupt image (not a complete JPEG)",
            f"{u('Annotations/nofirst/00000.png')}: missing first-frame annotation of video 'nofirst'",
            f"{u('JPEGImages/nofirst/00001.jpg')}: unreadable or corrupt image (not a complete JPEG)",
            f"{u('Annotations/size/00001.png')}: annotation is 5x5 "
            f"but frame {u('JPEGImages/size/00001.jpg')} is {H}x{W}",
        ]
    )
    assert MoseSplit(tmp_path / "nowhere").validate() == [f"{(tmp_path / 'nowhere').as_uri()}/JPEGImages: no videos"]


def test_valid_split_first_frame_only_and_ground_truth_folder(tmp_path):
    split = _split(tmp_path / "valid", {"v": 4}, every_frame=False)
    info = split.video("v")
    assert info.annotated == ("00000",) and info.object_ids == (1, 2, 7)
    with pytest.raises(BadInputError, match=r"frame 00001 of video 'v' has no annotation"):
        split.annotation("v", "00001")
    writer = MoseWriter(tmp_path / "valid_gt")
    for i in range(4):
        writer.write_annotation("v", i, _labels([1, 2, 7], i))
    gt = MoseSplit(tmp_path / "valid_gt", frames=False)
    assert gt.validate() == []
    assert gt.video("v").frames == gt.video("v").annotated == tuple(f"{i:05d}" for i in range(4))
    np.testing.assert_array_equal(dict(gt.iter_annotations("v"))["00003"], _labels([1, 2, 7], 3))


def test_write_video_refuses_unannotated_first_frame_and_empty_video(tmp_path):
    with pytest.raises(BadInputError, match=r"video 'v': the first frame \(index 0\) must be annotated"):
        write_video(tmp_path, "v", _frames(2), {1: _labels([1])})
    with pytest.raises(BadInputError, match=r"video 'v': empty video \(no frames\)"):
        write_video(tmp_path, "v", [], {0: _labels([1])})


def test_split_in_s3_reads_like_the_local_one(tmp_path, s3_store):
    """The same split written locally and to the local S3 server reads back identically, problems included."""
    from stseg_core.data.mose import discover_splits

    for root in (tmp_path, s3_store.child("data/train")):
        write_video(root, "v1", _frames(3), {i: _labels([1, 2], i) for i in range(3)})
        write_video(root, "v2", _frames(2), {0: _labels([5], 0)})
    local, remote = MoseSplit(tmp_path), MoseSplit(f"{s3_store.root}/data/train")
    assert remote.videos() == local.videos() == ["v1", "v2"]
    for name in local.videos():
        assert remote.video(name) == local.video(name)
        for (sa, a), (sb, b) in zip(remote.iter_frames(name), local.iter_frames(name), strict=True):
            assert sa == sb and np.array_equal(a, b)
        for (sa, a), (sb, b) in zip(remote.iter_annotations(name), local.iter_annotations(name), strict=True):
            assert sa == sb and np.array_equal(a, b)
    assert discover_splits(s3_store.child("data")) == [("train", True)]
    s3_store.write_bytes("data/train/JPEGImages/v2/00001.jpg", b"\xff\xd8 cut short")
    assert remote.validate() == [
        f"{s3_store.root}/data/train/JPEGImages/v2/00001.jpg: unreadable or corrupt image (not a complete JPEG)"
    ]
