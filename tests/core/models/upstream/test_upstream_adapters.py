"""Cutie / XMem / LiVOS adapters, fast: conversion of files written in the upstream formats (palette PNGs, hickle
score arrays, backward.hkl), the generic layout, and the process wiring and failure paths with a small stand-in
program that reads the generic layout and writes where the real programs write. The real programs run in
tests/core/models/upstream/test_upstream_programs.py.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import hickle  # the ml extra; Cutie's and XMem's score files are hickle (HDF5)
import numpy as np
import pytest

from stseg_core.data.labels import DAVIS_PALETTE
from stseg_core.data.mose import MoseSplit
from stseg_core.data.synth import SynthConfig, generate_split
from stseg_core.errors import BackendError, BadInputError, MissingArtifactError
from stseg_core.models.base import VideoInput
from stseg_core.models.upstream import PROGRAMS, build_cutie, build_livos, build_xmem, convert_outputs, lay_out
from stseg_core.models.upstream.harness import prepare_checkout
from stseg_core.models.upstream.programs import CPU_SHIM, child_env, removed_lines
from stseg_core.runlayout import verify_shard
from stseg_core.stages.infer import ensure_plan, run_shard
from stseg_core.store import open_store

H, W, T = 24, 32, 4


def _video(ids=(2, 5)) -> VideoInput:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (H, W, 3)).astype(np.uint8) for _ in range(T)]
    first = np.zeros((H, W), np.uint8)
    first[2:10, 2:12] = ids[0]
    if len(ids) > 1:
        first[14:22, 16:30] = ids[1]
    return VideoInput(
        name="vid",
        stems=tuple(f"{i:05d}" for i in range(T)),
        height=H,
        width=W,
        first_labels=first,
        object_ids=tuple(ids),
        frames=lambda: iter(frames),
    )


def _save_palette_png(path: Path, labels: np.ndarray) -> None:
    """As the upstream savers do: Image.fromarray(uint8) + the first mask's palette."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels)
    img.putpalette(DAVIS_PALETTE)
    img.save(path)


def _write_upstream(
    out: Path, video: VideoInput, masks: list[np.ndarray], probs: list[np.ndarray] | None, backward: dict | None = None
) -> None:
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


def _scored(masks, channel):
    """Per frame a (3, H, W) uint8 score array: id 2 at 0.8 on its channel, id 5 at 0.6 on its channel."""
    probs = []
    for m in masks:
        p = np.zeros((3, H, W), np.uint8)
        p[channel[2]][m == 2] = 204
        p[channel[5]][m == 5] = 153
        p[0] = 255 - p[1] - p[2]
        probs.append(p)
    return probs


@pytest.mark.parametrize("backward", [None, {5: 1, 2: 2}])
def test_cutie_scores_follow_backward_hkl_else_ascending_ids(tmp_path, backward):
    video = _video()
    masks = [_moved(video, t) for t in range(T)]
    channel = backward or {2: 1, 5: 2}  # unpatched Cutie writes no backward.hkl: temporary ids, ascending
    probs = _scored(masks, channel)
    _write_upstream(tmp_path, video, masks, probs, backward=backward)
    out = list(convert_outputs(PROGRAMS["cutie"], tmp_path, video, scores=True))
    assert [r.stem for r in out] == list(video.stems)
    assert np.array_equal(out[0].labels, video.first_labels) and out[0].scores == {2: 1.0, 5: 1.0}
    for t in range(1, T):
        assert np.array_equal(out[t].labels, masks[t])
        assert np.array_equal(out[t].probs, probs[t][[channel[2], channel[5]]])
        assert out[t].scores == {2: pytest.approx(0.8), 5: pytest.approx(0.6)}
        assert out[t].present == {2: True, 5: True}


