"""CPU mode for the upstream evaluation programs (Cutie, XMem, LiVOS), which call CUDA unconditionally.

The upstream adapter puts this folder first on the child process's PYTHONPATH when `device=cpu`; Python
imports `sitecustomize` at start-up, before the program, so the program runs unchanged on the CPU:
`.cuda()` keeps tensors and modules where they are, autocast on "cuda" becomes a disabled CPU autocast
(fp32, as the programs compute without AMP), CUDA events time with the wall clock, synchronize and the
memory counters are no-ops (0 MB), and `torch.load` maps GPU-saved tensors to the CPU.
Never imported by stseg itself.
"""

import functools
import time
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def _keep(self: T, *args: Any, **kwargs: Any) -> T:
    return self


class _WallClockEvent:
    """`torch.cuda.Event` stand-in: `elapsed_time` in milliseconds between two `record()` calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._t = 0.0

    def record(self, *args: Any, **kwargs: Any) -> None:
        self._t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: "_WallClockEvent") -> float:
        return (end._t - self._t) * 1000.0


def _cpu_autocast(*args: Any, **kwargs: Any) -> torch.autocast:
    return torch.autocast("cpu", enabled=False)


class _Autocast(torch.autocast):
    """`torch.amp.autocast(device_type, …)`: "cuda" becomes a disabled CPU autocast."""

    def __init__(self, device_type: str = "cuda", *args: Any, **kwargs: Any) -> None:
        if device_type == "cuda":
            super().__init__("cpu", enabled=False)
        else:
            super().__init__(device_type, *args, **kwargs)


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


_load = torch.load


@functools.wraps(_load)
def _load_on_cpu(*args: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("map_location", "cpu")
    return _load(*args, **kwargs)


torch.Tensor.cuda = _keep
torch.nn.Module.cuda = _keep
torch.cuda.Event = _WallClockEvent
torch.cuda.amp.autocast = _cpu_autocast
torch.amp.autocast = _Autocast
torch.cuda.synchronize = _nothing
torch.cuda.empty_cache = _nothing
torch.cuda.max_memory_allocated = _zero
torch.cuda.max_memory_reserved = _zero
torch.load = _load_on_cpu
