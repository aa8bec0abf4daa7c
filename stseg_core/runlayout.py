"""Where a run keeps its outputs (keys under `<store>/runs/<run-id>/`) and the per-shard done markers.

A shard is done when, and only when, `<model_prefix>/_done/<shard>.json` exists. `commit_shard` writes
it LAST, after reading every output back from the store and recording its size and sha256, so a
crash or a storage failure at any point before leaves no marker and the shard simply runs again
(overwriting its half-written outputs). Re-running a done shard is a no-op (`run_shard_once`).

Whoever consumes a shard checks its marker first (`checked_done_shards`: sizes against one listing of the
prefix; `stseg verify` also re-reads every file for its sha256). A shard whose files went missing or changed is
*invalidated*: its marker moves to `<model_prefix>/_invalid/<shard>.json` with the problems, so the shard counts
as not done everywhere (status, `wait-done`, `--resume`, the stage itself) and is simply run again.

    runs/<run-id>/
      plan.json
      pred/<model>/<video>/<frame>.png | scores.json | probs.npz
      pred/<model>/_done/<shard>.json     {"shard", "files": {key: {"size", "sha256"}}, "created", "meta"}
      fused/<video>/<frame>.png …,  fused/_parts/<index>.json,  fused/_done/<index>.json,  recommend.json
      eval/<name>/…
    checkpoints/<model>/<run-id>/epoch_<n>.pt | val.json | best
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.store import Store, join_key

PLAN = "plan.json"
RECOMMEND = "recommend.json"
FUSED = "fused"
DONE_DIR = "_done"
INVALID_DIR = "_invalid"
MARKER_VERSION = 1

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def _name(kind: str, value: str | int) -> str:
    """A single safe key component (model, video, frame stem, shard): no `/`, no `..`, not empty."""
    text = str(value)
    if not _NAME.match(text) or ".." in text:
        raise BadInputError(f"{kind} name {text!r}: use letters, digits, '.', '_', '+', '-' (no '/' or '..')")
    return text


def run_prefix(run_id: str) -> str:
    """The run root below a store root: `runs/<run-id>`."""
    return join_key("runs", _name("run id", run_id))


def pred_prefix(model: str) -> str:
    return join_key("pred", _name("model", model))


def pred_key(model: str, video: str, stem: str) -> str:
    """The palette label map of one frame: `pred/<model>/<video>/<stem>.png`."""
    return join_key(pred_prefix(model), _name("video", video), f"{_name('frame', stem)}.png")


def scores_key(model: str, video: str) -> str:
    return join_key(pred_prefix(model), _name("video", video), "scores.json")


def probs_key(model: str, video: str) -> str:
    return join_key(pred_prefix(model), _name("video", video), "probs.npz")


def fused_key(video: str, stem: str) -> str:
    return join_key(FUSED, _name("video", video), f"{_name('frame', stem)}.png")


def fuse_part_key(index: int | str) -> str:
    """What fuse index `index` hands the merge step: `fused/_parts/<index>.json` (listed in its done marker)."""
    return join_key(FUSED, "_parts", f"{_name('fuse index', index)}.json")


def eval_prefix(name: str) -> str:
    return join_key("eval", _name("eval", name))


def checkpoint_prefix(model: str, run_id: str) -> str:
    """Below the store root (not the run root): `checkpoints/<model>/<run-id>`."""
    return join_key("checkpoints", _name("model", model), _name("run id", run_id))


def checkpoint_key(model: str, run_id: str, epoch: int) -> str:
    return join_key(checkpoint_prefix(model, run_id), f"epoch_{int(epoch)}.pt")


def done_key(model_prefix: str, shard: int | str) -> str:
    """`<model_prefix>/_done/<shard>.json`, e.g. `pred/sam2/_done/3.json`."""
    return join_key(model_prefix, DONE_DIR, f"{_name('shard', shard)}.json")


@dataclass(frozen=True)
class FileRecord:
    """One output as the store holds it: size in bytes, sha256 hex digest."""

    size: int
    sha256: str


def _record(store: Store, key: str) -> FileRecord:
    data = store.read_bytes(key)
    return FileRecord(len(data), hashlib.sha256(data).hexdigest())


def _records(store: Store, keys: Iterable[str], workers: int) -> dict[str, FileRecord]:
    keys = sorted({join_key(k) for k in keys})
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return dict(zip(keys, pool.map(lambda k: _record(store, k), keys), strict=True))


@dataclass(frozen=True)
class DoneMarker:
    """A shard's done marker (`<model_prefix>/_done/<shard>.json`): every output it wrote (key relative to the run
    root → size and sha256), their total, when it was written, and the stage's own `meta`."""

    shard: str
    files: Mapping[str, FileRecord]
    total_bytes: int
    created: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    version: int = MARKER_VERSION

    @classmethod
    def of(cls, shard: int | str, files: Mapping[str, FileRecord], meta: Mapping[str, Any] | None = None) -> DoneMarker:
        """A marker written now for `files`."""
        return cls(
            shard=str(shard),
            files=dict(files),
            total_bytes=sum(r.size for r in files.values()),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            meta=dict(meta or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "shard": self.shard,
            "files": {k: {"size": r.size, "sha256": r.sha256} for k, r in self.files.items()},
            "total_bytes": self.total_bytes,
            "created": self.created,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_json(cls, data: object, where: str) -> DoneMarker:
        """The marker in `data` (parsed JSON); `where` (its URI) names it in the one-line error of a bad one."""
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(files, dict):
            raise BadInputError(f"{where}: done marker has no 'files' table")
        try:
            records = {str(k): FileRecord(int(v["size"]), str(v["sha256"])) for k, v in files.items()}
        except (KeyError, TypeError, ValueError):
            raise BadInputError(f"{where}: done marker has a file without size and sha256") from None
        return cls(
            shard=str(data.get("shard", "")),
            files=records,
            total_bytes=int(data.get("total_bytes", sum(r.size for r in records.values()))),
            created=str(data.get("created", "")),
            meta=dict(data.get("meta") or {}),
            version=int(data.get("version", MARKER_VERSION)),
        )


def commit_shard(
    store: Store,
    model_prefix: str,
    shard: int | str,
    keys: Iterable[str],
    meta: Mapping[str, Any] | None = None,
    workers: int = 8,
) -> DoneMarker:
    """Mark a shard done: read every output back, then write `_done/<shard>.json` last; returns the marker.

    `keys` are relative to `store` (the run root). A key that cannot be read raises (MissingArtifactError
    or BackendError) before the marker is written, so a failed shard is never marked done.
    """
    marker = DoneMarker.of(shard, _records(store, keys, workers), meta)
    store.write_json(done_key(model_prefix, shard), marker.to_json())
    return marker


def shard_done(store: Store, model_prefix: str, shard: int | str) -> bool:
    return store.exists(done_key(model_prefix, shard))


def read_marker(store: Store, model_prefix: str, shard: int | str) -> DoneMarker:
    key = done_key(model_prefix, shard)
    if not store.exists(key):
        raise MissingArtifactError(f"{store.uri(key)}: shard {shard} of {model_prefix} is not done (no marker)")
    return DoneMarker.from_json(store.read_json(key), store.uri(key))


def done_shards(store: Store, model_prefix: str) -> list[str]:
    """Names of the shards marked done under `model_prefix`, in numeric order where numeric."""
    prefix = join_key(model_prefix, DONE_DIR)
    names = [k[len(prefix) + 1 : -len(".json")] for k in store.list(prefix) if k.endswith(".json")]
    return sorted(names, key=lambda n: (0, int(n), "") if n.isdigit() else (1, 0, n))


def verify_shard(store: Store, model_prefix: str, shard: int | str, workers: int = 8) -> list[str]:
    """Re-read every file a done marker lists; returns one line per problem (empty when all match)."""
    listed = read_marker(store, model_prefix, shard).files

    def check(key: str) -> str | None:
        if not store.exists(key):
            return f"{store.uri(key)}: missing"
        got = _record(store, key)
        want = listed[key]
        if got.size != want.size:
            return f"{store.uri(key)}: size {got.size} != {want.size} in the marker"
        if got.sha256 != want.sha256:
            return f"{store.uri(key)}: sha256 differs from the marker"
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [p for p in pool.map(check, sorted(listed)) if p]


def marker_problems(store: Store, marker: DoneMarker, sizes: Mapping[str, int]) -> list[str]:
    """One line per file of a done marker that the listing `sizes` (key → bytes) lacks or sizes differently."""
    out = []
    for key, want in sorted(marker.files.items()):
        got = sizes.get(key)
        if got is None:
            out.append(f"{store.uri(key)}: missing")
        elif got != want.size:
            out.append(f"{store.uri(key)}: size {got} != {want.size} in the marker")
    return out


def invalidate_shard(store: Store, model_prefix: str, shard: int | str, problems: list[str]) -> None:
    """Move a done marker to `_invalid/<shard>.json` (with `problems`): the shard counts as not done from now on."""
    marker = read_marker(store, model_prefix, shard)
    store.write_json(
        join_key(model_prefix, INVALID_DIR, f"{_name('shard', shard)}.json"),
        {**marker.to_json(), "problems": problems, "invalidated": datetime.now(UTC).isoformat(timespec="seconds")},
    )
    store.delete(done_key(model_prefix, shard))


def checked_done_shards(
    store: Store, model_prefix: str, shards: Iterable[str] | None = None, sha256: bool = False, workers: int = 8
) -> tuple[list[str], dict[str, list[str]]]:
    """(good shards, {bad shard: problems}) among the done shards under `model_prefix` (or only `shards`).

    Sizes are compared with one listing of the prefix; with `sha256` every file is also re-read. Bad shards
    are invalidated (see the module docstring), so a consumer never reads them and `--resume` redoes them.
    """
    names = done_shards(store, model_prefix)
    if shards is not None:
        wanted = {str(s) for s in shards}
        names = [n for n in names if n in wanted]
    if not names:
        return [], {}
    sizes = store.list_sizes(model_prefix)
    good, bad = [], {}
    for name in names:
        problems = marker_problems(store, read_marker(store, model_prefix, name), sizes)
        if not problems and sha256:
            problems = verify_shard(store, model_prefix, name, workers)
        if problems:
            invalidate_shard(store, model_prefix, name, problems)
            bad[name] = problems
        else:
            good.append(name)
    return good, bad


def describe_bad(model_prefix: str, bad: dict[str, list[str]]) -> str:
    """One line for invalidated shards: the first problem, how many more, and what to do."""
    first = next(iter(bad))
    more = sum(len(p) for p in bad.values()) - 1
    return (
        f"{bad[first][0]}{f' (and {more} more)' if more else ''}: {model_prefix} shard(s) "
        f"{', '.join(bad)} marked not done; rerun them (submit the stage again with --resume)"
    )


@dataclass(frozen=True)
class ShardOutcome:
    """What `run_shard_once` did: `skipped` when the shard was already done; `marker` is its done marker."""

    shard: str
    skipped: bool
    marker: DoneMarker


def run_shard_once(
    store: Store,
    model_prefix: str,
    shard: int | str,
    produce: Callable[[], Iterable[str]],
    meta: Mapping[str, Any] | None = None,
) -> ShardOutcome:
    """The infer/fuse stages' entry: skip a done shard, else run `produce` (returns the keys it wrote) and commit.

    A half-written shard (outputs but no marker) is simply produced again: writes replace objects, and
    the marker lists exactly the keys of this run.
    """
    if shard_done(store, model_prefix, shard):
        return ShardOutcome(str(shard), True, read_marker(store, model_prefix, shard))
    keys = list(produce())
    return ShardOutcome(str(shard), False, commit_shard(store, model_prefix, shard, keys, meta=meta))