def test_a_backward_hkl_for_other_ids_is_refused(tmp_path):
    video = _video()
    masks = [video.first_labels.copy() for _ in range(T)]
    _write_upstream(tmp_path, video, masks, _scored(masks, {2: 1, 5: 2}), backward={"garbage": 1})
    with pytest.raises(
        BadInputError,
        match=r"backward\.hkl: maps \{'garbage': 1\}, expected the first frame's ids "
        r"\[2, 5\]$",
    ):
        list(convert_outputs(PROGRAMS["xmem"], tmp_path, video, scores=True))


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
    _write_upstream(tmp_path, video, masks, None)
    (tmp_path / "Annotations" / "vid" / "00003.png").unlink()
    with pytest.raises(MissingArtifactError, match=r"^video vid frame 00003: livos wrote no mask \("):
        list(convert_outputs(PROGRAMS["livos"], tmp_path, video, scores=False))
    bad = masks[3].copy()
    bad[0, 0] = 9
    _save_palette_png(tmp_path / "Annotations" / "vid" / "00003.png", bad)
    with pytest.raises(
        BadInputError,
        match=r"^video vid frame 00003: livos wrote ids \[9\] not in the first "
        r"frame's \[2, 5\] \(.*00003\.png\)$",
    ):
        list(convert_outputs(PROGRAMS["livos"], tmp_path, video, scores=False))
    _save_palette_png(tmp_path / "Annotations" / "vid" / "00003.png", masks[3])
    sdir = tmp_path / "Scores" / "vid"
    sdir.mkdir(parents=True)
    for stem in video.stems:
        hickle.dump(np.zeros((2, H, W), np.uint8), str(sdir / f"{stem}.hkl"), mode="w")  # one object short
    with pytest.raises(
        BadInputError,
        match=r"^video vid frame 00001: expected uint8 \(3, 24, 32\) probabilities, "
        r"got uint8 \(2, 24, 32\) \(.*00001\.hkl\)$",
    ):
        list(convert_outputs(PROGRAMS["cutie"], tmp_path, video, scores=True))


def test_xmem_without_scores_reads_masks_where_eval_py_writes_them(tmp_path):
    """XMem's eval.py puts masks in <output>/<video>/ unless --save_scores (then <output>/Annotations/<video>/)."""
    video = _video()
    masks = [_moved(video, t) for t in range(T)]
    for stem, mask in zip(video.stems, masks, strict=True):
        _save_palette_png(tmp_path / video.name / f"{stem}.png", mask)
    out = list(convert_outputs(PROGRAMS["xmem"], tmp_path, video, scores=False))
    assert all(np.array_equal(r.labels, m) for r, m in zip(out[1:], masks[1:], strict=True))
    assert PROGRAMS["xmem"].masks_dir(tmp_path, "v", True) == tmp_path / "Annotations" / "v"


def test_lay_out_copies_stored_jpegs_byte_for_byte_and_the_program_decodes_our_pixels(tmp_path):
    """The programs decode frames with PIL; the JPEG bytes are handed on, and PIL's pixels equal stseg's."""
    from PIL import Image

    generate_split(
        tmp_path / "d",
        SynthConfig(seed=1, height=40, width=56, videos=1, min_frames=3, max_frames=3, min_objects=1, max_objects=1),
        "valid",
    )
    split = MoseSplit(tmp_path / "d" / "valid")
    video = VideoInput.from_split(split, split.videos()[0])
    lay_out(video, tmp_path / "data")
    laid = sorted((tmp_path / "data" / "JPEGImages" / video.name).iterdir())
    assert [f.name for f in laid] == [f"{s}.jpg" for s in video.stems]
    for path, src, rgb in zip(laid, video.frame_files, video.frames(), strict=True):
        assert path.read_bytes() == Path(src).read_bytes()
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), rgb)
    masks = tmp_path / "data" / "Annotations" / video.name
    assert [p.name for p in masks.iterdir()] == [f"{video.stems[0]}.png"]


def test_lay_out_without_files_writes_lossless_png(tmp_path):
    from PIL import Image

    video = _video()
    lay_out(video, tmp_path)
    frames = sorted((tmp_path / "JPEGImages" / "vid").iterdir())
    assert [f.name for f in frames] == [f"{s}.png" for s in video.stems]
    for path, rgb in zip(frames, video.frames(), strict=True):
        assert np.array_equal(np.asarray(Image.open(path)), rgb)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "Annotations" / "vid" / "00000.png")), video.first_labels)


