"""Prediction files: exact layout, bytes and scores.json fields; streamed read-back; contract violations."""

import io
import json
import zipfile

import numpy as np
import pytest

from stseg_core.data.labels import encode_label_png, read_label_png
from stseg_core.errors import BadInputError
from stseg_core.models.base import FrameResult
from stseg_core.predictions import read_video_predictions, write_video_predictions
from stseg_core.store import open_store

STEMS = ("00000", "00001", "00002")


def _results(with_probs: bool = True) -> list[FrameResult]:
    out = []
    for t, stem in enumerate(STEMS):
        labels = np.zeros((6, 7), np.uint8)
        labels[t : t + 2, 1:3] = 3
        if t < 2:
            labels[4:6, 4:7] = 9
        probs = np.stack([(labels == 3) * 200, (labels == 9) * 255]).astype(np.uint8) if with_probs else None
        out.append(
            FrameResult(
                stem=stem,
                labels=labels,
                scores={3: 1.0 - 0.25 * t, 9: np.float32(0.5)},
                present={3: True, 9: t < 2},
                probs=probs,
            )
        )
    return out


def _write(store, results, **kw):
    return write_video_predictions(
        store, "flowprop", "cat", results, stems=STEMS, object_ids=(3, 9), confidence_definition="test confidence", **kw
    )


def test_layout_bytes_and_scores_exactly(tmp_path):
    store = open_store(tmp_path)
    results = _results()
    keys = _write(store, results)
    assert keys == [
        "pred/flowprop/cat/00000.png",
        "pred/flowprop/cat/00001.png",
        "pred/flowprop/cat/00002.png",
        "pred/flowprop/cat/probs.npz",
        "pred/flowprop/cat/scores.json",
    ]
    assert store.list("") == sorted(keys)
    for r in results:
        data = (tmp_path / f"pred/flowprop/cat/{r.stem}.png").read_bytes()
        assert data == encode_label_png(r.labels)
        assert np.array_equal(read_label_png(data), r.labels)
    doc = json.loads((tmp_path / "pred/flowprop/cat/scores.json").read_text())
    assert doc == {
        "model": "flowprop",
        "video": "cat",
        "object_ids": [3, 9],
        "confidence_definition": "test confidence",
        "frames": {
            "00000": {"3": {"score": 1.0, "present": True}, "9": {"score": 0.5, "present": True}},
            "00001": {"3": {"score": 0.75, "present": True}, "9": {"score": 0.5, "present": True}},
            "00002": {"3": {"score": 0.5, "present": True}, "9": {"score": 0.5, "present": False}},
        },
    }
    with np.load(tmp_path / "pred/flowprop/cat/probs.npz") as npz:
        assert list(npz.keys()) == ["probs"]
        probs = npz["probs"]
    assert probs.dtype == np.uint8 and probs.shape == (3, 2, 6, 7)
    assert np.array_equal(probs, np.stack([r.probs for r in results]))
    with zipfile.ZipFile(tmp_path / "pred/flowprop/cat/probs.npz") as zf:
        assert zf.getinfo("probs.npy").compress_type == zipfile.ZIP_DEFLATED


def test_read_back_streams_labels_scores_and_probs(tmp_path):
    store = open_store(tmp_path)
    results = _results()
    _write(store, results)
    pred = read_video_predictions(store, "flowprop", "cat")
    assert (pred.model, pred.video, pred.object_ids, pred.stems) == ("flowprop", "cat", (3, 9), STEMS)
    assert pred.confidence_definition == "test confidence"
    assert pred.scores["00002"] == {3: 0.5, 9: 0.5} and pred.present["00002"] == {3: True, 9: False}
    assert pred.has_probs
    for (stem, labels), (pstem, probs), r in zip(pred.iter_labels(), pred.iter_probs(), results, strict=True):
        assert stem == pstem == r.stem
        assert np.array_equal(labels, r.labels) and np.array_equal(probs, r.probs)


