"""Shard planner: split a split's videos into N shards of near-equal work (frames × objects), deterministically.

Video lengths and object counts vary widely in MOSE, so sharding by count leaves one pod running long after the
others. LPT greedy (heaviest video first onto the lightest shard) followed by a local-search pass (moves and
swaps out of the heaviest shard) keeps the heaviest shard within a few percent of the mean. Ties break on the
video name and shard index, so the same input always gives the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stseg_core.errors import BadInputError
from stseg_core.store import Store

if TYPE_CHECKING:
    from stseg_core.data.mose import MoseSplit

PLAN_FILE = "plan.json"
COST_UNIT = "frames x objects"


@dataclass(frozen=True)
class ShardPlan:
    """Which videos each shard processes.

    `shards[i]`: video names of shard i (sorted by name); `video_costs`: {video: cost} with cost = number of
    frames × number of objects (≥ 1), the unit the balance is measured in.
    """

    num_shards: int
    shards: tuple[tuple[str, ...], ...]
    video_costs: Mapping[str, int]

    def videos(self, shard: int) -> tuple[str, ...]:
        """Videos of one shard (the Indexed Job's JOB_COMPLETION_INDEX)."""
        if not 0 <= shard < self.num_shards:
            raise BadInputError(f"shard index {shard} out of range 0…{self.num_shards - 1}")
        return self.shards[shard]

    def shard_of(self, video: str) -> int:
        for i, names in enumerate(self.shards):
            if video in names:
                return i
        raise BadInputError(f"video {video!r} is in no shard of this plan")

    @property
    def shard_costs(self) -> tuple[int, ...]:
        return tuple(sum(self.video_costs[v] for v in names) for names in self.shards)

    @property
    def imbalance(self) -> float:
        """Heaviest shard ÷ mean shard cost (1.0 = perfect balance)."""
        costs = self.shard_costs
        total = sum(costs)
        return max(costs) * self.num_shards / total if total else 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "num_shards": self.num_shards,
            "videos": {str(i): list(names) for i, names in enumerate(self.shards)},
            "cost": {str(i): c for i, c in enumerate(self.shard_costs)},
            "video_cost": dict(sorted(self.video_costs.items())),
            "cost_unit": COST_UNIT,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], source: str = "plan.json") -> ShardPlan:
        try:
            n = int(obj["num_shards"])
            shards = tuple(tuple(sorted(obj["videos"][str(i)])) for i in range(n))
            costs = {str(k): int(v) for k, v in obj["video_cost"].items()}
        except (KeyError, TypeError, ValueError) as err:
            raise BadInputError(f"{source}: not a shard plan (bad or missing field {err})") from None
        seen = [v for names in shards for v in names]
        if len(seen) != len(set(seen)) or set(seen) != set(costs):
            raise BadInputError(f"{source}: shard plan lists a video twice or without a cost")
        return cls(n, shards, costs)

    def save(self, store: Store, key: str = PLAN_FILE) -> None:
        store.write_json(key, self.to_json())

    @classmethod
    def load(cls, store: Store, key: str = PLAN_FILE) -> ShardPlan:
        return cls.from_json(store.read_json(key), store.uri(key))


def video_cost(num_frames: int, num_objects: int) -> int:
    """Work of one video: frames × objects, at least 1 so an object-less video still counts."""
    return max(1, num_frames * max(1, num_objects))


def split_costs(split: MoseSplit) -> dict[str, int]:
    """{video: frames × objects} of every video of a split (reads each video's first annotation once)."""
    costs = {}
    for name in split.videos():
        info = split.video(name)
        costs[name] = video_cost(info.num_frames, len(info.object_ids))
    return costs


def plan_shards(costs: Mapping[str, int], num_shards: int, refine_rounds: int = 10_000) -> ShardPlan:
    """Balance videos over `num_shards` shards by cost. More shards than videos leaves some shards empty."""
    if num_shards < 1:
        raise BadInputError(f"--shards must be ≥ 1, got {num_shards}")
    for name, c in costs.items():
        if int(c) < 0:
            raise BadInputError(f"video {name!r}: negative cost {c}")
    costs = {str(k): int(v) for k, v in costs.items()}
    order = sorted(costs, key=lambda v: (-costs[v], v))
    members: list[list[str]] = [[] for _ in range(num_shards)]
    loads = [0] * num_shards
    for v in order:  # LPT: heaviest video onto the currently lightest shard (lowest index on ties)
        i = min(range(num_shards), key=lambda s: (loads[s], s))
        members[i].append(v)
        loads[i] += costs[v]
    for _ in range(refine_rounds):
        if not _improve(members, loads, costs):
            break
    return ShardPlan(num_shards, tuple(tuple(sorted(m)) for m in members), dict(costs))


def _improve(members: list[list[str]], loads: list[int], costs: dict[str, int]) -> bool:
    """Best single move or swap that lowers the heaviest shard's load; False when none helps."""
    h = max(range(len(loads)), key=lambda s: (loads[s], -s))
    top = loads[h]
    best: tuple[int, int, str, str | None] | None = None  # (new pair max, shard, video out, video in)
    best_key: tuple[int, int, str, str] | None = None
    for s in range(len(loads)):
        if s == h:
            continue
        for v in members[h]:
            cv = costs[v]
            # Move v from h to s.
            if cv > 0 and loads[s] + cv < top:
                key = (max(top - cv, loads[s] + cv), s, v, "")
                if best_key is None or key < best_key:
                    best_key, best = key, (key[0], s, v, None)
            # Swap v (in h) with a lighter u (in s).
            for u in members[s]:
                d = cv - costs[u]
                if d > 0 and loads[s] + d < top:
                    key = (max(top - d, loads[s] + d), s, v, u)
                    if best_key is None or key < best_key:
                        best_key, best = key, (key[0], s, v, u)
    if best is None:
        return False
    _, s, v, swap_in = best
    members[h].remove(v)
    members[s].append(v)
    loads[h] -= costs[v]
    loads[s] += costs[v]
    if swap_in is not None:
        members[s].remove(swap_in)
        members[h].append(swap_in)
        loads[s] -= costs[swap_in]
        loads[h] += costs[swap_in]
    return True
