"""Model names → how to build them. Builders are "module:function" strings imported only when used, so
listing or registering models never imports torch or sam2."""

from __future__ import annotations

import importlib

from stseg_core.errors import BadInputError
from stseg_core.models.base import ModelSpec, VOSModel

_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, builder: str, *, description: str, default_checkpoint: str | None,
             needs_gpu: bool, defaults: dict[str, object] | None = None, needs_weights: bool = False) -> ModelSpec:
    """Add (or replace) a model. `builder` is "package.module:function"; the function takes keyword
    overrides and returns a `VOSModel`. `defaults` preset options, so a variant gets a name of its own (its
    own `pred/<name>/`, its own row in the performance database)."""
    if ":" not in builder:
        raise BadInputError(f"model {name}: builder must be 'module:function', got {builder!r}")
    spec = ModelSpec(name=name, builder=builder, description=description,
                     default_checkpoint=default_checkpoint, needs_gpu=needs_gpu,
                     defaults=tuple(sorted((defaults or {}).items())), needs_weights=needs_weights)
    _REGISTRY[name] = spec
    return spec


def available() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def spec(name: str) -> ModelSpec:
    """The registry entry of `name`; an unknown name lists the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BadInputError(f"unknown model {name!r} (known: {', '.join(available())})") from None


def build_model(name: str, **overrides) -> VOSModel:
    """Import the builder of `name` and call it with `overrides` (e.g. checkpoint=…, size=…)."""
    entry = spec(name)
    module_name, func_name = entry.builder.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise BadInputError(f"model {name}: cannot import {module_name} ({err}); "
                            "install the extra that provides it") from None
    builder = getattr(module, func_name, None)
    if builder is None:
        raise BadInputError(f"model {name}: {module_name} has no builder {func_name!r}")
    return builder(**{**dict(entry.defaults), **overrides})


register("flowprop", "stseg_core.models.flowprop:build", default_checkpoint=None, needs_gpu=False,
         description="weight-free optical-flow label propagation with forward-backward confidence")
register("flowprop-farneback", "stseg_core.models.flowprop:build", default_checkpoint=None, needs_gpu=False,
         defaults={"flow": "farneback", "motion": "dense"},
         description="flowprop variant: Farneback dense flow moves every object (errors differ from DIS)")
register("flowprop-plain", "stseg_core.models.flowprop:build", default_checkpoint=None, needs_gpu=False,
         defaults={"refine": False, "reacquire": False},
         description="flowprop variant without colour refinement or re-acquisition of vanished objects")
register("oneshot", "stseg_core.models.oneshot:build", default_checkpoint=None, needs_gpu=False,
         description="weight-free OSVOS-like tracker: a colour/texture/position pixel classifier fitted on frame 0, "
                     "applied to every frame independently")
register("stm", "stseg_core.models.stm:build", default_checkpoint=None, needs_gpu=False,
         description="weight-free STM-like tracker: pixel features matched to a memory of frame 0 and recent "
                     "predicted frames (softmax attention readout)")
register("sam2", "stseg_core.models.sam2:build", default_checkpoint=None, needs_gpu=False, needs_weights=True,
         description="SAM2.1 video predictor (official sam2 package), checkpoint from the store")
register("tmo", "stseg_core.models.tmo:build", default_checkpoint=None, needs_gpu=False,
         description="TMO: appearance + motion (optical-flow image) encoders, foreground split into ids")
register("cutie", "stseg_core.models.upstream:build_cutie", default_checkpoint=None, needs_gpu=True, needs_weights=True,
         description="Cutie through its upstream eval_vos.py (runs in the cutie image)")
register("xmem", "stseg_core.models.upstream:build_xmem", default_checkpoint=None, needs_gpu=True, needs_weights=True,
         description="XMem through its upstream eval.py (runs in the xmem image)")
register("livos", "stseg_core.models.upstream:build_livos", default_checkpoint=None, needs_gpu=True, needs_weights=True,
         description="LiVOS through its upstream livos/eval.py (runs in the livos image)")
