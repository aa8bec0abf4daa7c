"""The finetune stage: model name + text options → the model's recipe (its registry entry names it) → its
finetune function. `run(FinetuneConfig, metrics) -> FinetuneResult` is what the finetune Job and
`stseg finetune` both call."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stseg_core.errors import BadInputError
from stseg_core.models import registry
from stseg_core.settings import convert_fields
from stseg_core.stages.common import Reporting

if TYPE_CHECKING:
    from stseg_core.telemetry import JobMetrics
    from stseg_core.train.loop import TrainResult


@dataclass(frozen=True)
class FinetuneConfig:
    """Finetune `model` on the training split at `data_root`; checkpoints go to
    `<store>/checkpoints/<model>/<run_id>/`. `options` are recipe fields, as values or text; `scratch` is the
    folder the stage's temporary folder goes in (None: the system's)."""

    model: str
    data_root: str
    store: str
    run_id: str
    options: Mapping[str, object] = field(default_factory=dict)
    scratch: str | None = None
    reporting: Reporting = field(default_factory=Reporting)


@dataclass(frozen=True)
class FinetuneResult:
    model: str
    train: TrainResult

    def summary(self) -> str:
        t = self.train
        resumed = f", resumed from {t.resumed_from}" if t.resumed_from else ""
        return (
            f"{self.model} finetuned to epoch {t.epochs} ({t.step} steps{resumed}); "
            f"checkpoints in {t.checkpoint_root}, best {t.best}"
        )

    def scores(self) -> list[str]:
        """One line per validated checkpoint, oldest first: its J&F (0…100)."""
        return [
            f"{key}: J&F {100 * s['J&F-Mean']:.2f}"
            for key, s in sorted(self.train.val.items(), key=lambda kv: kv[1]["epoch"])
        ]


def run(config: FinetuneConfig, metrics: JobMetrics | None = None) -> FinetuneResult:
    """The stage: the recipe parsed, then its finetune function under the job's metrics (`metrics`, else the
    config's own reporter) with a temporary folder under `scratch`."""
    if metrics is None:
        metrics = config.reporting.metrics(config.run_id, "finetune", config.model, "0")
    with metrics, tempfile.TemporaryDirectory(dir=config.scratch, prefix="stseg-finetune-") as tmp:
        train = run_finetune(
            config.model,
            config.options,
            data_root=config.data_root,
            store=config.store,
            run_id=config.run_id,
            scratch=tmp,
            metrics=metrics,
        )
    return FinetuneResult(config.model, train)


def make_recipe(model: str, options: Mapping[str, Any]) -> Any:
    """The model's recipe with `options` (strings are parsed by field type); unknown names list the known ones."""
    cls = registry.recipe_of(model).recipe_class(model)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise BadInputError(
            f"{model} finetune: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})"
        )
    values = convert_fields(cls, options, lambda name: f"finetune option {name}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise BadInputError(
            f"{model} finetune: no {', '.join(missing)} given (--option {missing[0]}=…; init is a "
            "checkpoint URI, or 'random' for smoke tests)"
        )
    return cls(**values)


def run_finetune(
    model: str,
    options: Mapping[str, Any],
    *,
    data_root: str,
    store: str,
    run_id: str,
    scratch: str | Path,
    metrics: JobMetrics | None = None,
) -> TrainResult:
    """Finetune `model` on the training split at `data_root`; checkpoints under
    `<store>/checkpoints/<model>/<run_id>/`."""
    recipe = make_recipe(model, options)
    finetune = registry.recipe_of(model).finetune_function(model)
    result: TrainResult = finetune(
        recipe, data_root=data_root, store=store, run_id=run_id, scratch=scratch, metrics=metrics
    )
    return result