def test_without_probs_and_under_another_prefix(tmp_path):
    store = open_store(tmp_path)
    keys = _write(store, _results(with_probs=False), prefix="fused")
    assert keys[-1] == "fused/cat/scores.json" and "fused/cat/probs.npz" not in keys and len(keys) == 4
    pred = read_video_predictions(store, "flowprop", "cat", prefix="fused")
    assert not pred.has_probs
    with pytest.raises(BadInputError, match="model flowprop wrote no soft probabilities"):
        next(pred.iter_probs())


def test_probs_go_to_the_store_from_disk_and_the_temp_file_is_removed(tmp_path, monkeypatch):
    """probs.npz is copied from its temp file (`Store.write_file`), never as bytes in memory; the temp file is
    gone after the upload and after a failure half-way."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))
    store = open_store(tmp_path / "store")
    in_memory = store.write_bytes

    def write_bytes(key, data):
        assert not key.endswith("probs.npz"), key
        in_memory(key, data)

    monkeypatch.setattr(store, "write_bytes", write_bytes)
    results = _results()
    assert "pred/flowprop/cat/probs.npz" in _write(store, results)
    assert list(temp.iterdir()) == []
    with np.load(tmp_path / "store/pred/flowprop/cat/probs.npz") as npz:
        assert np.array_equal(npz["probs"], np.stack([r.probs for r in results]))
    with pytest.raises(BadInputError):
        _write(store, results[:2])
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rs: rs[::-1], "flowprop video cat frame 00002: result 0 is for frame 00002, expected 00000"),
        (lambda rs: rs[:2], r"flowprop video cat: 2 results for 3 frames \(first missing: 00002\)"),
        (
            lambda rs: [rs[0], FrameResult("00001", rs[1].labels, {3: 1.5, 9: 0.1}, rs[1].present, rs[1].probs), rs[2]],
            r"frame 00001: score of object 3 is 1.5, not in \[0, 1\]",
        ),
        (
            lambda rs: [rs[0], FrameResult("00001", rs[1].labels, rs[1].scores, rs[1].present), rs[2]],
            "frame 00001: soft probabilities on some frames only",
        ),
        (
            lambda rs: [rs[0], FrameResult("00001", rs[1].labels + 1, rs[1].scores, rs[1].present, rs[1].probs)],
            r"frame 00001: labels hold ids \[1, 4, 10\] that are not object ids \[3, 9\]",
        ),
        (
            lambda rs: [FrameResult("00000", rs[0].labels, {3: 1.0}, {3: True}, rs[0].probs)],
            r"frame 00000: scores/present must cover object ids \[3, 9\]",
        ),
    ],
)
def test_contract_violations_name_video_and_frame(tmp_path, mutate, message):
    with pytest.raises(BadInputError, match=message):
        _write(open_store(tmp_path), mutate(_results()))
    assert not (tmp_path / "pred/flowprop/cat/scores.json").exists()


def test_corrupt_files_are_bad_input(tmp_path):
    store = open_store(tmp_path)
    _write(store, _results())
    store.write_bytes("pred/flowprop/cat/probs.npz", b"not a zip")
    with pytest.raises(BadInputError, match=r"probs\.npz: not a probs\.npz"):
        list(read_video_predictions(store, "flowprop", "cat").iter_probs())
    buf = io.BytesIO()
    np.savez(buf, probs=np.zeros((3, 1, 6, 7), np.uint8))
    store.write_bytes("pred/flowprop/cat/probs.npz", buf.getvalue())
    with pytest.raises(BadInputError, match=r"probs must be uint8 \(3, 2, H, W\)"):
        list(read_video_predictions(store, "flowprop", "cat").iter_probs())
    store.write_text("pred/flowprop/cat/scores.json", '{"model": "x"}')
    with pytest.raises(BadInputError, match=r"scores\.json: not a scores\.json"):
        read_video_predictions(store, "flowprop", "cat")
