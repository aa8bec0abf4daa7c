"""Cutie / XMem / LiVOS adapters.

The real upstream programs need their repositories and a CUDA GPU and run only in the model images; here
the conversion is tested on files written in the upstream formats (palette PNGs, hickle score arrays,
XMem's backward.hkl), and the process wiring with a small stand-in program that reads the generic layout
and writes the upstream output layout.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import hickle  # the ml extra; Cutie's and XMem's score files are hickle (HDF5)
import numpy as np
import pytest

from stseg_core.data.labels import DAVIS_PALETTE
from stseg_core.errors import BackendError, BadInputError, MissingArtifactError
from stseg_core.models.base import VideoInput
from stseg_core.models.upstream import PROGRAMS, build_cutie, build_livos, build_xmem, convert_outputs, lay_out

H, W, T = 24, 32, 4


def _video(ids=(2, 5)) -> VideoInput:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (H, W, 3)).astype(np.uint8) for _ in range(T)]
    first = np.zeros((H, W), np.uint8)
    first[2:10, 2:12] = ids[0]
    if len(ids) > 1:
        first[14:22, 16:30] = ids[1]
    return VideoInput(name="vid", stems=tuple(f"{i:05d}" for i in range(T)), height=H, width=W,
                      first_labels=first, object_ids=tuple(ids), frames=lambda: iter(frames))


def _save_palette_png(path: Path, labels: np.ndarray) -> None:
    """As the upstream savers do: Image.fromarray(uint8) + the first mask's palette."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels)
    img.putpalette(DAVIS_PALETTE)
    img.save(path)


def _write_upstream(out: Path, video: VideoInput, masks: list[np.ndarray], probs: list[np.ndarray] | None,
                    backward: dict | None = None) -> None:
    for stem, mask in zip(video.stems, masks, strict=True):
        _save_palette_png(out / "Annotations" / video.name / f"{stem}.png", mask)
    if probs is not None:
        sdir = out / "Scores" / video.name
        sdir.mkdir(parents=True, exist_ok=True)
        for stem, prob in zip(video.stems, probs, strict=True):
            hickle.dump(prob, str(sdir / f"{stem}.hkl"), mode="w", compression="lzf")
        if backward is not None:
            hickle.dump(backward, str(sdir / "backward.hkl"), mode="w")


def _moved(video: VideoInput, t: int) -> np.ndarray:
    return np.roll(video.first_labels, t, axis=1)


def test_cutie_scores_convert_in_ascending_id_order(tmp_path):
    video = _video()
    masks = [_moved(video, t) for t in range(T)]
    probs = []
    for m in masks:  # channel 0 background, 1 → id 2 at 0.8, 2 → id 5 at 0.6
        p = np.zeros((3, H, W), np.uint8)
        p[1][m == 2] = 204
        p[2][m == 5] = 153
        p[0] = 255 - p[1] - p[2]
        probs.append(p)
    _write_upstream(tmp_path, video, masks, probs, backward={"garbage": 1})  # Cutie's backward.hkl is ignored
    out = list(convert_outputs(PROGRAMS["cutie"], tmp_path, video, scores=True))
    assert [r.stem for r in out] == list(video.stems)
    assert np.array_equal(out[0].labels, video.first_labels) and out[0].scores == {2: 1.0, 5: 1.0}
    for t in range(1, T):
        assert np.array_equal(out[t].labels, masks[t])
        assert np.array_equal(out[t].probs, probs[t][1:])
        assert out[t].scores == {2: pytest.approx(0.8), 5: pytest.approx(0.6)}
        assert out[t].present == {2: True, 5: True}


def test_xmem_scores_follow_backward_mapping(tmp_path):
    video = _video()
    masks = [video.first_labels.copy() for _ in range(T)]
    masks[2][masks[2] == 5] = 0  # id 5 vanishes in frame 2
    probs = []
    for m in masks:  # XMem put id 5 in channel 1 and id 2 in channel 2
        p = np.zeros((3, H, W), np.uint8)
        p[2][m == 2] = 255
        p[1][m == 5] = 102
        probs.append(p)
    _write_upstream(tmp_path, video, masks, probs, backward={2: 2, 5: 1})
    out = list(convert_outputs(PROGRAMS["xmem"], tmp_path, video, scores=True))
    assert np.array_equal(out[1].probs[0], probs[1][2]) and np.array_equal(out[1].probs[1], probs[1][1])
    assert out[1].scores == {2: pytest.approx(1.0), 5: pytest.approx(0.4)}
    assert out[2].present == {2: True, 5: False} and out[2].scores[5] == 0.0


