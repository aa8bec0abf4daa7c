"""The Backend base class, what a backend can do (as data), run status records, and the registry by name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stseg_cli.config import Config
from stseg_cli.spec import JobSpec
from stseg_core.errors import BadInputError
from stseg_core.names import check_run_id

if TYPE_CHECKING:
    from stseg_core.store import Store


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports; a request it cannot honour is refused before anything starts."""

    gpus: bool = False  # also: a model that gains from a GPU gets one unless --gpus says otherwise
    kueue: bool = False
    node_pools: bool = False
    local_files: bool = False  # shards see this machine's folders (else the store and data need a remote URI)
    waits_by_default: bool = False  # submit follows the run to its end unless --detach (else only with --wait)
    resume: bool = False  # the backend records a run's specs, so `stseg resume RUN` can go on from them


def _counted_frames(store: Store, prefix: str, shard: int) -> int | None:
    """Frames a done shard wrote: the label PNGs its marker lists; None when it cannot be read (status figures are
    best-effort, never an error)."""
    from stseg_core.runlayout import read_marker

    try:
        files = read_marker(store, prefix, shard).files
    except Exception:
        return None
    return sum(1 for key in files if key.endswith(".png"))


def done_frames(store: Store, prefix: str, cache: dict[str, list[int]]) -> dict[int, int]:
    """{shard: frames written} of every shard done under `prefix`, from ONE listing of `<prefix>/_done/`.

    A status poll of a 64-shard job used to cost a HEAD and a GET of every marker, and markers grow with the
    catalogue (one line per file); now a marker is read only when `cache` ({shard: [marker bytes, frames]},
    updated in place; keep it between polls) lacks it at its listed size. Store errors propagate (the caller
    decides whether an unreachable store is an outage); an unreadable marker counts 0 frames and is not cached
    (an empty shard's 0 is).
    """
    from stseg_core.runlayout import DONE_DIR
    from stseg_core.store import join_key

    folder = join_key(prefix, DONE_DIR)
    sizes = {
        int(name): size
        for key, size in store.list_sizes(folder).items()
        if key.endswith(".json") and (name := key[len(folder) + 1 : -len(".json")]).isdigit()
    }
    new = [k for k, size in sizes.items() if cache.get(str(k), [None])[0] != size]
    with ThreadPoolExecutor(max_workers=16) as pool:  # a cold status reads every marker: not one after the other
        for k, frames in zip(new, pool.map(lambda k: _counted_frames(store, prefix, k), new), strict=True):
            if frames is not None:
                cache[str(k)] = [sizes[k], frames]
    return {k: cache[str(k)][1] if str(k) in cache else 0 for k in sizes}


