"""Every fact about a model, in one frozen `ModelInfo` per name: how to build it, its options, image, GPU need,
finetune recipe, default checkpoint, whether it needs weights and whether `stseg submit` runs it by default.

The CLI, the job specs, the finetune stage, the demo and preflight all read these entries; adding a model is one
`register(ModelInfo(...))` call plus the model's own module. Builders, option classes and recipes are
"module:attribute" strings imported only when used, so listing or registering models never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import Any, Literal

from stseg_core.errors import BadInputError
from stseg_core.models.base import VOSModel

Gpu = Literal["none", "wanted", "required"]
"""none: a GPU gains nothing (no GPU requested by default); wanted: runs on a CPU, gets a GPU by default where
a backend has them; required: its program needs one (CPU only through the test shim), so it is not run by the
CPU-only demo."""


def _resolve(ref: str, what: str, model: str) -> Any:
    """The attribute a "module:attribute" string names; one-line errors name the model."""
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise BadInputError(
            f"model {model}: cannot import {module_name} ({err}); install the extra that provides it"
        ) from None
    found = getattr(module, attr, None)
    if found is None:
        raise BadInputError(f"model {model}: {module_name} has no {what} {attr!r}")
    return found


@dataclass(frozen=True)
class FinetuneRecipe:
    """How a model is finetuned: `recipe` names its recipe dataclass (the finetune options), `function` the
    finetune function `(recipe, *, data_root, store, run_id, scratch, metrics) -> TrainResult`."""

    recipe: str
    function: str
    size_option: str
    """The recipe field `stseg finetune --size` sets (sam2: its config t|s|b+|l; tmo: its input side)."""
    smoke: tuple[tuple[str, object], ...] = ()
    """Recipe options for a run of minutes on a CPU (what `stseg demo` finetunes with)."""

    def recipe_class(self, model: str) -> type:
        cls: type = _resolve(self.recipe, "recipe class", model)
        return cls

    def finetune_function(self, model: str) -> Any:
        return _resolve(self.function, "finetune function", model)


@dataclass(frozen=True)
class ModelInfo:
    """A registry entry. `builder` ("module:function") takes keyword overrides and returns a `VOSModel`;
    `options` ("module:Class") is the frozen dataclass of those overrides. `default_checkpoint` is a `file://` or
    `s3://` URI used when none is given (models never download from a hub at run time)."""

    name: str
    builder: str
    options: str
    description: str
    image: str = "fusion"
    """Image family its infer and finetune jobs run in (`images/<image>/Dockerfile`)."""
    gpu: Gpu = "none"
    needs_weights: bool = False
    """True when the model cannot run without a checkpoint (submit refuses such a job without one)."""
    default_checkpoint: str | None = None
    finetune: FinetuneRecipe | None = None
    default_set: bool = False
    """Run by `stseg submit infer|fuse|eval|pipeline` when no --models are given."""
    defaults: tuple[tuple[str, object], ...] = ()
    """Options this name presets (a variant of another model, with its own `pred/<name>/`); explicit ones win."""

    def __post_init__(self) -> None:
        for what, ref in (("builder", self.builder), ("options", self.options)):
            if ":" not in ref:
                raise BadInputError(f"model {self.name}: {what} must be 'module:attribute', got {ref!r}")
        object.__setattr__(self, "defaults", tuple(sorted(self.defaults)))

    @property
    def gets_gpu(self) -> bool:
        """Whether its infer and finetune jobs get a GPU by default on a backend that has them."""
        return self.gpu != "none"

    def options_class(self) -> type:
        cls: type = _resolve(self.options, "options class", self.name)
        return cls


_REGISTRY: dict[str, ModelInfo] = {}


def register(entry: ModelInfo) -> ModelInfo:
    """Add (or replace) a model."""
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a model (a test's own model, once the test is done)."""
    _REGISTRY.pop(name, None)


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def info(name: str) -> ModelInfo:
    """The registry entry of `name`; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BadInputError(f"unknown model {name!r} (known: {', '.join(available())})") from None


def default_set() -> tuple[str, ...]:
    """The models `stseg submit` runs when none are named, in registration order."""
    return tuple(m.name for m in _REGISTRY.values() if m.default_set)


def cpu_models() -> tuple[str, ...]:
    """The models that run on a CPU (every one whose program does not require a GPU), in registration order."""
    return tuple(m.name for m in _REGISTRY.values() if m.gpu != "required")


def finetunable() -> tuple[str, ...]:
    """The models with a finetune recipe, in registration order."""
    return tuple(m.name for m in _REGISTRY.values() if m.finetune is not None)


def recipe_of(name: str) -> FinetuneRecipe:
    """The finetune recipe of `name`; a model without one is refused, listing those that have one."""
    recipe = info(name).finetune
    if recipe is None:
        raise BadInputError(f"model {name!r} cannot be finetuned (finetunable: {', '.join(finetunable())})")
    return recipe


def check_options(name: str, overrides: dict[str, object]) -> None:
    """Refuse unknown or mistyped options of `name` (as its builder would) without building the model."""
    from stseg_core.models.options import parse_options

    entry = info(name)
    cls = entry.options_class()
    takes_checkpoint = "checkpoint" in {f.name for f in fields(cls)}
    parse_options(
        cls,
        {**dict(entry.defaults), **overrides},
        model=name,
        note="" if takes_checkpoint else "; it takes no checkpoint",
    )


def build_model(name: str, **overrides: object) -> VOSModel:
    """Import the builder of `name` and call it with its preset options, its default checkpoint when it has one
    and none is given, and `overrides` (e.g. checkpoint=…, size=…)."""
    entry = info(name)
    builder = _resolve(entry.builder, "builder", name)
    preset: dict[str, object] = dict(entry.defaults)
    if entry.default_checkpoint and not overrides.get("checkpoint"):
        preset["checkpoint"] = entry.default_checkpoint
    model: VOSModel = builder(**{**preset, **overrides})
    return model


def _flowprop(name: str, description: str, **defaults: object) -> ModelInfo:
    return ModelInfo(
        name,
        "stseg_core.models.flowprop:build",
        "stseg_core.models.flowprop:FlowPropConfig",
        description,
        defaults=tuple(defaults.items()),
    )


def _upstream(name: str, title: str, script: str) -> ModelInfo:
    return ModelInfo(
        name,
        f"stseg_core.models.upstream:build_{name}",
        "stseg_core.models.upstream:UpstreamOptions",
        f"{title} through its upstream {script} (runs in the {name} image)",
        image=name,
        gpu="required",
        needs_weights=True,
        default_set=True,
    )


register(_flowprop("flowprop", "weight-free optical-flow label propagation with forward-backward confidence"))
register(
    _flowprop(
        "flowprop-farneback",
        "flowprop variant: Farneback dense flow moves every object (errors differ from DIS)",
        flow="farneback",
        motion="dense",
    )
)
register(
    _flowprop(
        "flowprop-plain",
        "flowprop variant without colour refinement or re-acquisition of vanished objects",
        refine=False,
        reacquire=False,
    )
)
register(
    ModelInfo(
        "oneshot",
        "stseg_core.models.oneshot:build",
        "stseg_core.models.oneshot:OneShotConfig",
        "weight-free OSVOS-like tracker: a colour/texture/position pixel classifier fitted on frame 0, "
        "applied to every frame independently",
    )
)
register(
    ModelInfo(
        "stm",
        "stseg_core.models.stm:build",
        "stseg_core.models.stm:StmConfig",
        "weight-free STM-like tracker: pixel features matched to a memory of frame 0 and recent predicted "
        "frames (softmax attention readout)",
    )
)
register(
    ModelInfo(
        "sam2",
        "stseg_core.models.sam2:build",
        "stseg_core.models.sam2:Sam2Config",
        "SAM2.1 video predictor (official sam2 package), checkpoint from the store",
        image="sam2",
        gpu="wanted",
        needs_weights=True,
        default_set=True,
        finetune=FinetuneRecipe(
            "stseg_core.train.sam2_recipe:Sam2Recipe",
            "stseg_core.train.sam2_recipe:finetune_sam2",
            size_option="config",
            smoke=(("config", "t"), ("resolution", 128), ("num_frames", 3)),
        ),
    )
)
register(
    ModelInfo(
        "tmo",
        "stseg_core.models.tmo:build",
        "stseg_core.models.tmo:TMOConfig",
        "TMO: appearance + motion (optical-flow image) encoders, foreground split into ids",
        image="tmo",
        gpu="wanted",
        default_set=True,
        finetune=FinetuneRecipe(
            "stseg_core.train.tmo_recipe:TmoRecipe",
            "stseg_core.train.tmo_recipe:finetune_tmo",
            size_option="size",
            smoke=(("size", 64), ("backbone", "rn18"), ("batch_size", 4)),
        ),
    )
)
register(_upstream("cutie", "Cutie", "eval_vos.py"))
register(_upstream("xmem", "XMem", "eval.py"))
register(_upstream("livos", "LiVOS", "livos/eval.py"))
