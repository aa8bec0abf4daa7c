"""The finetune stage: model name + text options → a recipe → its finetune function (shared by job and CLI)."""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stseg_core.errors import BadInputError

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


def _parse(name: str, kind: Any, text: str) -> Any:
    """Text → the field's type (int, float, bool, str; tuples written comma-separated, or ';'-separated for
    strings such as hydra overrides, which hold commas themselves)."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        inner = typing.get_args(kind)[0]
        parts = [p for p in (s.strip() for s in text.split(";" if inner is str else ",")) if p]
        return tuple(_parse(name, inner, p) for p in parts)
    if kind is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise BadInputError(f"finetune option {name}={text!r}: not a boolean (true/false)")
    try:
        return kind(text)
    except ValueError:
        raise BadInputError(f"finetune option {name}={text!r}: not a{'n' if kind is int else ''} "
                            f"{kind.__name__}") from None


def make_recipe(model: str, options: Mapping[str, Any]):
    """The model's recipe with `options` (strings are parsed by field type); unknown names list the known ones."""
    cls = recipe_class(model)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise BadInputError(f"{model} finetune: unknown option(s) {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(fields))})")
    values = {k: _parse(k, hints[k], v) if isinstance(v, str) and hints[k] is not str else v
              for k, v in options.items()}
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


def store_of_run_root(run_root: str) -> str:
    """`<store>/runs/<run-id>` → `<store>` (checkpoints live beside runs/, not inside a run)."""
    head, _, run_id = run_root.rstrip("/").rpartition("/")
    parent, _, runs = head.rpartition("/")
    if runs != "runs" or not run_id or not parent:
        raise BadInputError(f"run root {run_root}: expected <store>/runs/<run-id> (or give the store explicitly)")
    return parent
