"""Training checkpoints in the store: `checkpoints/<model>/<run>/epoch_<n>.pt`, `val.json`, `best`, resume state.

Each `epoch_<n>.pt` is one `torch.save`d dict that the inference adapters read as an ordinary checkpoint
(`{"model": state_dict, …}`) and that a restarted job resumes from:

    model      state dict of the (unwrapped) network
    arch       what fixes the weights' shapes (e.g. {"config": "t"} for sam2, TMOArch fields for tmo)
    epoch      epochs completed (1-based: epoch_5.pt holds the weights after five epochs)
    step       optimizer steps taken since the start of the run
    optimizer  the optimizer's state dict
    rng        {"torch": uint8 tensor, "numpy": …, "python": …} generator states at save time
    recipe     the recipe's fields (plain JSON types), so a checkpoint says how it was trained

`val.json` maps `epoch_<n>.pt` to its validation scores; `best` holds the key of the best one (text).
"""

from __future__ import annotations

import io
import random
import re
from dataclasses import dataclass
from typing import Any

from stseg_core import runlayout
from stseg_core.errors import BackendError, BadInputError
from stseg_core.store import Store, open_store

VAL_FILE = "val.json"
BEST_FILE = "best"
_EPOCH_RE = re.compile(r"^epoch_(\d+)\.pt$")


def rng_state() -> dict[str, Any]:
    """Every generator training draws from (torch CPU, numpy global, python), in weights_only-loadable form."""
    import numpy as np
    import torch

    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple)  # legacy=True: the Mersenne Twister's tuple, never the dict form
    name, keys, pos, has_gauss, cached = legacy
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_lists(obj: Any) -> Any:
    return [_to_lists(x) for x in obj] if isinstance(obj, tuple | list) else obj


def _to_tuples(obj: Any) -> Any:
    return tuple(_to_tuples(x) for x in obj) if isinstance(obj, list) else obj


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved, so a resumed single-process run draws the same augmentations it would
    have (a torchrun resume re-seeds each rank after this: `loop._resume`)."""
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass(frozen=True)
class Resume:
    """The latest saved checkpoint of a run: its key, and the payload described in the module docstring."""

    key: str
    epoch: int
    step: int
    payload: dict[str, Any]


class RunCheckpoints:
    """The checkpoint folder of one finetune run (`checkpoints/<model>/<run>/` below the store root)."""

    def __init__(self, store: Store | str, model: str, run_id: str) -> None:
        root = open_store(store) if isinstance(store, str) else store
        self.store = root.child(runlayout.checkpoint_prefix(model, run_id))
        self.model = model
        self.run_id = run_id

    def uri(self, key: str = "") -> str:
        return self.store.uri(key)

    def check_writable(self) -> None:
        """Write and delete a probe object, so an unwritable store fails before any training step."""
        probe = ".write-probe"
        try:
            self.store.write_bytes(probe, b"stseg")
            self.store.delete(probe)
        except BackendError as err:
            raise BackendError(f"checkpoint store {self.uri()}: cannot write ({err})") from None
        except OSError as err:
            raise BackendError(f"checkpoint store {self.uri()}: cannot write ({err.strerror or err})") from None

    def epochs(self) -> list[int]:
        """Epochs with a saved checkpoint, ascending."""
        found = (_EPOCH_RE.match(k) for k in self.store.list())
        return sorted(int(m.group(1)) for m in found if m)

    def save(self, epoch: int, payload: dict[str, Any]) -> str:
        """Write `epoch_<epoch>.pt` (one atomic object) and return its URI."""
        import torch

        buf = io.BytesIO()
        torch.save(payload, buf)
        key = f"epoch_{int(epoch)}.pt"
        self.store.write_bytes(key, buf.getvalue())
        return self.uri(key)

    def latest(self) -> Resume | None:
        """The newest checkpoint (None for a fresh run); read with weights_only, as inference reads it."""
        import torch

        epochs = self.epochs()
        if not epochs:
            return None
        key = f"epoch_{epochs[-1]}.pt"
        try:
            payload = torch.load(io.BytesIO(self.store.read_bytes(key)), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for a truncated or foreign file
            raise BadInputError(f"checkpoint {self.uri(key)}: cannot resume from it ({type(err).__name__})") from None
        if not isinstance(payload, dict) or not {"model", "epoch", "step", "optimizer"} <= set(payload):
            raise BadInputError(f"checkpoint {self.uri(key)}: not a finetune checkpoint (no epoch/step/optimizer)")
        return Resume(key, int(payload["epoch"]), int(payload["step"]), payload)

    def val_scores(self) -> dict[str, dict[str, float]]:
        return self.store.read_json(VAL_FILE) if self.store.exists(VAL_FILE) else {}

    def record_val(self, epoch: int, scores: dict[str, float], metric: str = "J&F-Mean") -> str:
        """Add the scores of `epoch_<epoch>.pt` to `val.json` and point `best` at the best one so far
        (ties keep the earlier epoch); returns the key `best` names."""
        val = self.val_scores()
        val[f"epoch_{int(epoch)}.pt"] = {**scores, "epoch": int(epoch)}
        self.store.write_json(VAL_FILE, val)
        best = max(val, key=lambda k: (val[k][metric], -val[k]["epoch"]))
        self.store.write_text(BEST_FILE, best + "\n")
        return best

    def best(self) -> str | None:
        """URI of the best checkpoint, or None before the first validation."""
        if not self.store.exists(BEST_FILE):
            return None
        return self.uri(self.store.read_text(BEST_FILE).strip())
