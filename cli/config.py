"""`stseg.yaml`: where runs live and how Jobs look; flags override the environment, which overrides the file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from stseg_core.errors import BadInputError
from stseg_core.names import split_names
from stseg_core.settings import bad_setting, convert, key_value


@dataclass(frozen=True)
class NodePool:
    """How a cloud labels its A100 nodes: a nodeSelector key and its A100 value."""

    label: str
    a100: str


# GPU node selection presets (`node_pool`): the Kubernetes manifests' nodeSelector; "none" selects no node label.
NODE_POOLS: dict[str, NodePool | None] = {
    "none": None,
    "gke": NodePool("cloud.google.com/gke-accelerator", "nvidia-tesla-a100"),
    "eks": NodePool("node.kubernetes.io/instance-type", "p4d.24xlarge"),
    "karpenter": NodePool("karpenter.k8s.aws/instance-gpu-name", "a100"),
    "gfd": NodePool("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-40GB"),  # NVIDIA GPU feature discovery
}


@dataclass(frozen=True)
class Config:
    """Every setting of the submit commands. Each field `x` can come from `x:` in stseg.yaml or `STSEG_X`."""

    backend: str = "local"
    store: str = "./stseg-store"  # store root URI; a run lives under <store>/runs/<run>/
    data_root: str = "./stseg-data/valid"  # a MOSE-layout split (JPEGImages/, Annotations/)
    gt_root: str = ""  # ground truth of data_root for eval; "" = the sibling `<data_root>_gt` (synthetic layout)
    image_registry: str = "ghcr.io/stseg"
    image_tag: str = "0.1.0"
    node_pool: str = "none"  # GPU node selection preset: a key of NODE_POOLS
    gpu_type: str = ""  # value of the preset's GPU label; "" = the preset's A100 default
    namespace: str = "stseg"
    service_account: str = "stseg-job"
    s3_secret: str = ""  # Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; "" = the service account (IRSA)
    s3_endpoint: str = ""  # a non-AWS S3 endpoint, passed to jobs as STSEG_S3_ENDPOINT
    pushgateway: str = ""
    checkpoints: str = ""  # per-model weights for infer jobs: "sam2=s3://…/best.pt,tmo=file:///…" → STSEG_CHECKPOINT
    kube_context: str = ""  # "" = the kubeconfig's current context, or in-cluster
    kubeconfig: str = ""  # "" = $KUBECONFIG or ~/.kube/config
    kueue_queue: str = ""  # a Kueue LocalQueue; "" = no Kueue
    ttl_seconds: int = 7 * 24 * 3600  # finished Jobs are garbage-collected after this
    workers: int = 0  # local backend: parallel shard processes; 0 = one per core
    state_dir: str = ""  # local backend's pid files and logs; "" = $XDG_STATE_HOME/stseg or ~/.local/state/stseg

    def checkpoint_for(self, model: str) -> str | None:
        """The checkpoint URI `checkpoints` names for `model`, if any."""
        for item in split_names(self.checkpoints):
            name, uri = key_value(item, "checkpoints:", form="MODEL=URI", need_value=True)
            if name == model:
                return uri
        return None

    def ground_truth_root(self) -> str:
        return self.gt_root or f"{self.data_root.rstrip('/')}_gt"

    def local_state_dir(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "stseg"


_FIELDS = {f.name: f for f in fields(Config)}
_HINTS = get_type_hints(Config)


def _coerce(name: str, value: object, source: str) -> object:
    """A setting's value (YAML value, variable or flag text) as its declared type; `source` names it in errors."""
    try:
        return convert("" if value is None and _HINTS[name] is str else value, _HINTS[name])
    except ValueError as err:
        raise bad_setting(source, value, str(err)) from None


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None, flags: Mapping[str, object] | None = None
) -> Config:
    """Defaults < `path` (or $STSEG_CONFIG, or ./stseg.yaml when present) < STSEG_* environment < `flags`.

    Flags whose value is None count as not given.
    """
    import yaml

    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = path or env.get("STSEG_CONFIG") or ("stseg.yaml" if Path("stseg.yaml").is_file() else None)
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise BadInputError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise BadInputError(f"{p}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise BadInputError(f"{p}: expected a mapping of settings at the top level")
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name not in _FIELDS:
                raise BadInputError(f"{p}: unknown setting {key!r} (known: {', '.join(_FIELDS)})")
            values[name] = _coerce(name, value, f"{p}: {name}")
    for name in _FIELDS:
        var = f"STSEG_{name.upper()}"
        if env.get(var):
            values[name] = _coerce(name, env[var], var)
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
    cfg = replace(Config(), **values)
    if (flags or {}).get("workers") is not None and cfg.workers < 1:
        raise BadInputError(f"--workers must be at least 1 (got {cfg.workers})")
    if cfg.workers < 0:
        raise BadInputError(f"workers must be 0 (one per core) or more (got {cfg.workers})")
    if cfg.node_pool not in NODE_POOLS:
        raise BadInputError(f"node_pool {cfg.node_pool!r} is not a preset (known: {', '.join(NODE_POOLS)})")
    return cfg
