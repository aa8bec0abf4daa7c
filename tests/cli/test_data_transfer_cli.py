"""`stseg data upload/download` against the local S3 server, through click, with their one-line errors."""

import os

from click.testing import CliRunner

from stseg_cli.main import cli


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_upload_then_download_round_trip(s3_bucket, tmp_path):
    src = tmp_path / "split"
    for rel, size in {"JPEGImages/v/00000.jpg": 5000, "Annotations/v/00000.png": 300, "meta.json": 20}.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(os.urandom(size))
    runner = CliRunner()
    up = runner.invoke(cli, ["data", "upload", str(src), f"s3://{s3_bucket}/data/train", "--workers", "3"])
    assert up.exit_code == 0, up.output
    assert "uploaded 3 files" in up.output and f"to s3://{s3_bucket}/data/train in" in up.output
    assert f"upload → s3://{s3_bucket}/data/train" in up.output  # the progress bar (stderr)
    down = runner.invoke(
        cli, ["data", "download", f"s3://{s3_bucket}/data/train", str(tmp_path / "back"), "--no-progress"]
    )
    assert down.exit_code == 0, down.output
    assert "downloaded 3 files" in down.output
    assert _tree(tmp_path / "back") == _tree(src)


def test_errors_are_one_line_with_exit_codes(s3_bucket, tmp_path):
    runner = CliRunner()
    (tmp_path / "d").mkdir()
    bad = runner.invoke(cli, ["data", "upload", str(tmp_path / "d"), "s3:///no-bucket"])
    assert (bad.exit_code, bad.output) == (
        2,
        "stseg: error: s3:///no-bucket: an S3 URI needs a bucket (s3://bucket/prefix)\n",
    )
    empty = runner.invoke(cli, ["data", "download", f"s3://{s3_bucket}/nothing", str(tmp_path / "out")])
    assert (empty.exit_code, empty.output) == (
        3,
        f"stseg: error: s3://{s3_bucket}/nothing: nothing stored there to download\n",
    )
    scheme = runner.invoke(cli, ["data", "download", "ftp://x/y", str(tmp_path / "out")])
    assert scheme.exit_code == 2 and "unsupported store scheme 'ftp'" in scheme.output
