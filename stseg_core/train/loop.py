"""The epoch loop both recipes share: the checks before the first step, gradient accumulation, cosine learning
rate, checkpoint + validation every N epochs on rank 0, and resume from the store (each process's place in a
torchrun launch is `stseg_core.train.distributed`'s)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from stseg_core.train.checkpoints import RunCheckpoints, rng_state, set_rng_state
from stseg_core.train.distributed import DistEnv, barrier, pick_train_device, seed_rank

if TYPE_CHECKING:
    import torch

    from stseg_core.data.mose import MoseSplit
    from stseg_core.store import Store
    from stseg_core.telemetry import JobMetrics
    from stseg_core.train.split import VideoSplit


@dataclass(frozen=True)
class RunInputs:
    """What a recipe has settled before its first step: ranks, the run's checkpoint folder, the data, the
    recorded train/val split and the device."""

    dist: DistEnv
    ckpts: RunCheckpoints
    data: MoseSplit
    split: VideoSplit
    device: str


class RecipeSettings(Protocol):
    """What `prepare_run` reads of a recipe's settings (Sam2Recipe, TmoRecipe)."""

    @property
    def init(self) -> str: ...
    @property
    def val_fraction(self) -> float: ...
    @property
    def seed(self) -> int: ...
    @property
    def device(self) -> str: ...
    def check(self) -> None: ...


def prepare_run(
    recipe: RecipeSettings,
    model: str,
    *,
    data_root: str,
    store: Store | str,
    run_id: str,
    dist: DistEnv | None,
    min_frames: int,
) -> RunInputs:
    """The checks every recipe makes before any step, cheapest first so a bad input costs no GPU time:
    its settings, a writable store, the init checkpoint, full-video annotations; then the split is recorded."""
    from stseg_core.data.mose import MoseSplit
    from stseg_core.models.checkpoint import resolve_checkpoint
    from stseg_core.train.split import check_train_videos, recorded_split

    recipe.check()
    dist = dist or DistEnv.from_env()
    ckpts = RunCheckpoints(store, model, run_id)
    if dist.is_main:
        ckpts.check_writable()
    if recipe.init != "random":
        resolve_checkpoint(recipe.init)  # a missing init fails here, before the data is read
    data = MoseSplit(data_root)
    videos = data.videos()
    check_train_videos(data, videos, min_frames)  # before split.json is written
    split = recorded_split(ckpts.store, videos, recipe.val_fraction, seed=recipe.seed)
    return RunInputs(dist, ckpts, data, split, pick_train_device(recipe.device, dist))


def cosine_lr(start: float, progress: float, end_ratio: float = 0.1) -> float:
    """Cosine decay from `start` to `start·end_ratio` as progress goes 0 → 1 (upstream SAM2's schedule)."""
    end = start * end_ratio
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


