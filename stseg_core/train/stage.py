"""The finetune stage: model name + text options → a recipe → its finetune function (shared by job and CLI)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stseg_core.errors import BadInputError
from stseg_core.settings import convert_fields

if TYPE_CHECKING:
    from stseg_core.telemetry import JobMetrics
    from stseg_core.train.loop import TrainResult

# model → (module, recipe class, finetune function)
RECIPES: dict[str, tuple[str, str, str]] = {
    "sam2": ("stseg_core.train.sam2_recipe", "Sam2Recipe", "finetune_sam2"),
    "tmo": ("stseg_core.train.tmo_recipe", "TmoRecipe", "finetune_tmo"),
}


def recipe_class(model: str) -> type:
    if model not in RECIPES:
        raise BadInputError(f"model {model!r} cannot be finetuned (finetunable: {', '.join(RECIPES)})")
    module, cls, _ = RECIPES[model]
    return getattr(importlib.import_module(module), cls)


def make_recipe(model: str, options: Mapping[str, Any]):
    """The model's recipe with `options` (strings are parsed by field type); unknown names list the known ones."""
    cls = recipe_class(model)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise BadInputError(f"{model} finetune: unknown option(s) {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(fields))})")
    values = convert_fields(cls, options, lambda name: f"finetune option {name}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise BadInputError(f"{model} finetune: no {', '.join(missing)} given (--option {missing[0]}=…; init is a "
                            "checkpoint URI, or 'random' for smoke tests)")
    return cls(**values)


def run_finetune(model: str, options: Mapping[str, Any], *, data_root: str, store: str, run_id: str,
                 scratch: str | Path, metrics: JobMetrics | None = None) -> TrainResult:
    """Finetune `model` on the training split at `data_root`; checkpoints under
    `<store>/checkpoints/<model>/<run_id>/`."""
    recipe = make_recipe(model, options)
    module, _, func = RECIPES[model]
    return getattr(importlib.import_module(module), func)(recipe, data_root=data_root, store=store, run_id=run_id,
                                                          scratch=scratch, metrics=metrics)

