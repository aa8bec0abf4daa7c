"""Bad finetune inputs: each must be refused in one line naming the problem, before the first training step."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from stseg_core.telemetry import JobMetrics

Case = tuple[type[BaseException], str, Mapping[str, Any]]  # error type, text it contains, keyword overrides


def assert_refused_before_any_step(
    finetune: Callable[..., object], model: str, defaults: Mapping[str, Any], cases: Sequence[Case]
) -> None:
    """Run `finetune(recipe, **rest)` with `defaults` overridden by each case; it must raise that case's error,
    on one line containing its text, within 30 s and with the step counter still at 0."""
    for err_type, text, overrides in cases:
        metrics = JobMetrics(run="bad", stage="finetune", model=model)
        args = {**defaults, "metrics": metrics, **overrides}
        t0 = time.perf_counter()
        with pytest.raises(err_type) as info:
            finetune(args.pop("recipe"), **args)
        msg = str(info.value)
        assert text in msg and "\n" not in msg, msg
        assert metrics.value("stseg_train_step") == 0 and time.perf_counter() - t0 < 30
