"""Checkpoints from the store: resolve a URI to a local file (cached for S3) and load state dicts strictly.

Every model reads its weights through here, so a checkpoint is found, cached and checked the same way for
`sam2`, `tmo` and anything finetuned: a missing URI is a `MissingArtifactError`, a file that is not a
checkpoint or does not fit the model is a `BadInputError` naming the URI and a few offending keys.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.store import open_store

if TYPE_CHECKING:
    import torch

_SHOW_KEYS = 3  # offending keys named in an error message


def cache_dir() -> Path:
    """Where remote checkpoints are cached: `$STSEG_CACHE/checkpoints`, else `~/.cache/stseg/checkpoints`."""
    base = os.environ.get("STSEG_CACHE") or Path.home() / ".cache" / "stseg"
    return Path(base) / "checkpoints"


def split_checkpoint_uri(uri: str) -> tuple[str, str]:
    """`…/folder/name.pt` → (store URI of the folder, key `name.pt`)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        parent, _, name = uri.rstrip("/").rpartition("/")
        if not parsed.netloc or parent in ("s3:", "s3:/"):
            raise BadInputError(f"checkpoint {uri}: an S3 checkpoint URI needs a bucket and a key (s3://bucket/key)")
        return parent, name
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
    if not path.name:
        raise BadInputError(f"checkpoint {uri}: names no file")
    return str(path.parent), path.name


def resolve_checkpoint(uri: str) -> Path:
    """A local file holding the checkpoint at `uri` (a path, `file://` or `s3://`).

    Local files are used in place. Remote ones are downloaded once into `cache_dir()`, under a folder named
    by a hash of the URI and the object's size: checkpoint keys are written once by the run layout
    (`checkpoints/<model>/<run>/epoch_<n>.pt`), and the size guards against a replaced object. The
    store's download is atomic (temp file + rename), so concurrent jobs on one node never read a
    half-written file.
    """
    uri = str(uri)
    folder, key = split_checkpoint_uri(uri)
    store = open_store(folder)
    local = store.local_path(key)
    if local is not None:
        if not local.is_file():
            raise MissingArtifactError(f"checkpoint {uri}: not found")
        return local
    size = store.list_sizes(key).get(key)
    if size is None:
        raise MissingArtifactError(f"checkpoint {uri}: not found")
    digest = hashlib.sha256(f"{uri}\n{size}".encode()).hexdigest()[:20]
    dest = cache_dir() / digest / key
    if not (dest.is_file() and dest.stat().st_size == size):
        store.read_file(key, dest)  # streamed, ranged parallel GETs for large files, temp + rename
    return dest


def read_entry(uri: str, key: str) -> dict[str, Any]:
    """A dict our finetune stage writes beside the weights (`arch`: config and resolution; `recipe`: every
    training setting), so inference defaults to how the model was trained; {} when absent (upstream
    releases carry none)."""
    import torch

    try:
        obj = torch.load(resolve_checkpoint(uri), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable files are reported by read_state_dict with the reason
        return {}
    entry = obj.get(key) if isinstance(obj, Mapping) else None
    return dict(entry) if isinstance(entry, Mapping) else {}


def read_state_dict(uri: str, key: str = "model") -> dict[str, torch.Tensor]:
    """The state dict stored at `uri`: `ckpt[key]` (upstream SAM2 and our finetune stage save
    `{"model": state_dict, …}`) or the file itself when it is a bare state dict of tensors."""
    import torch

    path = resolve_checkpoint(uri)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises a zoo of types for non-checkpoint bytes
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BadInputError(f"checkpoint {uri}: not a readable PyTorch checkpoint ({reason[:200]})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
        obj = obj[key]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        top = sorted(map(str, obj))[:_SHOW_KEYS] if isinstance(obj, Mapping) else type(obj).__name__
        raise BadInputError(
            f"checkpoint {uri}: holds no state dict (expected {{{key!r}: state_dict}} or a bare "
            f"state dict; top level: {top})"
        )
    return dict(obj)


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW_KEYS])
    return shown + (f", … ({len(keys)} in all)" if len(keys) > _SHOW_KEYS else "")


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, Any], *, source: str, model: str) -> None:
    """Load `state_dict` into `module`, refusing any missing, unexpected or wrongly shaped key.

    Checked before `load_state_dict` so the error names the checkpoint and the model in one line instead
    of torch's multi-line report; a checkpoint of another architecture (hiera-s into hiera-t, TMO into
    SAM2) fails here.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(
        k for k in set(expected) & set(state_dict) if tuple(expected[k].shape) != tuple(state_dict[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if shapes:
        k = shapes[0]
        problems.append(
            f"shape mismatch {_few(shapes)} (e.g. {k}: checkpoint {list(state_dict[k].shape)}, "
            f"model {list(expected[k].shape)})"
        )
    if problems:
        raise BadInputError(f"checkpoint {source}: does not fit model {model}: {'; '.join(problems)}")
    module.load_state_dict(state_dict, strict=True)


def load_checkpoint(module: torch.nn.Module, uri: str, *, model: str, key: str = "model") -> None:
    """Resolve `uri`, read its state dict and load it strictly into `module`."""
    load_strict(module, read_state_dict(uri, key=key), source=uri, model=model)