@dataclass
class TrainParts:
    """What a recipe hands the loop.

    `model` is the bare network (its state dict is what checkpoints hold); `forward` runs it (through DDP
    when distributed) on one batch and returns the scalar loss (a tensor: reading it costs a device sync, which
    the loop does once per micro-batch); `batches(epoch)`
    yields this rank's batches of an epoch; `validate(model)` scores the weights on the held-out videos
    (rank 0 only) and returns {"J&F-Mean": …, …}; `group_lrs` names each optimizer group and its base lr.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    forward: Callable[[Any], torch.Tensor]
    batches: Callable[[int], Iterable[Any]]
    steps_per_epoch: int
    validate: Callable[[torch.nn.Module], dict[str, float]]
    group_lrs: tuple[tuple[str, float], ...]
    arch: dict[str, Any]
    recipe: dict[str, Any]
    grad_clip: float | None = None
    lr_end_ratio: float = 0.1
    train_mode: Callable[[], None] | None = None
    """Puts the model in training mode at each epoch (default `model.train()`; TMO keeps its BN in eval)."""
    no_sync: Callable[[], AbstractContextManager[Any]] = nullcontext
    """Wraps the micro-batches that do not step (`distributed.sync_skipper`: DDP's `no_sync` under torchrun)."""


@dataclass
class TrainResult:
    """What a finetune run did; `epoch_losses` are mean step losses of the epochs this process ran,
    `step_seconds` the wall time of each optimizer step (data loading included), `val_seconds` of each
    validation (rank 0)."""

    checkpoint_root: str
    epochs: int
    step: int
    resumed_from: str | None
    epoch_losses: list[float] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    val: dict[str, dict[str, float]] = field(default_factory=dict)
    best: str | None = None
    step_seconds: list[float] = field(default_factory=list)
    val_seconds: list[float] = field(default_factory=list)


class Schedule(Protocol):
    """The recipe fields the epoch loop reads (both recipes have them)."""

    @property
    def epochs(self) -> int: ...
    @property
    def checkpoint_every(self) -> int: ...
    @property
    def grad_accum(self) -> int: ...
    @property
    def seed(self) -> int: ...


def run_epochs(
    parts: TrainParts,
    ckpts: RunCheckpoints,
    schedule: Schedule,
    dist: DistEnv,
    metrics: JobMetrics | None = None,
) -> TrainResult:
    """Train to `schedule.epochs`, resuming from the run's latest checkpoint; save and validate every
    `checkpoint_every` epochs and at the last one."""
    epochs, checkpoint_every, grad_accum = schedule.epochs, schedule.checkpoint_every, schedule.grad_accum
    result = _resume(parts, ckpts, schedule.seed, dist)
    step, first_epoch = result.step, result.epochs + 1
    total_steps = max(1, epochs * parts.steps_per_epoch)
    params = [p for p in parts.model.parameters() if p.requires_grad]
    for epoch in range(first_epoch, epochs + 1):
        if metrics:
            metrics.set("stseg_train_epoch", epoch)
        (parts.train_mode or parts.model.train)()
        losses: list[float] = []
        parts.optimizer.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        for i, batch in enumerate(parts.batches(epoch)):
            steps_now = (i + 1) % grad_accum == 0
            with nullcontext() if steps_now else parts.no_sync():
                loss = parts.forward(batch)
                (loss / grad_accum).backward()  # type: ignore[no-untyped-call]  # torch's backward is unannotated
            losses.append(float(loss.detach()))
            if not steps_now:
                continue
            _optimizer_step(parts, params, step / total_steps, metrics)
            step += 1
            result.step_seconds.append(time.perf_counter() - t0)
            if metrics:
                metrics.set("stseg_train_step_seconds", result.step_seconds[-1])
                metrics.set("stseg_train_loss", losses[-1])
                metrics.set("stseg_train_step", step)
                metrics.gpu_memory()
            t0 = time.perf_counter()
        result.epoch_losses.append(sum(losses) / max(1, len(losses)))
        result.epochs, result.step = epoch, step
        if epoch % checkpoint_every and epoch != epochs:
            continue
        if dist.is_main:
            _save_and_validate(parts, ckpts, epoch, step, result, metrics)
        barrier(dist)
    result.val = ckpts.val_scores()
    result.best = ckpts.best()
    return result


def _resume(parts: TrainParts, ckpts: RunCheckpoints, seed: int, dist: DistEnv) -> TrainResult:
    """Model, optimizer and RNG as the run's latest checkpoint left them, so a restarted Job continues where it
    stopped; the result so far (epoch 0, step 0 when the run has no checkpoint yet).

    The saved RNG state is rank 0's (only rank 0 saves): under torchrun every rank is then re-seeded with
    `seed + epoch·world_size + rank`, distinct per rank and from the first epoch's `seed + rank`. Such a resume
    is reproducible for a given world size but does not replay the draws of an uninterrupted run."""
    start = ckpts.latest()
    if start is None:
        return TrainResult(ckpts.uri(), 0, 0, None)
    parts.model.load_state_dict(start.payload["model"], strict=True)
    parts.optimizer.load_state_dict(start.payload["optimizer"])
    set_rng_state(start.payload["rng"])
    if dist.world_size > 1:
        seed_rank(seed + start.epoch * dist.world_size, dist)
    return TrainResult(ckpts.uri(), start.epoch, start.step, ckpts.uri(start.key))


def _optimizer_step(
    parts: TrainParts, params: list[torch.nn.Parameter], progress: float, metrics: JobMetrics | None
) -> None:
    """One update at `progress` (0 → 1) through the run: each group's cosine lr, the gradient clip, the step,
    then the gradients cleared for the next accumulation."""
    import torch

    for group, (name, base) in zip(parts.optimizer.param_groups, parts.group_lrs, strict=True):
        group["lr"] = cosine_lr(base, progress, parts.lr_end_ratio)
        if metrics:
            metrics.set("stseg_train_lr", group["lr"], group=name)
    if parts.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, parts.grad_clip)
    parts.optimizer.step()
    parts.optimizer.zero_grad(set_to_none=True)


def _save_and_validate(
    parts: TrainParts, ckpts: RunCheckpoints, epoch: int, step: int, result: TrainResult, metrics: JobMetrics | None
) -> None:
    """Validation first, then the checkpoint, then val.json/best: a checkpoint in the store is always one whose
    score is about to be recorded, and a resumed run re-scores nothing."""
    state = {k: v.detach().cpu() for k, v in parts.model.state_dict().items()}
    t0 = time.perf_counter()
    scores = parts.validate(parts.model)
    result.val_seconds.append(time.perf_counter() - t0)
    payload = {
        "model": state,
        "arch": parts.arch,
        "epoch": epoch,
        "step": step,
        "optimizer": parts.optimizer.state_dict(),
        "rng": rng_state(),
        "recipe": parts.recipe,
    }
    result.saved.append(ckpts.save(epoch, payload))
    ckpts.record_val(epoch, scores)
    if metrics:
        metrics.set("stseg_val_jf", 100.0 * scores["J&F-Mean"], epoch=str(epoch))
