"""A stage is its job module: `stseg submit` finds every `stseg_jobs` module that declares `SUBMIT`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import stseg_jobs
from stseg_cli.job_stages import stages
from stseg_cli.main import cli

# A whole new stage as one file: what it is called in `stseg submit`, that it is sharded, and its preflight.
_TALLY = '''
"""`python -m stseg_jobs.tally`: counts what one shard of the split holds (a stage a test adds)."""

from stseg_jobs._env import Submit

SUBMIT = Submit("tally", order=50, sharded=True)
CHECKED = []


def check(env, pre):
    CHECKED.append(dict(env))
'''


def test_the_stages_are_the_job_modules_in_pipeline_order() -> None:
    assert {name: (s.module, s.job_name) for name, s in stages().items()} == {
        "finetune": ("stseg_jobs.finetune", "finetune"),
        "infer": ("stseg_jobs.infer", "infer"),
        "fuse": ("stseg_jobs.fuse", "fuse"),
        "eval": ("stseg_jobs.evaluate", "evaluate"),
    }
    assert list(stages()) == ["finetune", "infer", "fuse", "eval"]


@pytest.fixture()
def tally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tally stage's job module, found where stseg_jobs' modules are looked for."""
    (tmp_path / "tally.py").write_text(_TALLY)
    monkeypatch.setattr(stseg_jobs, "__path__", [*stseg_jobs.__path__, str(tmp_path)])
    stages.cache_clear()
    yield
    stages.cache_clear()
    sys.modules.pop("stseg_jobs.tally", None)


def test_a_new_job_module_is_submitted_with_no_other_change(tally: None, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"STSEG_CONFIG": "", "STSEG_STATE_DIR": str(tmp_path / "state")}
    listing = runner.invoke(cli, ["submit", "--help"], env=env)
    assert "tally" in listing.output and "counts what one shard" in listing.output
    flags = runner.invoke(cli, ["submit", "tally", "--help"], env=env).output
    assert "--shards" in flags and "--models" not in flags  # sharded, not one job per model
    where = ["--backend", "local", "--store", str(tmp_path / "store"), "--data-root", str(tmp_path / "data")]
    result = runner.invoke(
        cli, ["submit", "tally", "--shards", "3", *where, "--run", "r1", "--dry-run", "-o", "json"], env=env
    )
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert (job["name"], job["shards"], job["command"][1:]) == ("stseg-r1-tally", 3, ["-m", "stseg_jobs.tally"])
    assert (job["env"]["STSEG_STAGE"], job["env"]["JOB_COMPLETION_INDEX"]) == ("tally", "0..2")
    # the submit ran the new job's own preflight on the environment each shard gets
    checked = sys.modules["stseg_jobs.tally"].CHECKED
    assert [(e["STSEG_NUM_SHARDS"], e["STSEG_RUN_ROOT"]) for e in checked] == [("3", str(tmp_path / "store/runs/r1"))]
