"""`stseg fuse` prints Table 2; `stseg recommend build/show` make and print the performance database."""

import json

import pytest
from click.testing import CliRunner

from stseg_cli.main import cli
from stseg_testing.fusion_bench import make_fusion_bench

SEED = 11


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from stseg_core.data.synth import SynthConfig

    root = tmp_path_factory.mktemp("fusecli")
    cfg = SynthConfig(
        seed=SEED, height=64, width=96, min_frames=8, max_frames=10, videos=3, min_objects=2, max_objects=3
    )
    return root, ",".join(make_fusion_bench(root, cfg, {"valid": "valid", "test": "test"}).models)


def test_recommend_build_show_and_fuse_table(bench):
    root, models = bench
    runner = CliRunner()
    built = runner.invoke(
        cli,
        [
            "recommend",
            "build",
            "--run",
            str(root / "valid"),
            "--data",
            str(root / "data/valid"),
            "--gt",
            str(root / "data/valid_gt"),
            "--models",
            models,
            "--out",
            str(root / "db"),
        ],
    )
    assert built.exit_code == 0, built.output
    assert "perfdb" not in built.output and "db/v0001.json" in built.output
    shown = runner.invoke(cli, ["recommend", "show", str(root / "db")])
    assert shown.exit_code == 0 and "performance database v1" in shown.output and "recommender:" in shown.output
    fuse = ["fuse", "--run", str(root / "test"), "--data", str(root / "data/test"), "--models", models]
    fuse += ["--gt", str(root / "data/test_gt"), "--db", str(root / "db")]
    fused = runner.invoke(cli, fuse)
    assert fused.exit_code == 0, fused.output
    lines = fused.output.splitlines()
    assert lines[0].split() == ["method", "J&F", "J", "F"]
    assert [ln.split()[0] for ln in lines[1:5]] == models.split(",")
    assert lines[5].startswith("bbox-average") and lines[6].startswith("bbox-max")
    assert lines[7].startswith("pseudo-label (vote only)") and lines[8].startswith("PGMR (kept output)")
    assert "kept per video: pgmr-fused" in lines[9]
    per_video = runner.invoke(cli, [*fuse, "--choose", "video", "--raw-confidences"])
    assert per_video.exit_code == 0, per_video.output
    entries = json.loads((root / "test" / "recommend.json").read_text())["videos"].values()
    assert entries and not any(e["reason"].startswith("vote only") for e in entries)


def test_fuse_errors_are_one_line(bench):
    root, models = bench
    res = CliRunner().invoke(
        cli, ["fuse", "--run", str(root / "test"), "--data", str(root / "data/test"), "--models", models + ",sam2"]
    )
    assert res.exit_code == 3
    assert res.output.strip().count("\n") == 0 and "sam2 shard(s) 0, 1 of 2 not done" in res.output
    res = CliRunner().invoke(
        cli,
        [
            "fuse",
            "--run",
            str(root / "test"),
            "--data",
            str(root / "data/test"),
            "--models",
            models,
            "--choose",
            "frame",
        ],
    )
    assert res.exit_code != 0 and res.output.strip().count("\n") == 0 and "unknown PGMR choice 'frame'" in res.output
    res = CliRunner().invoke(cli, ["recommend", "show", str(root / "nowhere")])
    assert res.exit_code == 3 and "not found" in res.output
