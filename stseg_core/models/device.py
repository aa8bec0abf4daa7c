"""Where a model runs: CUDA with bf16 autocast when a GPU is present, else CPU; forcible either way."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from stseg_core.errors import BadInputError

_CHOICES = ("cuda", "cpu")


def pick_device(force: str | None = None) -> str:
    """ "cuda" when torch sees a GPU, else "cpu"; `force` ("cuda"/"cpu", or "auto"/None) overrides.

    Forcing "cuda" on a machine without one is bad input rather than a silent fall back to CPU, because a
    GPU job quietly running 50× slower is worse than one that fails at once.
    """
    if force not in (None, "", "auto"):
        if force not in _CHOICES:
            raise BadInputError(f"device {force!r} is not one of auto, {', '.join(_CHOICES)}")
        if force == "cuda" and not _cuda_available():
            raise BadInputError("device 'cuda' was forced but torch sees no CUDA GPU")
        return force
    return "cuda" if _cuda_available() else "cpu"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@contextlib.contextmanager
def autocast(device: str, enabled: bool = True) -> Iterator[None]:
    """bf16 autocast on CUDA (SAM2's and Cutie's inference precision); a no-op on CPU, where bf16 is slower."""
    if device != "cuda" or not enabled:
        yield
        return
    import torch

    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        yield