# A stand-in for the three upstream programs: parses their real command lines, checks the generic layout it is
# given, "tracks" by repeating the first mask and writes masks (+ scores) where the real program does, video by
# video in name order. STANDIN_FAIL_AT=k exits 1 on the k-th video (1-based) after its first frame,
# STANDIN_SMALL_AT=k writes half-size masks for it, STANDIN_AWAIT=<folder> makes it wait, once it has started
# its second video, until the first video's scores.json is in that folder (outputs must stream while it runs).
# It records its argv, then the videos it was given, one JSON line each, in $STANDIN_RECORD.
STAND_IN = textwrap.dedent("""
    import json, os, sys, time
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
    fail_at, small_at = int(os.environ.get("STANDIN_FAIL_AT", 0)), int(os.environ.get("STANDIN_SMALL_AT", 0))
    await_dir = os.environ.get("STANDIN_AWAIT")
    videos = sorted(os.listdir(masks))
    with open(os.environ["STANDIN_RECORD"], "a") as fh:
        fh.write(json.dumps(videos) + "\\n")
    for k, video in enumerate(videos, 1):
        frames = sorted(os.listdir(images / video)); annotated = sorted(os.listdir(masks / video))
        if len(annotated) != 1 or annotated[0][:-4] != frames[0][:-4]:
            print(f"expected only the first annotation, got {annotated}", file=sys.stderr); sys.exit(3)
        first = Image.open(masks / video / annotated[0]); labels = np.array(first)
        ids = sorted(set(np.unique(labels).tolist()) - {0})
        channel = {i: n + 1 for n, i in enumerate(ids if style == "cutie" else ids[::-1])}
        mdir = out / "Annotations" / video if (scores or style == "cutie") else out / video
        mdir.mkdir(parents=True, exist_ok=True)
        if k == 2 and await_dir:  # started on the second video: the first must now reach the store
            deadline = time.time() + 30
            while not (Path(await_dir) / videos[0] / "scores.json").exists():
                if time.time() > deadline:
                    print("first video never reached the store", file=sys.stderr); sys.exit(5)
                time.sleep(0.05)
        for n, f in enumerate(frames):
            Image.open(images / video / f).load()
            drawn = labels[::2, ::2] if k == small_at else labels
            img = Image.fromarray(drawn); img.putpalette(first.getpalette())
            img.save(mdir / (f[:-4] + ".png"))
            if scores:
                import hickle
                prob = np.zeros((len(ids) + 1, *labels.shape), np.uint8)
                for i in ids:
                    prob[channel[i]][labels == i] = 200 + i
                (out / "Scores" / video).mkdir(parents=True, exist_ok=True)
                if n == len(frames) - 1:
                    hickle.dump(channel, str(out / "Scores" / video / "backward.hkl"), mode="w")
                hickle.dump(prob, str(out / "Scores" / video / (f[:-4] + ".hkl")), mode="w", compression="lzf")
            if k == fail_at:
                print(f"RuntimeError at {video}", file=sys.stderr); sys.exit(1)
""")


@pytest.fixture()
def installed(tmp_path, monkeypatch):
    """A checkout of each program (the stand-in at its script path; Cutie's save-scores fix in place), a
    weights file, the record file."""
    homes = {}
    for name, program in PROGRAMS.items():
        script = tmp_path / name / program.script
        script.parent.mkdir(parents=True)
        script.write_text(STAND_IN)
        for patch in program.score_patches:  # the patched file, as far as the adapter's check reads it
            for rel in removed_lines(patch):
                (tmp_path / name / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / name / rel).write_text("# patched\n")
        homes[name] = tmp_path / name
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"upstream weights")
    record = tmp_path / "argv.jsonl"
    monkeypatch.setenv("STANDIN_RECORD", str(record))
    return homes, weights, record


def _launches(record: Path) -> list[tuple[list[str], list[str]]]:
    """(argv, videos) of each launch of the stand-in."""
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    return list(zip(lines[::2], lines[1::2], strict=False))