def test_livos_masks_only(tmp_path):
    video = _video()
    masks = [video.first_labels.copy() for _ in range(T)]
    masks[3][:] = 0
    _write_upstream(tmp_path, video, masks, None)
    out = list(convert_outputs(PROGRAMS["livos"], tmp_path, video, scores=True))
    assert all(r.probs is None for r in out)
    assert out[1].scores == {2: 1.0, 5: 1.0} and out[3].scores == {2: 0.0, 5: 0.0}
    assert out[3].present == {2: False, 5: False}


def test_bad_upstream_outputs_are_one_line_errors(tmp_path):
    video = _video()
    masks = [video.first_labels.copy() for _ in range(T)]
    _write_upstream(tmp_path, video, masks[:1] + masks[1:], None)
    (tmp_path / "Annotations" / "vid" / "00003.png").unlink()
    with pytest.raises(MissingArtifactError, match=r"^video vid: livos wrote no mask for frame 00003 \("):
        list(convert_outputs(PROGRAMS["livos"], tmp_path, video, scores=False))
    bad = masks[3].copy()
    bad[0, 0] = 9
    _save_palette_png(tmp_path / "Annotations" / "vid" / "00003.png", bad)
    with pytest.raises(BadInputError, match=r"00003\.png: holds ids \[9\] not in the first frame's \[2, 5\]$"):
        list(convert_outputs(PROGRAMS["livos"], tmp_path, video, scores=False))
    _save_palette_png(tmp_path / "Annotations" / "vid" / "00003.png", masks[3])
    sdir = tmp_path / "Scores" / "vid"
    sdir.mkdir(parents=True)
    for stem in video.stems:
        hickle.dump(np.zeros((2, H, W), np.uint8), str(sdir / f"{stem}.hkl"), mode="w")  # one object short
    with pytest.raises(BadInputError, match=r"00001\.hkl: expected uint8 \(3, 24, 32\) probabilities, "
                                            r"got uint8 \(2, 24, 32\)$"):
        list(convert_outputs(PROGRAMS["cutie"], tmp_path, video, scores=True))


