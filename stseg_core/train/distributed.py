"""Where one torchrun process stands and what it trains on: its rank and device, the process group, its share
of the data, and DDP around the model. Both recipes and `loop.run_epochs` use it; without torchrun every
helper reduces to the single-process case."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from stseg_core.errors import BadInputError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader, DistributedSampler


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a torchrun launch (world_size 1 without torchrun).

    torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; the Kubernetes backend runs `torchrun --standalone
    --nproc_per_node=<gpus>` in one pod, the local backend plain `python -m`.
    """

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DistEnv:
        env = os.environ if env is None else env
        return cls(int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_train_device(requested: str, dist: DistEnv) -> str:
    """`auto` → the rank's own GPU when there is one, else CPU."""
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and dist.world_size > 1:
        return f"cuda:{dist.local_rank}"
    return requested


def init_distributed(dist: DistEnv, device: str) -> None:
    """One process group per launch: NCCL between GPUs, gloo on CPU (tests and laptops). The timeout covers
    rank 0's validation pass, which the other ranks wait for at a barrier."""
    import datetime

    import torch.distributed as tdist

    if dist.world_size > 1 and not tdist.is_initialized():
        if device.startswith("cuda"):
            import torch

            torch.cuda.set_device(device)
        tdist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=datetime.timedelta(hours=3))


def barrier(dist: DistEnv) -> None:
    if dist.world_size > 1:
        import torch.distributed as tdist

        tdist.barrier()


class MapDataset(Protocol):
    """A map-style dataset. Ours (`tmo_recipe.FrameSamples`) does not subclass torch's Dataset, so that its
    module imports without torch; torch's stubs want the subclass, hence the ignores below."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Any: ...


def seed_rank(seed: int, dist: DistEnv) -> None:
    """Seed every generator training draws from (torch, python's `random`, numpy's global) with `seed + rank`.
    SAM2's training transforms and its clip and object sampling draw from python's `random`: seeding torch alone
    left two finetunes of one recipe different."""
    import random

    import numpy as np
    import torch

    torch.manual_seed(seed + dist.rank)
    random.seed(seed + dist.rank)
    np.random.seed(seed + dist.rank)


def rank_sampler(dataset: MapDataset, dist: DistEnv, seed: int) -> DistributedSampler[Any]:
    """This rank's share of `dataset`, reshuffled each epoch from `seed`; the ragged tail is dropped so that
    every rank takes the same number of steps."""
    from torch.utils.data import DistributedSampler

    return DistributedSampler(
        dataset,  # type: ignore[arg-type]
        num_replicas=dist.world_size,
        rank=dist.rank,
        shuffle=True,
        seed=seed,
        drop_last=True,
    )


class Batching(Protocol):
    """The recipe fields that size an optimizer step (both recipes have them)."""

    @property
    def batch_size(self) -> int: ...
    @property
    def grad_accum(self) -> int: ...


def steps_per_epoch(
    dataset: MapDataset, sampler: DistributedSampler[Any], recipe: Batching, dist: DistEnv, *, what: str, unit: str
) -> int:
    """Optimizer steps in one epoch: this rank's share of `dataset` in steps of batch_size × grad_accum samples.
    A training set too small for one step on every rank is bad input (`what` names the recipe, `unit` its
    samples), refused before the first step."""
    steps = len(sampler) // (recipe.batch_size * recipe.grad_accum)
    if steps < 1:
        ranks = f" per rank × {dist.world_size} ranks" if dist.world_size > 1 else ""
        raise BadInputError(
            f"{what}: {len(dataset)} training {unit} per epoch cannot fill one step of "
            f"{recipe.batch_size}×{recipe.grad_accum} {unit} (batch_size × grad_accum){ranks}"
        )
    return steps


def epoch_loader(
    dataset: MapDataset,
    sampler: DistributedSampler[Any],
    epoch: int,
    *,
    batch_size: int,
    workers: int,
    device: str,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> DataLoader[Any]:
    """This rank's batches of `epoch` (full batches only; pinned memory when training on a GPU)."""
    from torch.utils.data import DataLoader

    sampler.set_epoch(epoch)
    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        drop_last=True,
        pin_memory=device.startswith("cuda"),
    )


def wrap_ddp(
    model: torch.nn.Module, dist: DistEnv, device: str, find_unused_parameters: bool = False
) -> torch.nn.Module:
    """What runs the batches: the model itself in one process; under torchrun, DDP around it, which averages
    the gradients across ranks."""
    import torch

    if dist.world_size > 1:
        return torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[torch.device(device).index] if device.startswith("cuda") else None,
            find_unused_parameters=find_unused_parameters,
        )
    return model


def sync_skipper(runner: torch.nn.Module) -> Callable[[], AbstractContextManager[Any]]:
    """What a micro-batch that does not end an optimizer step runs in (forward and backward): DDP's `no_sync`,
    so its gradients stay local and are all-reduced once, with the step's last micro-batch; nothing to skip in
    one process."""
    import torch

    if isinstance(runner, torch.nn.parallel.DistributedDataParallel):
        return runner.no_sync
    return nullcontext
