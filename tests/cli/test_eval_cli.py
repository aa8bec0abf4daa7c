"""`stseg eval` end to end: file:// and s3:// roots, the DAVIS CSVs it writes, exit codes on bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from stseg_cli.main import cli
from stseg_core.data.labels import encode_label_png
from stseg_core.store import open_store


def _dataset(root: Path) -> None:
    """Split `valid_gt` (Annotations/) and predictions: video a predicted perfectly, video b half wrong."""
    h, w = 48, 64
    obj = np.zeros((h, w), np.uint8)
    obj[10:30, 10:40] = 1
    obj[35:45, 50:60] = 2
    half = obj.copy()
    half[half == 2] = 0  # object 2 missed
    for video, preds in (("a", [obj] * 5), ("b", [obj, half, half, obj, obj])):
        for t in range(5):
            for folder, lab in ((root / "valid_gt" / "Annotations" / video, obj), (root / "pred" / video, preds[t])):
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{t:05d}.png").write_bytes(encode_label_png(lab))


def _invoke(*args: str):
    return CliRunner().invoke(cli, ["eval", *args, "--no-progress", "--workers", "1"], catch_exceptions=False)


def test_eval_files_prints_the_table_and_writes_davis_csvs(tmp_path):
    _dataset(tmp_path)
    res = _invoke(str(tmp_path / "valid_gt"), (tmp_path / "pred").as_uri(), "--out", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    # 4 objects: a/1, a/2, b/1 perfect; b/2 J = F = 1/3 (scored frames 1–3, missed in 1 and 2)
    want = (3 + 1 / 3) / 4
    assert lines[0].split() == ["video", "obj", "J&F", "J", "F"]
    assert lines[1].split() == ["global", "4", f"{100 * want:.1f}", f"{100 * want:.1f}", f"{100 * want:.1f}"]
    assert lines[2].split()[:3] == ["b", "2", f"{100 * (1 + 1 / 3) / 2:.1f}"]  # worst video first
    glob = list(csv.DictReader(io.StringIO((tmp_path / "out" / "global_results-valid_gt.csv").read_text())))
    assert list(glob[0]) == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert float(glob[0]["J&F-Mean"]) == pytest.approx(want, abs=5e-4)
    assert float(glob[0]["J-Recall"]) == pytest.approx((3 + 1 / 3) / 4, abs=5e-4)
    seq = list(csv.DictReader(io.StringIO((tmp_path / "out" / "per-sequence_results-valid_gt.csv").read_text())))
    assert [(r["Sequence"], r["J-Mean"], r["F-Mean"]) for r in seq] == [
        ("a_1", "1.000", "1.000"),
        ("a_2", "1.000", "1.000"),
        ("b_1", "1.000", "1.000"),
        ("b_2", "0.333", "0.333"),
    ]
    js = json.loads((tmp_path / "out" / "results.json").read_text())
    assert js["videos"]["b"]["objects"]["2"]["per_frame"]["J"] == [0.0, 0.0, 1.0]
    assert js["global"]["J-Mean"] == pytest.approx(want)


def test_eval_on_s3_roots_matches_files(tmp_path, s3_bucket):
    _dataset(tmp_path)
    base = f"s3://{s3_bucket}/data"
    open_store(base).upload_dir(tmp_path, "", workers=4)
    res = _invoke(
        f"{base}/valid_gt", f"{base}/pred", "--out", f"s3://{s3_bucket}/eval/x", "--videos", "b", "--split", "valid"
    )
    assert res.exit_code == 0, res.output
    text = open_store(f"s3://{s3_bucket}/eval/x").read_text("per-sequence_results-valid.csv")
    assert text.splitlines() == ["Sequence,J-Mean,F-Mean", "b_1,1.000,1.000", "b_2,0.333,0.333"]


def test_eval_bad_input_exit_codes(tmp_path):
    _dataset(tmp_path)
    (tmp_path / "pred" / "b" / "00003.png").unlink()
    res = CliRunner().invoke(
        cli, ["eval", str(tmp_path / "valid_gt"), str(tmp_path / "pred"), "--no-progress", "--workers", "1"]
    )
    assert res.exit_code == 3
    assert res.output.strip().count("\n") == 0 and "video b frame 00003" in res.output
    res = _invoke(str(tmp_path / "valid_gt"), str(tmp_path / "pred"), "--missing-as-empty", "--videos", "b")
    assert res.exit_code == 0 and res.output.splitlines()[1].split()[1] == "2"
    bad = np.full((48, 64), 9, np.uint8)
    (tmp_path / "pred" / "a" / "00002.png").write_bytes(encode_label_png(bad))
    res = CliRunner().invoke(
        cli,
        [
            "eval",
            str(tmp_path / "valid_gt"),
            str(tmp_path / "pred"),
            "--no-progress",
            "--videos",
            "a",
            "--workers",
            "1",
        ],
    )
    assert res.exit_code == 2 and "predicted ids [9]" in res.output


def test_eval_mosev2_table(tmp_path):
    _dataset(tmp_path)
    res = _invoke(str(tmp_path / "valid_gt"), str(tmp_path / "pred"), "--metric", "mosev2")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].split() == ["video", "obj", "J&Ḟ", "J", "Ḟ"]
    assert "J&Ḟ_d" in res.output and "(mosev2)" in res.output
