"""Job environment → frozen dataclasses, with one-line errors that name the variable; and the shared job main.

Every stage declares its settings as a frozen dataclass whose fields say which variable they come from
(`env_field("STSEG_RUN_ROOT")`); `from_env(cls)` reads them at call time (never at import), so the local
backend and a pod with the same variables behave the same.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from stseg_core.errors import BadInputError, StsegError

T = TypeVar("T")
_META = "stseg_env"


def env_field(var: str, *, parse: Callable[[str], Any] = str, default: Any = dataclasses.MISSING,
              default_factory: Callable[[], Any] | Any = dataclasses.MISSING, doc: str = "") -> Any:
    """A dataclass field read from `var`; `parse` turns the text into the value (ValueError = bad input).
    Without a default the variable is required."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={_META: (var, parse, doc)})


def from_env(cls: type[T], env: Mapping[str, str] | None = None) -> T:
    """Build `cls` from `env` (default os.environ). Empty values count as unset."""
    env = os.environ if env is None else env
    values = {}
    for f in dataclasses.fields(cls):
        if _META not in f.metadata:
            continue
        var, parse, doc = f.metadata[_META]
        raw = env.get(var, "")
        if raw == "":
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BadInputError(f"{var} is not set" + (f" ({doc})" if doc else ""))
            continue
        try:
            values[f.name] = parse(raw)
        except (ValueError, TypeError) as err:
            raise BadInputError(f"{var}={raw!r}: {err}") from None
    return cls(**values)


# ---- parsers: raise ValueError with a short reason ---------------------------------------------------------
def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("not an integer") from None
    if value < 0:
        raise ValueError("must be ≥ 0")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value < 1:
        raise ValueError("must be ≥ 1")
    return value


def boolean(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean (use true/false)")


def seconds(text: str) -> float:
    """A duration in seconds (a deadline, a wait), 0 or more."""
    value = float(text)
    if value < 0:
        raise ValueError("must be ≥ 0 seconds")
    return value


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object like {\"key\": value}")
    return value


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
    if os.environ.get("STSEG_DEBUG", "").lower() in ("1", "true", "yes"):
        traceback.print_exc()
    print(f"stseg-{stage}: error: {' '.join(text.split())}", file=sys.stderr, flush=True)
    return code
