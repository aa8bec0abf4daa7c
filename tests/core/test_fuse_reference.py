"""The fuse stage writes exactly the reference outputs: the guard any rewrite of it (a streaming or sharded fuse)
must pass byte for byte.

`tests/core/data/fuse_reference.json` holds the sha256 of every file the fuse stage wrote on three runs of the
synthetic fixtures (with a database and ground truth; without either; with soft probabilities), captured with
the whole-video implementation (recaptured once when PGMR's recommendation record gained its per-span fields).
It is rewritten only with STSEG_REGEN_FUSE_REFERENCE=1 (then explain the diff in the commit).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from stseg_core.fusion.stage import FuseConfig, build_database, run_fuse
from stseg_core.store import open_store

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "data" / "fuse_reference.json"
FIXTURES = HERE.parent / "fixtures" / "synthetic_predictors.py"
SEED = 3


def _fixtures():
    spec = importlib.util.spec_from_file_location("synthetic_predictors_reference", FIXTURES)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
def runs(tmp_path_factory) -> dict[str, dict[str, str]]:
    from stseg_core.data.synth import SynthConfig, generate_dataset

    fixtures = _fixtures()
    root = tmp_path_factory.mktemp("fuse-reference")
    cfg = SynthConfig(
        seed=SEED, height=72, width=112, min_frames=10, max_frames=14, videos=4, min_objects=2, max_objects=3, noise=1.0
    )
    generate_dataset(str(root / "data"), cfg, splits=("valid", "test"))
    models = fixtures.make_run(root / "data", "valid", root / "valid", SEED)
    fixtures.make_run(root / "data", "test", root / "test", SEED)
    fixtures.make_run(root / "data", "test", root / "probs", SEED, probs=True)
    _db, uri = build_database(
        str(root / "valid"), str(root / "data" / "valid"), str(root / "data" / "valid_gt"), models, str(root / "perfdb")
    )
    shutil.copytree(root / "test", root / "plain")
    data, gt = str(root / "data" / "test"), str(root / "data" / "test_gt")
    run_fuse(FuseConfig(str(root / "test"), data, tuple(models), gt_root=gt, db_uri=uri))
    run_fuse(FuseConfig(str(root / "plain"), data, tuple(models)))
    run_fuse(FuseConfig(str(root / "probs"), data, tuple(models), gt_root=gt, db_uri=uri))
    return {case: _outputs(root / case) for case in ("test", "plain", "probs")}


def test_fuse_writes_the_reference_outputs(runs: dict[str, dict[str, str]]) -> None:
    if os.environ.get("STSEG_REGEN_FUSE_REFERENCE") == "1":
        REFERENCE.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
    reference = json.loads(REFERENCE.read_text())
    for case, files in reference.items():
        assert len(files) > 50
        assert runs[case].keys() == files.keys(), case
        differ = sorted(k for k in files if runs[case][k] != files[k])
        assert not differ, f"{case}: {len(differ)} files differ from the reference, e.g. {differ[:3]}"
