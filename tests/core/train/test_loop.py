"""The shared epoch loop and torchrun helpers on toy parts (no recipe, no process group): the steps-per-epoch
refusal, and what a resume does to each rank's random state."""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from stseg_core.errors import BadInputError
from stseg_core.train.checkpoints import RunCheckpoints
from stseg_core.train.distributed import DistEnv, rank_sampler, seed_rank, steps_per_epoch, sync_skipper
from stseg_core.train.loop import TrainParts, _resume, run_epochs
from stseg_core.train.tmo_recipe import TmoRecipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class Schedule:
    epochs: int = 1
    checkpoint_every: int = 1
    grad_accum: int = 1
    seed: int = 3


def _toy_parts(runner: torch.nn.Module, model: torch.nn.Module, batches: int = 4) -> TrainParts:
    """A 2 → 1 linear model fitting y = x₀ on `batches` fixed batches per epoch."""
    data = [torch.arange(8.0).reshape(4, 2) + k for k in range(batches)]
    return TrainParts(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        forward=lambda x: (runner(x)[:, 0] - x[:, 0]).pow(2).mean(),
        batches=lambda epoch: data,
        steps_per_epoch=batches,
        validate=lambda m: {"J&F-Mean": 0.5},
        group_lrs=(("all", 0.01),),
        arch={},
        recipe={},
    )


def test_steps_per_epoch_counts_this_ranks_share_and_names_the_step_when_too_small():
    dataset = list(range(20))
    two = [DistEnv(world_size=2, rank=r) for r in (0, 1)]
    # 10 samples per rank in steps of 2 × 2 → 2 steps (the 2 left over make no step)
    fits = TmoRecipe(init="random", batch_size=2, grad_accum=2)
    steps = [steps_per_epoch(dataset, rank_sampler(dataset, d, 0), fits, d, what="t", unit="f") for d in two]
    assert steps == [2, 2]
    big = TmoRecipe(init="random", batch_size=4, grad_accum=3)
    with pytest.raises(BadInputError) as info:
        steps_per_epoch(dataset, rank_sampler(dataset, two[0], 0), big, two[0], what="tmo finetune", unit="frames")
    assert str(info.value) == (
        "tmo finetune: 20 training frames per epoch cannot fill one step of 4×3 frames (batch_size × grad_accum)"
        " per rank × 2 ranks"
    )


def test_ddp_all_reduces_once_per_optimizer_step_under_grad_accum(tmp_path):
    """A one-rank gloo group is enough to count DDP's all-reduces (a comm hook sees each bucket it sends):
    4 micro-batches at grad_accum 2 are 2 steps, hence 2 all-reduces; without `no_sync`, 4."""
    import torch.distributed as tdist
    from torch.nn.parallel import DistributedDataParallel

    tdist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        counts = []
        for skip in (True, False):
            model = torch.nn.Linear(2, 1)
            runner = DistributedDataParallel(model)
            sent: list[int] = []

            def hook(state, bucket, sent=sent):
                sent.append(1)
                done = torch.futures.Future()
                done.set_result(bucket.buffer())
                return done

            runner.register_comm_hook(None, hook)
            parts = _toy_parts(runner, model)
            parts.no_sync = sync_skipper(runner) if skip else nullcontext
            ckpts = RunCheckpoints(str(tmp_path / "store"), "toy", f"skip{skip}")
            result = run_epochs(parts, ckpts, Schedule(grad_accum=2), DistEnv())
            assert result.step == 2
            counts.append(len(sent))
        assert counts == [2, 4]
    finally:
        tdist.destroy_process_group()


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_a_multi_rank_resume_gives_each_rank_its_own_reproducible_random_state(tmp_path):
    """The checkpoint holds rank 0's generator states; after restoring them each rank of a torchrun resume is
    re-seeded, so the ranks draw differently (and not the first epoch's draws again), the same on every resume.
    One process still resumes exactly the saved states."""
    model = torch.nn.Linear(2, 1)
    ckpts = RunCheckpoints(str(tmp_path / "store"), "toy", "r")
    run_epochs(_toy_parts(model, model), ckpts, Schedule(), DistEnv())
    saved = ckpts.latest().payload["rng"]

    def resumed(dist: DistEnv) -> tuple[float, float, float]:
        _resume(_toy_parts(model, model), ckpts, Schedule().seed, dist)
        return _draws()

    ranks = [resumed(DistEnv(world_size=2, rank=r)) for r in (0, 1)]
    assert all(a != b for a, b in zip(*ranks, strict=True))
    assert resumed(DistEnv(world_size=2, rank=1)) == ranks[1]
    first_epoch = []
    for r in (0, 1):
        seed_rank(Schedule().seed, DistEnv(world_size=2, rank=r))
        first_epoch.append(_draws())
    assert not set(first_epoch) & set(ranks)
    single = resumed(DistEnv())
    torch.set_rng_state(saved["torch"])
    assert single[2] == float(torch.rand(1)) and single not in ranks
