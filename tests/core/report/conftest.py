"""Runs the report tests build pages from: a synthetic test split fused by the real fuse stage."""

import shutil
from pathlib import Path

import pytest

from stseg_testing.fusion_bench import make_fusion_bench


def _fused_runs(root: Path, seed: int, videos: int = 5) -> tuple[str, ...]:
    """<root>/data (synthetic test split + test_gt), <root>/run fused with ground truth, <root>/nogt without;
    returns the models."""
    from stseg_core.data.synth import SynthConfig
    from stseg_core.fusion.stage import FuseConfig, run_fuse

    cfg = SynthConfig(
        seed=seed,
        height=64,
        width=96,
        min_frames=8,
        max_frames=12,
        videos=videos,
        min_objects=2,
        max_objects=3,
        noise=1.0,
    )
    models = tuple(make_fusion_bench(root, cfg, {"run": "test"}).models)
    shutil.copytree(root / "run", root / "nogt")
    run_fuse(FuseConfig(str(root / "run"), str(root / "data" / "test"), models, gt_root=str(root / "data" / "test_gt")))
    run_fuse(FuseConfig(str(root / "nogt"), str(root / "data" / "test"), models))
    return models


@pytest.fixture(scope="session")
def make_fused_runs():
    """Factory: `make_fused_runs(root, seed, videos=5)` writes the runs under `root` and returns the models."""
    return _fused_runs
