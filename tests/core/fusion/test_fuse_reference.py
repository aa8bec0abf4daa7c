"""The fuse stage writes exactly the reference outputs: the guard any rewrite of it (a streaming or sharded fuse)
must pass byte for byte.

`tests/core/fusion/data/fuse_reference.json` holds the sha256 of every file the fuse stage wrote on runs of the
synthetic fixtures (with a database and ground truth; without either; with soft probabilities), captured with
the whole-video implementation (recaptured once when PGMR's recommendation record gained its per-span fields).
The cases of PGMR's other choices were added, from the same whole-video implementation, before the streaming
rewrite: raw confidences, and per video / per span / per span with soft probabilities on longer videos (24–32
frames) with a database whose history rates the pseudo-label 20 J&F lower and predicts with knn+agreement, so
models are kept, spans are cut and ids are renamed at span borders (`test_the_choice_cases_keep_models_and_cut_spans`).
It is rewritten only with STSEG_REGEN_FUSE_REFERENCE=1 (then explain the diff in the commit).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from stseg_core.fusion.perfdb import FUSED, load_perfdb, save_perfdb
from stseg_core.fusion.stage import FuseConfig, run_fuse
from stseg_core.store import open_store
from stseg_testing.fusion_bench import FusionBench, make_fusion_bench
from stseg_testing.synthetic_predictors import make_run

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "data" / "fuse_reference.json"
CASES = ("test", "plain", "probs", "raw", "video", "span", "span-probs")


def _outputs(run: Path) -> dict[str, str]:
    """sha256 of everything the fuse stage wrote, with the temporary folder's path replaced by `<root>` (eval
    files name their sources); of the done marker only its file list (its timestamp changes)."""
    store = open_store(run)
    out = {}
    for key in store.list():
        if key.startswith(("fused/", "eval/")) or key == "recommend.json":
            data = store.read_bytes(key).replace(str(run.parent).encode(), b"<root>")
            if key == "fused/_done/0.json":
                data = json.dumps(json.loads(data)["files"], sort_keys=True).encode()
            out[key] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture(scope="module")
def root(fusion_bench: FusionBench) -> Path:
    return fusion_bench.root


@pytest.fixture(scope="module")
def runs(fusion_bench: FusionBench) -> dict[str, dict[str, str]]:
    root, models, uri = fusion_bench.root, fusion_bench.models, fusion_bench.uri
    make_run(root / "data", "test", root / "probs", fusion_bench.seed, probs=True)
    shutil.copytree(root / "test", root / "plain")
    shutil.copytree(root / "test", root / "raw")
    data, gt = str(root / "data" / "test"), str(root / "data" / "test_gt")
    run_fuse(FuseConfig(str(root / "test"), data, tuple(models), gt_root=gt, db_uri=uri))
    run_fuse(FuseConfig(str(root / "plain"), data, tuple(models)))
    run_fuse(FuseConfig(str(root / "probs"), data, tuple(models), gt_root=gt, db_uri=uri))
    run_fuse(FuseConfig(str(root / "raw"), data, tuple(models), gt_root=gt, db_uri=uri, calibrate=False))
    _choice_runs(fusion_bench)
    return {case: _outputs(root / case) for case in CASES}


def _choice_runs(bench: FusionBench) -> None:
    """The per-video and per-span cases (see the module docstring), on a longer dataset `long/`."""
    from stseg_core.data.synth import SynthConfig

    cfg = SynthConfig(
        seed=5, height=72, width=112, min_frames=24, max_frames=32, videos=4, min_objects=2, max_objects=3, noise=1.0
    )
    root, models, uri = bench.root, bench.models, bench.uri
    runs = {"video": "test", "span-probs": "test"}
    make_fusion_bench(root, cfg, runs, probs={"span-probs"}, data="long", seed=bench.seed)
    shutil.copytree(root / "video", root / "span")
    db = load_perfdb(uri)
    lowered = tuple(replace(r, jf={**r.jf, FUSED: r.jf[FUSED] - 20}) for r in db.records)
    choosy = save_perfdb(
        open_store(root / "choosy"),
        replace(db, records=lowered, selection={**db.selection, "method": "knn+agreement"}),
        prefix="",
    )
    data, gt = str(root / "long" / "test"), str(root / "long" / "test_gt")
    for case in ("video", "span", "span-probs"):
        run_fuse(
            FuseConfig(str(root / case), data, tuple(models), gt_root=gt, db_uri=choosy, choose=case.split("-")[0])
        )


def test_fuse_writes_the_reference_outputs(runs: dict[str, dict[str, str]]) -> None:
    if os.environ.get("STSEG_REGEN_FUSE_REFERENCE") == "1":
        REFERENCE.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    reference = json.loads(REFERENCE.read_text())
    for case, files in reference.items():
        assert len(files) > 50
        assert runs[case].keys() == files.keys(), case
        differ = sorted(k for k in files if runs[case][k] != files[k])
        assert not differ, f"{case}: {len(differ)} files differ from the reference, e.g. {differ[:3]}"


def test_the_choice_cases_keep_models_and_cut_spans(root: Path, runs: dict[str, dict[str, str]]) -> None:
    """The per-choice cases exercise what they are there for: models kept, several spans, renamed ids."""
    video = open_store(root / "video").read_json("recommend.json")["videos"]
    assert {e["choice"] for e in video.values()} - {FUSED}
    for case in ("span", "span-probs"):
        spans = [
            sp for e in open_store(root / case).read_json("recommend.json")["videos"].values() for sp in e["spans"]
        ]
        assert len(spans) > 4 and any(sp["rename"] for sp in spans), case
        assert {sp["choice"] for sp in spans} - {FUSED}, case
    assert runs["raw"]["fused/_done/0.json"] != runs["test"]["fused/_done/0.json"]  # raw confidences vote otherwise
