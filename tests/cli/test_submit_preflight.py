"""`stseg submit` checks each Job's inputs with the job's own parser before anything is created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from stseg_cli.main import cli


@pytest.fixture
def where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for var in [v for v in os.environ if v.startswith("STSEG_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("STSEG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "store").mkdir()
    for folder in ("Annotations", "JPEGImages"):
        (tmp_path / "train" / folder / "v0").mkdir(parents=True)
        (tmp_path / "train" / folder / "v0" / "00000.png").write_bytes(b"x")
    return ["--run", "r", "--store", str(tmp_path / "store"), "--data-root", str(tmp_path / "train"), "--dry-run"]


def test_finetune_init_must_exist(where: list[str], tmp_path: Path) -> None:
    init = tmp_path / "tmo.pt"
    bad = CliRunner().invoke(cli, ["submit", "finetune", "--model", "tmo", "--option", f"init={init}", *where])
    assert bad.exit_code == 3
    assert bad.output == f"stseg: error: tmo finetune init {init}: not found\n"
    init.write_bytes(b"weights")
    good = CliRunner().invoke(cli, ["submit", "finetune", "--model", "tmo", "--option", f"init={init}", *where])
    assert good.exit_code == 0, good.output
    assert f"STSEG_INIT: {init}" in good.stdout and good.stderr == ""


def test_a_recipe_option_is_typed_before_submit(where: list[str]) -> None:
    result = CliRunner().invoke(
        cli, ["submit", "finetune", "--model", "tmo", "--option", "init=random", "--option", "epochs=two", *where]
    )
    assert result.exit_code == 2
    assert result.output == "stseg: error: STSEG_EPOCHS='two': not an integer\n"


def test_a_data_root_without_the_layout_is_refused(where: list[str], tmp_path: Path) -> None:
    where[where.index("--data-root") + 1] = str(tmp_path / "store")
    result = CliRunner().invoke(cli, ["submit", "infer", "--models", "flowprop", *where])
    assert result.exit_code == 3
    assert result.output == (
        f"stseg: error: data root {tmp_path}/store: no Annotations/ under it (expected the "
        "MOSE layout Annotations/, JPEGImages/)\n"
    )
