"""Every kind of bad input a user can give the `stseg` CLI, each with its one-line message and exit code.

The cases below are the single source of `docs/BAD_INPUT.md`: `test_the_table_is_current` fails when the table
and the cases drift apart; regenerate it with `python tests/cli/test_bad_input.py`.

Placeholders in arguments and messages: `{tmp}` the test's folder, `{data}` a small synthetic valid split (a
copy per case, so `prep` may break it), `{file}` a regular file, `{store}` an empty store folder.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

TABLE = Path(__file__).resolve().parents[2] / "docs" / "BAD_INPUT.md"


@dataclass(frozen=True)
class Case:
    kind: str  # what the user got wrong, for the table
    args: tuple[str, ...]
    message: str  # the whole stderr line after "stseg: error: "
    code: int = 2
    prep: Callable[[Path], None] | None = None  # breaks the sandbox before the command runs


_SUBMIT = ("--store", "{store}", "--data-root", "{data}", "--run", "r")

CASES: list[Case] = [
    # -- reserved job variables: both backends build their jobs from the same specs ------------------------------
    *[Case(f"--option overriding the reserved job variable STSEG_{key.upper()} ({backend})",
           ("submit", "infer", "--models", "flowprop", "--backend", backend, "--option", f"{key}={value}",
            *_SUBMIT, *(("--dry-run",) if backend == "kubernetes" else ())),
           f"--option {key}=…: STSEG_{key.upper()} is set by stseg itself and cannot be overridden (use the "
           "matching flag, e.g. --store, --data-root, --models)")
      for backend in ("local", "kubernetes")
      for key, value in (("run_root", "s3://other-bucket/x"), ("data_root", "/elsewhere"),
                         ("s3_endpoint", "http://evil:9000"), ("model", "sam2"), ("stage", "fuse"),
                         ("num_shards", "9"))],
]


@pytest.fixture(scope="module")
def synth_split(tmp_path_factory) -> Path:
    from stseg_core.data.synth import SynthConfig, generate_split

    root = tmp_path_factory.mktemp("synth")
    generate_split(root, SynthConfig(seed=3, height=48, width=64, min_frames=4, max_frames=5, max_objects=2,
                                     videos=2), "valid")
    return root


@pytest.fixture()
def sandbox(tmp_path: Path, synth_split: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import os

    for var in [v for v in os.environ if v.startswith("STSEG_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("STSEG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.chdir(tmp_path)
    shutil.copytree(synth_split, tmp_path / "synth")
    (tmp_path / "store").mkdir()
    (tmp_path / "afile").write_text("not a folder\n")
    return tmp_path


def _fill(text: str, tmp: Path) -> str:
    return text.format(tmp=tmp, data=tmp / "synth/valid", file=tmp / "afile", store=tmp / "store")


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_input_is_one_line_naming_the_culprit(sandbox: Path, case: Case) -> None:
    from click.testing import CliRunner

    from stseg_cli.main import cli

    if case.prep:
        case.prep(sandbox)
    result = CliRunner().invoke(cli, [_fill(a, sandbox) for a in case.args])
    assert result.stderr == f"stseg: error: {_fill(case.message, sandbox)}\n", result.output
    assert result.exit_code == case.code
    assert not (sandbox / "state/runs/r").exists()  # refused before a run was recorded


def render_table() -> str:
    rows = ["# Bad input: what `stseg` says", "",
            f"Generated from `tests/cli/test_bad_input.py` ({len(CASES)} cases; `python tests/cli/test_bad_input.py`"
            " rewrites it). Every message is one line on stderr after `stseg: error: `; the exit code is 2 for bad "
            "input, 3 for a missing artifact, 4 for a backend failure.", "",
            "| # | bad input | command | message | exit |", "|---|---|---|---|---|"]
    for i, c in enumerate(CASES, 1):
        cmd = " ".join(["stseg", *c.args]).replace("|", "\\|")
        rows.append(f"| {i} | {c.kind} | `{cmd}` | {c.message.replace('|', chr(92) + '|')} | {c.code} |")
    return "\n".join(rows) + "\n"


def test_the_table_is_current() -> None:
    assert TABLE.read_text() == render_table(), "run `python tests/cli/test_bad_input.py` to regenerate"


if __name__ == "__main__":
    TABLE.write_text(render_table())
    sys.exit(0)
