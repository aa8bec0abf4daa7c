"""The synthetic benchmark the fusion tests start from: a generated dataset, the seeded fixture predictors' runs
over its splits, and the performance database built on the valid run, all under one folder."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stseg_testing.synthetic_predictors import make_run

if TYPE_CHECKING:
    from stseg_core.data.synth import SynthConfig
    from stseg_core.fusion.perfdb import PerfDB


@dataclass(frozen=True)
class FusionBench:
    """`root/<data>/<split>` (+ `<split>_gt`), one run folder `root/<run>` per run, and, when built, the database
    `root/perfdb` (`db`, read back from `uri`). `models`: the predictor names, the models to fuse."""

    root: Path
    seed: int  # the predictors' seed
    models: list[str]
    db: PerfDB | None = None
    uri: str | None = None


def make_fusion_bench(
    root: Path,
    cfg: SynthConfig,
    runs: Mapping[str, str],
    *,
    probs: Collection[str] = (),
    database: bool = False,
    data: str = "data",
    seed: int | None = None,
) -> FusionBench:
    """Generate the splits `runs` names (in their order) under `root/<data>`, write one run per `runs` entry
    (`{run folder: split}`; with soft probabilities for the runs in `probs`), then, when `database`, build the
    performance database from the `valid` run. The predictors are seeded with `seed`, by default the data's."""
    from stseg_core.data.synth import generate_dataset
    from stseg_core.fusion.stage import build_database

    generate_dataset(str(root / data), cfg, splits=tuple(dict.fromkeys(runs.values())))
    seed = cfg.seed if seed is None else seed
    models: list[str] = []
    for run, split in runs.items():
        models = make_run(root / data, split, root / run, seed, probs=run in probs)
    if not database:
        return FusionBench(root, seed, models)
    db, uri = build_database(
        str(root / "valid"), str(root / data / "valid"), str(root / data / "valid_gt"), models, str(root / "perfdb")
    )
    return FusionBench(root, seed, models, db, uri)
