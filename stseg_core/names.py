"""Names as people type them: comma-separated lists (models, videos, splits) and the run-id rule.

A run lives at `<store>/runs/<run-id>` (its *run root*). The run id becomes part of Kubernetes Job names and
labels, so it is a lower-case DNS label of at most 30 characters; everything that builds a run root from a
store, or finds the run id or the store of a run root, goes through this module.
"""

from __future__ import annotations

import re

from stseg_core.errors import BadInputError

RUNS_DIR = "runs"
_RUN_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?$")


def split_names(text: str | None) -> tuple[str, ...]:
    """ "a, b,,a" → ("a", "b"): blanks and repeats dropped, first-seen order kept."""
    return tuple(dict.fromkeys(part.strip() for part in (text or "").split(",") if part.strip()))


def check_run_id(run: str) -> str:
    """Refuse a run id that is not a lower-case DNS label of 1-30 characters (it ends up in Job names)."""
    if not _RUN_ID.match(run):
        raise BadInputError(
            f"run id {run!r}: use 1-30 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
        )
    return run


def run_root(store: str, run: str) -> str:
    """`<store>/runs/<run-id>`: the run root of `run` in the store at URI `store`."""
    return f"{store.rstrip('/')}/{RUNS_DIR}/{check_run_id(run)}"


def run_id_of(root: str) -> str:
    """The run id of a run root: its last component (the metrics label; any run root a user names is accepted)."""
    return root.rstrip("/").rsplit("/", 1)[-1] or root


def store_of_run_root(root: str) -> str:
    """`<store>/runs/<run-id>` → `<store>` (checkpoints live beside runs/, not inside a run)."""
    head, _, run = root.rstrip("/").rpartition("/")
    parent, _, runs = head.rpartition("/")
    if runs != RUNS_DIR or not run or not parent:
        raise BadInputError(f"run root {root}: expected <store>/runs/<run-id> (or give the store explicitly)")
    return parent
