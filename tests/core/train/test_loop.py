"""The shared epoch loop and torchrun helpers on toy parts (no recipe, no process group): the steps-per-epoch
refusal, and what a resume does to each rank's random state."""

from __future__ import annotations

import pytest

from stseg_core.errors import BadInputError
from stseg_core.train.distributed import DistEnv, rank_sampler, steps_per_epoch
from stseg_core.train.tmo_recipe import TmoRecipe


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