@pytest.mark.parametrize("name,build", [("cutie", build_cutie), ("xmem", build_xmem), ("livos", build_livos)])
@pytest.mark.parametrize("scores", [True, False])
def test_process_wiring_with_stand_in(installed, tmp_path, name, build, scores):
    homes, weights, record = installed
    video = _video()
    model = build(
        home=str(homes[name]),
        checkpoint=weights.as_uri(),
        python=sys.executable,
        size="240",
        scratch=str(tmp_path),
        scores=scores,
    )
    out = list(model.segment(video))
    assert len(out) == T and all(np.array_equal(r.labels, video.first_labels) for r in out)
    [(argv, videos)] = _launches(record)
    assert videos == ["vid"]
    if name == "xmem":
        assert argv[:2] == ["--model", str(weights)] and argv[2:4] == ["--dataset", "G"]
        assert ("--save_scores" in argv) == scores and argv[argv.index("--size") + 1] == "240"
    else:
        assert argv[0] == "dataset=generic" and f"weights={weights}" in argv and "size=240" in argv
        assert (f"save_scores={scores}" in argv) == (name == "cutie")
    if name == "livos" or not scores:
        assert out[1].probs is None and out[1].scores == {2: 1.0, 5: 1.0}
    else:  # the stand-in wrote 200 + id on each object's channel (XMem in reversed order, via backward.hkl)
        assert out[1].scores == {2: pytest.approx(202 / 255), 5: pytest.approx(205 / 255)}
        assert out[1].probs[1][video.first_labels == 5].tolist() == [205] * int((video.first_labels == 5).sum())
    assert not list(tmp_path.glob(f"stseg-{name}-*"))  # scratch cleaned up


def test_program_failure_names_video_and_quotes_its_output(installed, monkeypatch):
    homes, weights, _ = installed
    monkeypatch.setenv("STANDIN_FAIL", "1")
    model = build_cutie(home=str(homes["cutie"]), checkpoint=str(weights), python=sys.executable)
    with pytest.raises(
        BackendError,
        match=r"^video vid: cutie program exited with code 1 while starting, before "
        r"any output \(weights .*weights\.pth\) \(loading model \| RuntimeError: "
        r"CUDA out of memory\)$",
    ):
        list(model.segment(_video()))


def _shard(tmp_path, videos: int = 5):
    """A one-shard run over a tiny synthetic split; returns (data root, run root, video names)."""
    generate_split(
        tmp_path / "d",
        SynthConfig(
            seed=2, height=32, width=48, videos=videos, min_frames=2, max_frames=3, min_objects=1, max_objects=2
        ),
        "valid",
    )
    data, run = str(tmp_path / "d" / "valid"), str(tmp_path / "run")
    ensure_plan(data, run, 1)
    return data, run, MoseSplit(data).videos()


def _run(installed, data, run, name="xmem", **options):
    homes, weights, _ = installed
    return run_shard(
        data_root=data,
        run_root=run,
        model_name=name,
        shard=0,
        num_shards=1,
        model_overrides={"home": str(homes[name]), "checkpoint": str(weights), "python": sys.executable, **options},
    )


def _videos_written(outcome) -> list[str]:
    return sorted(k.split("/")[2] for k in outcome.marker.files if k.endswith("scores.json"))


def test_one_launch_per_shard_streams_each_video_to_the_store(installed, tmp_path, monkeypatch):
    data, run, videos = _shard(tmp_path, videos=3)
    monkeypatch.setenv("STANDIN_AWAIT", str(tmp_path / "run" / "pred" / "cutie"))
    outcome = _run(installed, data, run, "cutie")
    assert [v for _argv, v in _launches(installed[2])] == [videos]  # one launch, every video, in name order
    assert _videos_written(outcome) == videos
    assert verify_shard(open_store(run), "pred/cutie", 0) == []


def test_failure_on_the_third_of_five_videos_keeps_the_first_two_and_the_retry_skips_them(
    installed, tmp_path, monkeypatch
):
    data, run, videos = _shard(tmp_path)
    monkeypatch.setenv("STANDIN_FAIL_AT", "3")
    with pytest.raises(
        BackendError,
        match=rf"^xmem video {videos[2]}: xmem program exited "
        rf"with code 1 while on this video \(RuntimeError at {videos[2]}\)$",
    ):
        _run(installed, data, run)
    store = open_store(run)
    kept = {v: store.read_bytes(f"pred/xmem/{v}/scores.json") for v in videos[:2]}
    assert not store.exists(f"pred/xmem/{videos[2]}/scores.json") and not store.exists("pred/xmem/_done/0.json")
    monkeypatch.delenv("STANDIN_FAIL_AT")
    outcome = _run(installed, data, run)
    assert _launches(installed[2])[-1][1] == videos[2:]  # the retry runs only the rest
    assert {v: store.read_bytes(f"pred/xmem/{v}/scores.json") for v in videos[:2]} == kept
    assert _videos_written(outcome) == videos
    assert verify_shard(store, "pred/xmem", 0) == []


