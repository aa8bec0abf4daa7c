"""`stseg demo`: the whole pipeline on synthetic MOSE-like data, on this machine, printing each command it runs.

Every step is an ordinary `stseg` command (shown as `$ stseg …`), so a newcomer can copy any of them.
The layout it leaves under OUT:

    OUT/data/{train,valid,test}/        synthetic MOSE-layout splits (valid/test: first-frame annotation)
    OUT/data/{valid,test}_gt/           their full ground truth
    OUT/store/checkpoints/<model>/demo/ finetuned SAM2 and TMO checkpoints, val.json, best
    OUT/store/runs/valid/               every model on valid → the performance database's run
    OUT/store/perfdb/                   the PGMR performance database (built on valid, never sees test)
    OUT/store/runs/test/                every model on test → PGMR fusion → eval/ (Table 2)
    OUT/report/index.html               the run's report
    OUT/state/                          the local backend's pid files and per-shard logs
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import click

from stseg_cli.main import cli
from stseg_core.models import registry
from stseg_core.names import split_names

# Every model that runs on a CPU (the upstream programs need a GPU and their released weights).
DEMO_MODELS = registry.cpu_models()


def _run(args: list[str]) -> None:
    click.secho("$ stseg " + " ".join(shlex.quote(a) for a in args), fg="cyan", bold=True)
    t0 = time.perf_counter()
    cli.main(args=args, prog_name="stseg", standalone_mode=False)
    click.secho(f"  ({time.perf_counter() - t0:.1f} s)", dim=True)


@cli.command()
@click.option(
    "--out",
    default="demo-run",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the data, the store and the report (reused: done steps are skipped).",
)
@click.option("--seed", default=7, show_default=True, help="Seed of the synthetic data set.")
@click.option("--videos", default=8, show_default=True, help="Videos per split.")
@click.option("--shards", default=2, show_default=True, help="Infer shards per model.")
@click.option("--models", default=",".join(DEMO_MODELS), show_default=True, help="Models to run and fuse.")
@click.option("--epochs", default=2, show_default=True, help="Finetune epochs (the recipe's 40 is for GPUs).")
def demo(out: str, seed: int, videos: int, shards: int, models: str, epochs: int) -> None:
    """Run the whole STSeg pipeline locally: synthetic data → finetune SAM2 and TMO → every model over
    shards → PGMR fusion → J&F → report. CPU only, no cluster, no cloud; a few minutes on 2 cores."""
    root = Path(out).resolve()
    data, store = root / "data", root / "store"
    names = split_names(models)
    # the local backend's pid files and logs live beside this demo's store, not in the user's state folder
    os.environ.setdefault("STSEG_STATE_DIR", str(root / "state"))
    t0 = time.perf_counter()
    if not (data / "meta.json").exists():
        _synthesize(data, seed, videos)
    store.mkdir(parents=True, exist_ok=True)  # finetune creates it too, but a model subset may skip finetuning
    checkpoints = [_finetune(model, data, store, epochs) for model in registry.finetunable() if model in names]
    common = _submit_flags(store, shards, names, checkpoints)
    _run(["submit", "pipeline", "--run", "valid", "--data-root", str(data / "valid"), *common])
    _build_perfdb(data, store, names)
    _run(
        [
            "submit",
            "pipeline",
            "--run",
            "test",
            "--data-root",
            str(data / "test"),
            *common,
            "--option",
            f"db={store / 'perfdb'}",
        ]
    )
    _print_table2(store)
    _run(["report", str(store / "runs" / "test"), "--data", str(data / "test"), "--out", str(root / "report")])
    click.secho(
        f"demo finished in {time.perf_counter() - t0:.0f} s; open {root / 'report' / 'index.html'}",
        fg="green",
        bold=True,
    )


def _synthesize(data: Path, seed: int, videos: int) -> None:
    """The synthetic MOSE-like splits, small enough for a CPU (240×432, 24–40 frames, 1–4 objects)."""
    _run(
        [
            "data",
            "synth",
            str(data),
            "--seed",
            str(seed),
            "--videos",
            str(videos),
            "--height",
            "240",
            "--width",
            "432",
            "--frames",
            "24-40",
            "--objects",
            "1-4",
            "--workers",
            "2",
        ]
    )


def _finetune(model: str, data: Path, store: Path, epochs: int) -> str:
    """Finetune `model` from random weights with its recipe's smoke settings; returns `model=<best checkpoint>`
    for `--checkpoints`."""
    smoke = [arg for key, value in registry.recipe_of(model).smoke for arg in ("--set", f"{key}={value}")]
    _run(
        [
            "finetune",
            "--model",
            model,
            "--data",
            str(data / "train"),
            "--out",
            str(store),
            "--run",
            "demo",
            "--init",
            "random",
            "--epochs",
            str(epochs),
            *smoke,
        ]
    )
    best = (store / "checkpoints" / model / "demo" / "best").read_text().strip()
    return f"{model}={best if '://' in best else store / 'checkpoints' / model / 'demo' / best}"


def _submit_flags(store: Path, shards: int, names: tuple[str, ...], checkpoints: list[str]) -> list[str]:
    """What the valid and the test pipeline share: local backend, the store, shards, models and their weights."""
    return [
        "--backend",
        "local",
        "--store",
        str(store),
        "--shards",
        str(shards),
        "--models",
        ",".join(names),
        "--checkpoints",
        ",".join(checkpoints),
        "--resume",
    ]


def _build_perfdb(data: Path, store: Path, names: tuple[str, ...]) -> None:
    """The PGMR performance database from the valid run (scored against valid's ground truth, never test's)."""
    _run(
        [
            "recommend",
            "build",
            "--run",
            str(store / "runs" / "valid"),
            "--data",
            str(data / "valid"),
            "--gt",
            str(data / "valid_gt"),
            "--models",
            ",".join(names),
            "--out",
            str(store / "perfdb"),
        ]
    )


def _print_table2(store: Path) -> None:
    from stseg_core.fusion.stage import saved_table

    click.secho("Table 2 on test (the videos the performance database never saw):", bold=True)
    click.echo(saved_table(str(store / "runs" / "test")))
