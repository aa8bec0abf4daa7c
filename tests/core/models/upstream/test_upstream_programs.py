"""Cutie, XMem and LiVOS for real: the upstream programs at their pinned commits, run by `stseg infer` on the CPU
(`device=cpu`, the adapter's shim) with random weights saved in each program's own format, on a tiny synthetic
split whose object ids are not 1…K (so a wrong score-channel mapping shows).

Cost on 2 cores: random weights once per machine (~30 s, cached under pytest's cache folder by commit), then
~10 s per program launch (mostly importing torch), six launches.
"""

from __future__ import annotations

import fcntl

import numpy as np
import pytest
from click.testing import CliRunner

from stseg_cli.main import cli
from stseg_core.data.labels import encode_label_png, read_label_png
from stseg_core.data.mose import MoseSplit
from stseg_core.data.synth import SynthConfig, generate_split
from stseg_core.models.upstream import PROGRAMS
from stseg_core.models.upstream.harness import prepare_checkout, write_random_weights
from stseg_core.predictions import read_video_predictions
from stseg_core.runlayout import verify_shard
from stseg_core.store import open_store

# 96x128 frames: the programs read the top 30 memory keys at 1/16 scale, so a frame needs ≥ 30 such cells.
CFG = SynthConfig(seed=3, height=96, width=128, videos=2, min_frames=3, max_frames=4, min_objects=2, max_objects=2)
IDS = {1: 9, 2: 2}  # XMem's channel order for {2, 9} follows a Python set: 9 first


@pytest.fixture(scope="module")
def real(upstream_trees, tmp_path_factory, request):
    """Patched scratch copies of the three programs, their random weights, and the split (ids 2 and 9)."""
    root = tmp_path_factory.mktemp("upstream")
    cache = request.config.cache.mkdir("stseg-upstream-weights")
    torch_home = cache / "torch"
    homes, weights = {}, {}
    with open(cache / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest-xdist workers: one builds the weights, the others wait
        for name, program in PROGRAMS.items():
            homes[name] = prepare_checkout(name, upstream_trees / program.folder, root / program.folder)
            weights[name] = cache / f"{name}-{program.commit[:12]}.pth"
            if not weights[name].is_file() or not (torch_home / "hub" / "checkpoints").is_dir():
                write_random_weights(name, homes[name], weights[name], torch_home=torch_home)
    generate_split(root / "data", CFG, "valid")
    data = root / "data" / "valid"
    for video in MoseSplit(data).videos():
        path = data / "Annotations" / video / "00000.png"
        labels = read_label_png(path.read_bytes(), str(path))
        path.write_bytes(encode_label_png(np.vectorize(lambda v: IDS.get(v, v), otypes=[np.uint8])(labels)))
    return {"homes": homes, "weights": weights, "torch_home": torch_home, "data": data, "root": root}


def _infer(real, monkeypatch, model: str, run: str, *sets: str, checkpoint: str | None = None):
    monkeypatch.setenv("TORCH_HOME", str(real["torch_home"]))  # the random ImageNet ResNets, no download
    args = [
        "infer",
        "--model",
        model,
        "--data",
        str(real["data"]),
        "--run",
        run,
        "--set",
        "device=cpu",
        "--set",
        f"home={real['homes'][model]}",
        "--set",
        "size=96",
        "--checkpoint",
        checkpoint or str(real["weights"][model]),
    ]
    for s in sets:
        args += ["--set", s]
    return CliRunner().invoke(cli, args)


@pytest.mark.parametrize(
    "model,scores", [("cutie", True), ("cutie", False), ("xmem", True), ("xmem", False), ("livos", False)]
)
def test_real_program_writes_every_frame_scores_and_marker(real, tmp_path, monkeypatch, model, scores):
    run = str(tmp_path / "run")
    res = _infer(real, monkeypatch, model, run, f"scores={scores}")
    assert res.exit_code == 0, res.output
    store, split = open_store(run), MoseSplit(real["data"])
    assert verify_shard(store, f"pred/{model}", 0) == []
    with_probs = scores and PROGRAMS[model].score_format is not None
    objects_seen = set()
    for video in split.videos():
        info = split.video(video)
        pred = read_video_predictions(store, model, video)
        assert pred.stems == tuple(info.frames) and pred.object_ids == (2, 9)
        assert ("mean upstream probability" in pred.confidence_definition) == with_probs
        assert pred.has_probs == with_probs
        probs = dict(pred.iter_probs()) if with_probs else {}
        for stem, labels in pred.iter_labels():
            assert labels.shape == (CFG.height, CFG.width)
            assert set(np.unique(labels).tolist()) <= {0, 2, 9}
            objects_seen |= set(np.unique(labels).tolist()) - {0}
            for k, i in enumerate(pred.object_ids):
                assert pred.present[stem][i] == bool((labels == i).any())
                if with_probs and (labels == i).any():  # the channel we call object i wins where i is drawn
                    others = np.delete(probs[stem], k, axis=0)
                    assert (probs[stem][k][labels == i] >= others[:, labels == i].max(axis=0)).all()
                    assert pred.scores[stem][i] == pytest.approx(probs[stem][k][labels == i].mean() / 255, abs=1e-6)
    assert objects_seen == {2, 9}


def test_checkpoint_the_program_cannot_load_is_one_line_naming_model_video_and_weights(real, tmp_path, monkeypatch):
    """A real PyTorch checkpoint, but of another network (LiVOS weights given to XMem): XMem exits non-zero."""
    run = str(tmp_path / "run")
    wrong = real["weights"]["livos"]
    res = _infer(real, monkeypatch, "xmem", run, checkpoint=str(wrong))
    first = MoseSplit(real["data"]).videos()[0]
    assert res.exit_code == 4, res.output
    line = res.output.strip()
    assert "\n" not in line
    assert line.startswith(
        f"stseg: error: xmem video {first}: xmem program exited with code 1 while starting, "
        f"before any output (weights {wrong}) ("
    )
    assert "KeyError: 'key_proj.key_proj.weight'" in line  # the program's own last words
    assert not open_store(run).exists("pred/xmem/_done/0.json")