def test_wrong_size_mask_is_one_line_naming_model_video_and_frame(installed, tmp_path, monkeypatch):
    data, run, videos = _shard(tmp_path, videos=3)
    monkeypatch.setenv("STANDIN_SMALL_AT", "2")
    stem = MoseSplit(data).video(videos[1]).frames[1]
    with pytest.raises(
        BadInputError,
        match=rf"^livos video {videos[1]} frame {stem}: livos "
        rf"wrote a 16x24 mask for a 32x48 frame \(.*{stem}\.png\)$",
    ):
        _run(installed, data, run, "livos")
    assert open_store(run).exists(f"pred/livos/{videos[0]}/scores.json")


def test_batches_are_bounded_in_frames(installed, tmp_path):
    data, run, videos = _shard(tmp_path, videos=3)
    outcome = _run(installed, data, run, "livos", batch_frames=3)  # 2-3 frames a video: one video a launch
    assert [v for _argv, v in _launches(installed[2])] == [[v] for v in videos]
    assert _videos_written(outcome) == videos


def test_cutie_scores_need_the_save_scores_patch(upstream_trees, tmp_path):
    """The adapter refuses a Cutie checkout without the fix (it would hang); the patch file the image applies
    makes a pristine checkout pass."""
    pristine = upstream_trees / "Cutie"
    with pytest.raises(BadInputError, match=r"^cutie: .*results_utils\.py lacks the fix in cutie-save-scores\.patch"):
        build_cutie(home=str(pristine), checkpoint=__file__)
    build_cutie(home=str(pristine), checkpoint=__file__, scores=False)
    patched = prepare_checkout("cutie", pristine, tmp_path / "Cutie")
    assert build_cutie(home=str(patched), checkpoint=__file__).home == patched


def test_missing_program_says_where_it_runs(tmp_path, monkeypatch, installed):
    homes, weights, _ = installed
    monkeypatch.setenv("STSEG_XMEM_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(
        MissingArtifactError,
        match=rf"^xmem: upstream program {tmp_path}/nowhere/eval\.py not "
        r"found; the real hkchengrex/XMem runs in the xmem image",
    ):
        build_xmem(checkpoint=str(weights))
    monkeypatch.setenv("STSEG_XMEM_HOME", str(homes["xmem"]))  # the env var is how the image points at it
    assert build_xmem(checkpoint=str(weights)).home == homes["xmem"]
    with pytest.raises(BadInputError, match=r"^livos needs checkpoint=URI"):
        build_livos(home=str(homes["livos"]))
    with pytest.raises(MissingArtifactError, match=r"^checkpoint .*absent\.pth: not found$"):
        build_livos(home=str(homes["livos"]), checkpoint=str(tmp_path / "absent.pth"))
    with pytest.raises(BadInputError, match=r"^cutie has no option\(s\) flip "):
        build_cutie(flip=True)
    with pytest.raises(BadInputError, match=r"^livos option device='tpu': use cuda, cpu or auto$"):
        build_livos(home=str(homes["livos"]), checkpoint=str(weights), device="tpu")


def test_cpu_device_puts_the_shim_first_for_the_child_only(tmp_path):
    env = child_env(tmp_path, "cpu", {"PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(CPU_SHIM), str(tmp_path), "/elsewhere"]
    assert (CPU_SHIM / "sitecustomize.py").is_file()
    assert child_env(tmp_path, None, {})["PYTHONPATH"] == str(tmp_path)


def test_the_trees_the_tests_run_are_the_pinned_commits(upstream_trees):
    for program in PROGRAMS.values():
        assert (upstream_trees / program.folder / ".upstream-commit").read_text().strip() == program.commit
