"""The stages `stseg submit` can run, found in the job modules that declare them: nothing in the CLI lists them."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache

import stseg_jobs
from stseg_jobs._env import Submit


@dataclass(frozen=True)
class Stage:
    """A stage `stseg submit` can run: the job module that declares it, and what it declares."""

    module: str  # what its container/process runs: `python -m <module>`
    submit: Submit

    @property
    def job_name(self) -> str:
        """What the Job calls its stage (STSEG_STAGE): its module's name (`evaluate` for `stseg submit eval`)."""
        return self.module.rpartition(".")[2]


@cache
def stages() -> dict[str, Stage]:
    """Every stage by its submit name, in the pipeline's order: each `stseg_jobs` module that declares `SUBMIT`
    (so a new stage is its job module, plus its `stseg_core.stages` module; nothing here lists them)."""
    found = []
    for entry in pkgutil.iter_modules(stseg_jobs.__path__, "stseg_jobs."):
        submit = getattr(importlib.import_module(entry.name), "SUBMIT", None)
        if isinstance(submit, Submit):
            found.append(Stage(entry.name, submit))
    return {s.submit.name: s for s in sorted(found, key=lambda s: s.submit.order)}
