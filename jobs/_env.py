"""The job side of the Job environment: the shared job main, and the names every stage reads its settings with.

Every stage declares its settings as a frozen dataclass whose fields say which variable they come from
(`env_field("STSEG_RUN_ROOT")`); `from_env(cls)` reads them at call time (never at import), so the local
backend and a pod with the same variables behave the same. The parsers and the error shape are
`stseg_core.settings`' (one per type, shared with model options and the CLI's settings), re-exported here as the
stages' one import.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from stseg_core.errors import BadInputError, StsegError
from stseg_core.settings import boolean, flag_set, from_env, json_object, non_negative_int, positive_int, seconds
from stseg_core.settings import setting as env_field

__all__ = [
    "Submit",
    "boolean",
    "check_entry",
    "env_field",
    "from_env",
    "job_main",
    "json_object",
    "non_negative_int",
    "positive_int",
    "seconds",
]


@dataclass(frozen=True)
class Submit:
    """How `stseg submit` runs a stage. A `stseg_jobs.<module>` that declares `SUBMIT = Submit(...)` is a stage
    the CLI finds (`stseg_cli.job_stages.stages`) and submits as `python -m stseg_jobs.<module>`, with
    STSEG_STAGE=<module>."""

    name: str  # the stage in `stseg submit <name>`, job names and labels, `stseg logs --stage`
    order: int  # its place in lists of stages, the pipeline's order: finetune 10, infer 20, fuse 30, eval 40
    per_model: bool = False  # one Job per model of --models (else one Job, model "", over every model's output)
    sharded: bool = False  # one index per --shards (else one index)
    runs_model: bool = False  # runs the model itself: the model's image, and a GPU by default where it gains


def check_entry(stage: str, expected: str, index: int = 0, count: int = 1) -> None:
    """Refuse a Job whose variables were meant for another stage, or whose index is past its index count."""
    if stage != expected:
        raise BadInputError(f"STSEG_STAGE={stage!r}: this entrypoint runs the {expected} stage")
    if index >= count:
        raise BadInputError(f"JOB_COMPLETION_INDEX={index}: must be below STSEG_NUM_SHARDS={count}")


def job_main(stage: str, body: Callable[[], str]) -> int:
    """Run a job's body; print its one-line summary, or one line naming the failure; return the exit code.

    Library errors exit with their own code (2 bad input, 3 missing artifact, 4 backend); anything else
    exits 1. Set STSEG_DEBUG=1 to see the traceback as well. SIGTERM (cancel, deadline, pod eviction) unwinds
    the body like an exit, so its `finally` blocks and temporary folders (infer's `stseg-infer-*`) are cleaned.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        print(f"stseg-{stage}: {body()}", flush=True)
        return 0
    except StsegError as err:
        code, text = err.exit_code, str(err)
    except Exception as err:  # an unexpected failure still ends as one line and a non-zero exit
        code, text = 1, f"{type(err).__name__}: {err}"
    if flag_set("STSEG_DEBUG"):
        traceback.print_exc()
    print(f"stseg-{stage}: error: {' '.join(text.split())}", file=sys.stderr, flush=True)
    return code
