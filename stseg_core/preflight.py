"""Checks made before any Job or process starts: does every URI a stage will read exist?

A submit parses each Job's environment with the job's own parser and then asks a `Preflight` about the URIs it
names (data root layout, checkpoints, the performance database), so a typo costs one line on the submitting
machine instead of a scheduled pod and an image pull. A store the submitting machine cannot reach (no
credentials, no route to the endpoint) is not checked: a note says so and the Job checks it when it starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import methodcaller

from stseg_core.errors import BackendError, BadInputError, MissingArtifactError
from stseg_core.store import Store, open_store

DATA_LAYOUT = ("Annotations", "JPEGImages")
"""Folders of a MOSE-layout split (`stseg_core.data.mose`); a ground-truth root needs only Annotations."""
_PROBE_SETTINGS = {"max_attempts": 1, "retries": 0, "connect_timeout_s": 5.0, "read_timeout_s": 15.0}
"""One quick request per probe: an unreachable endpoint costs seconds, not the Job's retry budget."""


@dataclass
class Preflight:
    """Existence checks of a run's inputs; `notes` says what could not be checked from here and why."""

    notes: list[str] = field(default_factory=list)
    _unreachable: dict[str, str] = field(default_factory=dict)  # store root → reason

    def _store(self, uri: str) -> Store:
        from stseg_core.s3store import S3Settings, S3Store

        store = open_store(uri)
        if isinstance(store, S3Store):  # probe once, quickly
            store = S3Store(store.bucket, store.prefix, settings=S3Settings.from_env(**_PROBE_SETTINGS))
        return store

    def _ask(self, uri: str, what: str, question: Callable[[Store], bool], store_uri: str) -> bool | None:
        """`question(store)`, or None (and a note) when the store cannot be reached from this machine."""
        bucket = store_uri.split("/")[2] if store_uri.startswith("s3://") else ""
        if bucket in self._unreachable:
            return None
        try:
            return question(self._store(store_uri))
        except BackendError as err:
            self._unreachable[bucket] = str(err)
            self.notes.append(f"not checked from this machine: {what} {uri} (store unreachable: {err})")
            return None

    def require_file(self, uri: str, what: str) -> None:
        """A single object (a checkpoint) must exist."""
        from stseg_core.models.checkpoint import split_checkpoint_uri

        folder, key = split_checkpoint_uri(uri)
        if self._ask(uri, what, lambda s: s.exists(key), folder) is False:
            raise MissingArtifactError(f"{what} {uri}: not found")

    def require_data_root(self, uri: str, what: str = "data root", folders: tuple[str, ...] = DATA_LAYOUT) -> None:
        """A split root must hold each of `folders` (one listing request of one key each)."""
        for folder in folders:
            if self._ask(uri, what, methodcaller("has_any", folder), uri) is False:
                raise MissingArtifactError(
                    f"{what} {uri}: no {folder}/ under it (expected the MOSE layout {'/, '.join(folders)}/)"
                )

    def require_perfdb(self, uri: str) -> None:
        """A performance database: a version file (`…/vNNNN.json`) or a folder with `latest`."""
        if uri.rstrip("/").endswith(".json"):
            self.require_file(uri, "performance database")
        elif self._ask(uri, "performance database", lambda s: s.exists("latest"), uri) is False:
            raise MissingArtifactError(
                f"performance database {uri}: no 'latest' file (save a database there first, or name a version file)"
            )


def require_weights(model: str, overrides: Mapping[str, object], pre: Preflight) -> None:
    """A model that cannot run without weights is refused without a checkpoint; a named checkpoint must exist."""
    from stseg_core.models import registry

    entry = registry.info(model)
    checkpoint = overrides.get("checkpoint") or entry.default_checkpoint
    if not checkpoint:
        if entry.needs_weights:
            raise BadInputError(
                f"model {model} needs weights: give --checkpoints {model}=URI (or checkpoint in STSEG_MODEL_OPTIONS)"
            )
        return
    pre.require_file(str(checkpoint), f"{model} checkpoint")


def require_recipe(model: str, options: Mapping[str, object], pre: Preflight) -> None:
    """The finetune recipe parsed and checked as the Job will, and its init checkpoint present."""
    from stseg_core.stages.finetune import make_recipe

    recipe = make_recipe(model, options)
    recipe.check()
    if recipe.init != "random":
        pre.require_file(recipe.init, f"{model} finetune init")