@dataclass(frozen=True)
class JobStatus:
    """One job (stage × model) of a run. Shard sets hold indexes; `failed` maps an index to a one-line reason."""

    name: str
    stage: str
    model: str
    shards: int
    done: frozenset[int] = frozenset()
    running: frozenset[int] = frozenset()
    failed: dict[int, str] = field(default_factory=dict)
    waiting: bool = False  # its upstream stages are not finished yet
    frames: int = 0  # frames written by the done shards (from their markers), for frames/s
    elapsed_s: float = 0.0  # since the job's first shard started

    @property
    def finished(self) -> bool:
        return len(self.done) + len(self.failed) >= self.shards and not self.running

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Remaining shards at the rate seen so far (None until a shard is done)."""
        left = self.shards - len(self.done) - len(self.failed)
        if not self.done or self.elapsed_s <= 0:
            return None
        return left * self.elapsed_s / len(self.done)


@dataclass(frozen=True)
class RunStatus:
    run: str
    jobs: tuple[JobStatus, ...]
    note: str = ""  # one line when the run stopped short: why, and the command that goes on

    @property
    def finished(self) -> bool:
        return all(j.finished for j in self.jobs)

    @property
    def succeeded(self) -> bool:
        return all(len(j.done) == j.shards for j in self.jobs)


# What a waiting submit or resume calls when progress may have changed (progress bars): with the status it has just
# computed, or None (the callee then fetches one if it wants).
OnChange = Callable[[RunStatus | None], None]


class Backend(ABC):
    """Runs JobSpecs somewhere. Public methods check the request, then call the backend's private ones."""

    name: str = ""
    capabilities: Capabilities = Capabilities()

    def __init__(self, config: Config) -> None:
        self.config = config

    # -- public surface ---------------------------------------------------------------------------
    def check(self, specs: Sequence[JobSpec]) -> None:
        """Refuse, in one line, anything this backend cannot do — before anything starts."""
        caps = self.capabilities
        if len({s.run for s in specs}) > 1:
            raise BadInputError("one submit holds the jobs of one run")
        for spec in specs:
            if spec.resources.gpus and not caps.gpus:
                raise BadInputError(
                    f"{spec.name}: the {self.name} backend has no GPUs (asked for "
                    f"{spec.resources.gpus}); pass --gpus 0 or use --backend kubernetes"
                )
        if self.config.kueue_queue and not caps.kueue:
            raise BadInputError(
                f"the {self.name} backend does not queue through Kueue (kueue_queue="
                f"{self.config.kueue_queue!r}); unset it or use --backend kubernetes"
            )
        if self.config.node_pool != "none" and not caps.node_pools:
            raise BadInputError(
                f"the {self.name} backend has no node pools (node_pool="
                f"{self.config.node_pool!r}); unset it or use --backend kubernetes"
            )
        self._check(specs)

    def _check(self, specs: Sequence[JobSpec]) -> None:
        """A backend's own refusals beyond its declared capabilities (default: none)."""
        return None

    def render(self, specs: Sequence[JobSpec]) -> list[dict[str, Any]]:
        """What submit would create, as plain dicts (for --dry-run -o yaml)."""
        self.check(specs)
        return self._render(specs)

    def submit(
        self,
        specs: Sequence[JobSpec],
        *,
        resume: bool = False,
        wait: bool = False,
        on_change: OnChange | None = None,
    ) -> RunStatus | None:
        """Start the jobs. A job (stage × model) the run already has is refused unless `resume`, which finishes
        its missing shards; new jobs join an existing run. With `wait`, returns the final status and calls
        `on_change` whenever progress may have changed (progress bars)."""
        if not specs:
            raise BadInputError("nothing to submit")
        self.check(specs)
        return self._submit(list(specs), resume=resume, wait=wait, on_change=on_change)

    def status(self, run: str) -> RunStatus:
        return self._status(check_run_id(run))

    def logs(self, run: str, stage: str, model: str, shard: int, follow: bool = False) -> Iterator[str]:
        return self._logs(check_run_id(run), stage, model, shard, follow)

    def cancel(self, run: str) -> int:
        """Stop every job of `run`; returns how many jobs were stopped."""
        return self._cancel(check_run_id(run))

    def runs(self) -> list[str]:
        return self._runs()

    def resume(self, run: str, *, wait: bool = False, on_change: OnChange | None = None) -> RunStatus | None:
        """Go on with a stopped, orphaned or failed run from what the backend recorded: its unfinished shards
        run again (done shards are no-ops)."""
        if not self.capabilities.resume:
            raise BadInputError(
                f"the {self.name} backend keeps no run to resume: submit the same command again with --resume"
            )
        return self._resume(check_run_id(run), wait, on_change)

    def _resume(self, run: str, wait: bool, on_change: OnChange | None) -> RunStatus | None:
        """Only backends that declare `resume` implement it."""
        raise NotImplementedError

    # -- what each backend implements ------------------------------------------------------------
    @abstractmethod
    def _render(self, specs: Sequence[JobSpec]) -> list[dict[str, Any]]: ...

    @abstractmethod
    def _submit(
        self, specs: list[JobSpec], *, resume: bool, wait: bool, on_change: OnChange | None
    ) -> RunStatus | None: ...

    @abstractmethod
    def _status(self, run: str) -> RunStatus: ...

    @abstractmethod
    def _logs(self, run: str, stage: str, model: str, shard: int, follow: bool) -> Iterator[str]: ...

    @abstractmethod
    def _cancel(self, run: str) -> int: ...

    @abstractmethod
    def _runs(self) -> list[str]: ...


# name → "module:Class", imported only when chosen (the kubernetes client is heavy and optional).
BACKENDS: dict[str, str] = {
    "local": "stseg_cli.backends.local:LocalBackend",
    "kubernetes": "stseg_cli.backends.kubernetes:KubernetesBackend",
}


def get_backend(name: str, config: Config, **kwargs: Any) -> Backend:
    """The backend registered as `name`; an unknown name lists the known ones."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise BadInputError(f"unknown backend {name!r} (known: {', '.join(sorted(BACKENDS))})") from None
    module, cls = target.split(":")
    backend: Backend = getattr(importlib.import_module(module), cls)(config, **kwargs)
    return backend


def parse_indexes(text: str | None) -> frozenset[int]:
    """Kubernetes' compressed index list ("1,3-5,7") → {1, 3, 4, 5, 7}."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return frozenset(out)
