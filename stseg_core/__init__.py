"""stseg_core: the STSeg library — data layout, storage, models, training, fusion, metrics, telemetry.

Knows nothing of click or Kubernetes; `stseg_jobs` and `stseg_cli` call into it.
"""

__version__ = "0.1.0"
