"""Every kind of bad input a user can give the `stseg` CLI, each with its one-line message and exit code.

The cases below are the single source of `docs/BAD_INPUT.md`: `test_the_table_is_current` fails when the table
and the cases drift apart; regenerate it with `python tests/cli/test_bad_input.py`.

Placeholders in arguments and messages: `{tmp}` the test's folder, `{data}` a small synthetic valid split (a
copy per case, so `prep` may break it) and `{gt}` its ground truth, `{v}` its first video, `{file}` a regular file,
`{store}` an empty store folder, `{run}` a run folder (`prep=_inferred` fills it with flowprop's predictions).
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
    stream: str = "stderr"  # `data validate` lists problems on stdout, one per line
    absent: str = ""  # a path the refusal must not have written


_SUBMIT = ("--store", "{store}", "--data-root", "{data}", "--run", "r")
_INFER = ("infer", "--model", "flowprop", "--data", "{data}", "--run", "{run}")


def _first(tmp: Path, folder: str) -> Path:
    return sorted((tmp / "synth/valid" / folder).iterdir())[0]


def _inferred(tmp: Path) -> None:
    _invoke(tmp, _INFER)


def _empty_first_frame(tmp: Path) -> None:
    from stseg_core.data.labels import encode_label_png, read_label_png

    png = _first(tmp, "Annotations") / "00000.png"
    png.write_bytes(encode_label_png(read_label_png(png.read_bytes()) * 0))


def _new_id_in_gt(tmp: Path) -> None:
    from stseg_core.data.labels import encode_label_png, read_label_png

    png = tmp / "synth/valid_gt/Annotations" / _first(tmp, "Annotations").name / "00002.png"
    labels = read_label_png(png.read_bytes()).copy()
    labels[0, 0] = 9
    png.write_bytes(encode_label_png(labels))


def _gt_gap(tmp: Path) -> None:
    (tmp / "synth/valid_gt/Annotations" / _first(tmp, "Annotations").name / "00001.png").unlink()


def _zero_byte_png(tmp: Path) -> None:
    (_first(tmp, "Annotations") / "00000.png").write_bytes(b"")


def _corrupt_jpeg(tmp: Path) -> None:
    jpg = _first(tmp, "JPEGImages") / "00002.jpg"
    jpg.write_bytes(jpg.read_bytes()[:100])


_FIRST_EMPTY = (
    "file://{data}/Annotations/{v}/00000.png: the first frame of video '{v}' annotates no object (nothing to segment)"
)
_NEW_ID = (
    "file://{gt}/Annotations/{v}/00002.png: object ids [9] are absent from the first frame 00000 of video "
    "'{v}' (ids there: {ids})"
)
_GAP = "file://{gt}/Annotations/{v}: gap in frame numbers (00000 → 00002)"

CASES: list[Case] = [
    # -- reserved job variables: both backends build their jobs from the same specs ------------------------------
    *[
        Case(
            f"--option overriding the reserved job variable STSEG_{key.upper()} ({backend})",
            (
                "submit",
                "infer",
                "--models",
                "flowprop",
                "--backend",
                backend,
                "--option",
                f"{key}={value}",
                *_SUBMIT,
                *(("--dry-run",) if backend == "kubernetes" else ()),
            ),
            f"--option {key}=…: STSEG_{key.upper()} is set by stseg itself and cannot be overridden (use the "
            "matching flag, e.g. --store, --data-root, --models)",
        )
        for backend in ("local", "kubernetes")
        for key, value in (
            ("run_root", "s3://other-bucket/x"),
            ("data_root", "/elsewhere"),
            ("s3_endpoint", "http://evil:9000"),
            ("model", "sam2"),
            ("stage", "fuse"),
            ("num_shards", "9"),
        )
    ],
    # -- submit flags the job would only trip over later ---------------------------------------------------------
    *[
        Case(
            f"--deadline {d}",
            ("submit", "infer", "--models", "flowprop", "--deadline", d, *_SUBMIT),
            f"--deadline must be at least 1 second (got {d})",
        )
        for d in ("0", "-5")
    ],
    *[
        Case(
            f"--workers {w}",
            ("submit", "infer", "--models", "flowprop", "--workers", w, *_SUBMIT),
            f"--workers must be at least 1 (got {w})",
        )
        for w in ("0", "-2")
    ],
    Case(
        "--cpu that is not a quantity",
        ("submit", "infer", "--models", "flowprop", "--cpu", "abc", *_SUBMIT),
        "--cpu 'abc' is not a Kubernetes quantity (e.g. 2 or 500m)",
    ),
    Case(
        "--memory that is not a quantity",
        ("submit", "infer", "--models", "flowprop", "--memory", "lots", *_SUBMIT),
        "--memory 'lots' is not a Kubernetes quantity (e.g. 8Gi or 512Mi)",
    ),
    Case(
        "a local store for a Kubernetes submit",
        (
            "submit",
            "infer",
            "--models",
            "flowprop",
            "--backend",
            "kubernetes",
            "--store",
            "{store}",
            "--data-root",
            "s3://bucket/valid",
            "--run",
            "r",
            "--dry-run",
        ),
        "--store {store}: the kubernetes backend needs a location pods can reach (s3://bucket/prefix), not a "
        "local path",
    ),
    *[
        Case(
            f"`{cmd}` of a run id that climbs out of the runs folder",
            (cmd, "../runs/x"),
            "run id '../runs/x': use 1-30 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
        )
        for cmd in ("status", "cancel", "resume")
    ],
    Case(
        "`logs` of a run id that climbs out of the runs folder",
        ("logs", "../runs/x", "--stage", "infer"),
        "run id '../runs/x': use 1-30 characters of a-z, 0-9 and '-', starting and ending with a letter or digit",
    ),
    # -- local stages: the user's own files and folders ----------------------------------------------------------
    Case(
        "infer --scratch that does not exist",
        (*_INFER, "--scratch", "{tmp}/nope"),
        "scratch folder {tmp}/nope does not exist or is not a folder (--scratch / STSEG_SCRATCH)",
        absent="{run}/plan.json",
    ),
    Case(
        "infer --run naming a file",
        ("infer", "--model", "flowprop", "--data", "{data}", "--run", "{file}"),
        "{file}: is a file, not a folder (needed for file://{file}/plan.json)",
    ),
    Case(
        "eval --out naming a file",
        ("eval", "{gt}", "{gt}/Annotations", "--out", "{file}", "--no-progress"),
        "--out {file}: is a file, not a folder",
    ),
    Case(
        "infer on a corrupt frame: named by the user's file, not its scratch copy",
        _INFER,
        "flowprop video {v}: file://{data}/JPEGImages/{v}/00002.jpg: unreadable or corrupt image (not a complete JPEG)",
        prep=_corrupt_jpeg,
        absent="{run}/pred/flowprop/_done/0.json",
    ),
    Case(
        "fuse --gt that does not exist: refused before anything is written",
        ("fuse", "--run", "{run}", "--data", "{data}", "--models", "flowprop", "--gt", "{tmp}/nogt"),
        "file://{tmp}/nogt/Annotations/{v}: no such video",
        prep=_inferred,
        absent="{run}/fused",
    ),
    # -- one set of checks: `data validate` and the stages say the same ------------------------------------------
    Case(
        "first frame annotates no object (data validate)",
        ("data", "validate", "{data}"),
        _FIRST_EMPTY,
        prep=_empty_first_frame,
        stream="stdout",
    ),
    Case(
        "first frame annotates no object (infer: before plan.json)",
        _INFER,
        _FIRST_EMPTY,
        prep=_empty_first_frame,
        absent="{run}/plan.json",
    ),
    Case(
        "ground truth with an id absent from the first frame (data validate)",
        ("data", "validate", "{gt}"),
        _NEW_ID,
        prep=_new_id_in_gt,
        stream="stdout",
    ),
    Case(
        "ground truth with an id absent from the first frame (fuse --gt)",
        ("fuse", "--run", "{run}", "--data", "{data}", "--models", "flowprop", "--gt", "{gt}"),
        _NEW_ID,
        prep=lambda tmp: (_inferred(tmp), _new_id_in_gt(tmp)),
        absent="{run}/fused/_done/0.json",
    ),
    Case(
        "ground truth with a frame gap (data validate)",
        ("data", "validate", "{gt}"),
        _GAP,
        prep=_gt_gap,
        stream="stdout",
    ),
    Case(
        "ground truth with a frame gap (eval)",
        ("eval", "{gt}", "{gt}/Annotations", "--no-progress"),
        _GAP,
        prep=_gt_gap,
    ),
    Case(
        "0-byte annotation PNG (listed once, named)",
        ("data", "validate", "{data}"),
        "file://{data}/Annotations/{v}/00000.png: empty file (0 bytes), not a PNG",
        prep=_zero_byte_png,
        stream="stdout",
    ),
]


@pytest.fixture(scope="module")
def synth_split(tmp_path_factory) -> Path:
    from stseg_core.data.synth import SynthConfig, generate_split

    root = tmp_path_factory.mktemp("synth")
    generate_split(
        root, SynthConfig(seed=3, height=48, width=64, min_frames=4, max_frames=5, max_objects=2, videos=2), "valid"
    )
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
    from stseg_core.data.mose import MoseSplit

    split = MoseSplit(tmp / "synth/valid")
    v = split.videos()[0]
    ids = list(split.video(v).object_ids) if "{ids}" in text else None
    return text.format(
        tmp=tmp,
        data=tmp / "synth/valid",
        gt=tmp / "synth/valid_gt",
        v=v,
        file=tmp / "afile",
        store=tmp / "store",
        run=tmp / "run",
        ids=ids,
    )


def _invoke(tmp: Path, args: tuple[str, ...]):
    from click.testing import CliRunner

    from stseg_cli.main import cli

    return CliRunner().invoke(cli, [_fill(a, tmp) for a in args])


@pytest.mark.parametrize("case", CASES, ids=[c.kind for c in CASES])
def test_bad_input_is_one_line_naming_the_culprit(sandbox: Path, case: Case) -> None:
    if case.prep:
        case.prep(sandbox)
    result = _invoke(sandbox, case.args)
    line = _fill(case.message, sandbox)
    if case.stream == "stdout":
        assert result.stdout == f"{line}\n", result.output  # listed once, and nothing else wrong
    else:
        assert result.stderr == f"stseg: error: {line}\n", result.output
    assert result.exit_code == case.code
    assert not (sandbox / "state/runs/r").exists()  # refused before a run was recorded
    if case.absent:
        assert not Path(_fill(case.absent, sandbox)).exists()


def render_table() -> str:
    rows = [
        "# Bad input: what `stseg` says",
        "",
        f"Generated from `tests/cli/test_bad_input.py` ({len(CASES)} cases; `python tests/cli/test_bad_input.py`"
        " rewrites it). Every message is one line on stderr after `stseg: error: `; the exit code is 2 for bad "
        "input, 3 for a missing artifact, 4 for a backend failure.",
        "",
        "| # | bad input | command | message | exit |",
        "|---|---|---|---|---|",
    ]
    for i, c in enumerate(CASES, 1):
        cmd = " ".join(["stseg", *c.args]).replace("|", "\\|")
        rows.append(f"| {i} | {c.kind} | `{cmd}` | {c.message.replace('|', chr(92) + '|')} | {c.code} |")
    return "\n".join(rows) + "\n"


def test_the_table_is_current() -> None:
    assert TABLE.read_text() == render_table(), "run `python tests/cli/test_bad_input.py` to regenerate"


if __name__ == "__main__":
    TABLE.write_text(render_table())
    sys.exit(0)