def test_lay_out_writes_generic_layout_losslessly(tmp_path):
    from PIL import Image

    video = _video()
    lay_out(video, tmp_path)
    frames = sorted((tmp_path / "JPEGImages" / "vid").iterdir())
    assert [f.name for f in frames] == [f"{s}.png" for s in video.stems]
    for path, rgb in zip(frames, video.frames(), strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), rgb)
    assert [p.name for p in (tmp_path / "Annotations" / "vid").iterdir()] == ["00000.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "Annotations" / "vid" / "00000.png")), video.first_labels)


# A stand-in for the three upstream programs: parses their real command lines, checks the generic layout it
# is given, "tracks" by repeating the first mask, and writes masks (+ scores) in the upstream layout.
STAND_IN = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path
    import numpy as np
    from PIL import Image

    args = sys.argv[1:]
    with open(os.environ["STANDIN_RECORD"], "a") as fh:
        fh.write(json.dumps(args) + "\\n")
    if os.environ.get("STANDIN_FAIL"):
        print("loading model"); print("RuntimeError: CUDA out of memory", file=sys.stderr); sys.exit(1)
    if "--generic_path" in args:                       # XMem's argparse style
        data = Path(args[args.index("--generic_path") + 1]); out = Path(args[args.index("--output") + 1])
        images, masks, scores = data / "JPEGImages", data / "Annotations", "--save_scores" in args
        style = "xmem"
    else:                                              # Cutie / LiVOS hydra style
        kv = dict(a.split("=", 1) for a in args)
        images, masks, out = Path(kv["image_directory"]), Path(kv["mask_directory"]), Path(kv["output_dir"])
        scores, style = kv.get("save_scores") == "True", "cutie"
    for video in sorted(os.listdir(masks)):
        frames = sorted(os.listdir(images / video)); annotated = sorted(os.listdir(masks / video))
        if len(annotated) != 1 or annotated[0][:-4] != frames[0][:-4]:
            print(f"expected only the first annotation, got {annotated}", file=sys.stderr); sys.exit(3)
        first = Image.open(masks / video / annotated[0]); labels = np.array(first)
        ids = sorted(set(np.unique(labels).tolist()) - {0})
        channel = {i: k + 1 for k, i in enumerate(ids if style == "cutie" else ids[::-1])}
        (out / "Annotations" / video).mkdir(parents=True, exist_ok=True)
        for f in frames:
            Image.open(images / video / f).load()
            img = Image.fromarray(labels); img.putpalette(first.getpalette())
            img.save(out / "Annotations" / video / (f[:-4] + ".png"))
            if scores:
                import hickle
                prob = np.zeros((len(ids) + 1, *labels.shape), np.uint8)
                for i in ids:
                    prob[channel[i]][labels == i] = 200 + i
                (out / "Scores" / video).mkdir(parents=True, exist_ok=True)
                hickle.dump(prob, str(out / "Scores" / video / (f[:-4] + ".hkl")), mode="w", compression="lzf")
        if scores and style == "xmem":
            hickle.dump(channel, str(out / "Scores" / video / "backward.hkl"), mode="w")
''')


@pytest.fixture()
def installed(tmp_path, monkeypatch):
    """A checkout of each program (the stand-in at its script path), a weights file, an argv record."""
    homes = {}
    for name, program in PROGRAMS.items():
        script = tmp_path / name / program.script
        script.parent.mkdir(parents=True)
        script.write_text(STAND_IN)
        homes[name] = tmp_path / name
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"upstream weights")
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("STANDIN_RECORD", str(record))
    return homes, weights, record


@pytest.mark.parametrize("name,build", [("cutie", build_cutie), ("xmem", build_xmem), ("livos", build_livos)])
def test_process_wiring_with_stand_in(installed, tmp_path, name, build):
    homes, weights, record = installed
    video = _video()
    model = build(home=str(homes[name]), checkpoint=weights.as_uri(), python=sys.executable, size="240",
                  scratch=str(tmp_path))
    out = list(model.segment(video))
    assert len(out) == T and all(np.array_equal(r.labels, video.first_labels) for r in out)
    argv = json.loads(record.read_text().splitlines()[-1])
    if name == "xmem":
        assert argv[:2] == ["--model", str(weights)] and argv[2:4] == ["--dataset", "G"]
        assert "--save_scores" in argv and argv[argv.index("--size") + 1] == "240"
    else:
        assert argv[0] == "dataset=generic" and f"weights={weights}" in argv and "size=240" in argv
        assert ("save_scores=True" in argv) == (name == "cutie")
    if name == "livos":
        assert out[1].probs is None and out[1].scores == {2: 1.0, 5: 1.0}
    else:  # the stand-in wrote 200 + id on each object's channel (XMem in reversed order, via backward.hkl)
        assert out[1].scores == {2: pytest.approx(202 / 255), 5: pytest.approx(205 / 255)}
        assert out[1].probs[1][video.first_labels == 5].tolist() == [205] * int((video.first_labels == 5).sum())
    assert not list(tmp_path.glob(f"stseg-{name}-*"))  # scratch cleaned up


def test_program_failure_names_video_and_quotes_its_output(installed, monkeypatch):
    homes, weights, _ = installed
    monkeypatch.setenv("STANDIN_FAIL", "1")
    model = build_cutie(home=str(homes["cutie"]), checkpoint=str(weights), python=sys.executable)
    with pytest.raises(BackendError, match=r"^video vid: cutie program exited with code 1 "
                                           r"\(loading model \| RuntimeError: CUDA out of memory\)$"):
        list(model.segment(_video()))


def test_missing_program_says_it_runs_only_in_the_image(tmp_path, monkeypatch, installed):
    homes, weights, _ = installed
    monkeypatch.setenv("STSEG_XMEM_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(MissingArtifactError, match=rf"^xmem: upstream program {tmp_path}/nowhere/eval\.py not "
                                                   r"found; the real hkchengrex/XMem runs only in the xmem image"):
        build_xmem(checkpoint=str(weights))
    monkeypatch.setenv("STSEG_XMEM_HOME", str(homes["xmem"]))  # the env var is how the image points at it
    assert build_xmem(checkpoint=str(weights)).home == homes["xmem"]
    with pytest.raises(BadInputError, match=r"^livos needs checkpoint=URI"):
        build_livos(home=str(homes["livos"]))
    with pytest.raises(MissingArtifactError, match=r"^checkpoint .*absent\.pth: not found$"):
        build_livos(home=str(homes["livos"]), checkpoint=str(tmp_path / "absent.pth"))
    with pytest.raises(BadInputError, match=r"^cutie has no option\(s\) flip "):
        build_cutie(flip=True)
