"""The Indexed Job a JobSpec becomes on Kubernetes, built from small parts (labels, environment, containers,
scheduling, volumes, failure policy) out of the official client's model objects, so a misspelled field fails
when the manifest is built, not on the server.

Per-shard failure handling is the Job controller's: `backoffLimitPerIndex` retries a shard, `maxFailedIndexes`
stops a run that fails everywhere, and the `podFailurePolicy` ignores disruptions (preemption, node drain) and
fails an index at once when the stage exits with the bad-input code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from stseg_cli.config import NODE_POOLS, Config
from stseg_cli.spec import JobSpec, Resources
from stseg_core.errors import BadInputError

CONTAINER = "stage"
KUEUE_LABEL = "kueue.x-k8s.io/queue-name"
UID = 10001  # the images' non-root user
# Security-scan exceptions, written on every Job with their reasons (checkov reads them from the object).
CHECKOV_SKIPS = (
    (
        "checkov.io/skip1",
        "CKV_K8S_43=images are named by the release/git-SHA tag `make images` pushes; a digest "
        "needs the registry at render time",
    ),
    ("checkov.io/skip2", "CKV_K8S_15=multi-GB CUDA images are pulled once per node (IfNotPresent), not per shard"),
    (
        "checkov.io/skip3",
        "CKV_K8S_35=boto3 reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the environment; "
        "IRSA/workload identity needs no Secret at all",
    ),
)
_WAIT_RESOURCES = {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "1Gi"}


@dataclass(frozen=True)
class _Parts:
    """What the stage container and the wait-inputs init container share."""

    env: list[Any]
    env_from: list[Any] | None
    security: Any
    mounts: list[Any]


def _labels(spec: JobSpec, cfg: Config) -> tuple[dict[str, str], dict[str, str]]:
    """(the pods' labels, the Job's: the same plus the Kueue queue when there is one)."""
    labels = {
        "app.kubernetes.io/name": "stseg",
        "app.kubernetes.io/component": spec.stage,
        "app.kubernetes.io/managed-by": "stseg-cli",
        **dict(spec.labels),
    }
    return labels, ({**labels, KUEUE_LABEL: cfg.kueue_queue} if cfg.kueue_queue else labels)


def _parts(c: ModuleType, spec: JobSpec, cfg: Config) -> _Parts:
    env = [c.V1EnvVar(name=k, value=v) for k, v in spec.env]
    # Writable places on a read-only root filesystem: caches and temporary files go to emptyDirs.
    env += [
        c.V1EnvVar(name="HOME", value="/scratch"),
        c.V1EnvVar(name="XDG_CACHE_HOME", value="/scratch/.cache"),
        c.V1EnvVar(name="TMPDIR", value="/tmp"),
        c.V1EnvVar(name="STSEG_SCRATCH", value="/scratch"),
    ]
    # S3 credentials come from a Secret (or, without one, the service account's IRSA / workload identity):
    # never in args, never in the spec's env, so `--dry-run -o yaml` and logs never show them.
    env_from = [c.V1EnvFromSource(secret_ref=c.V1SecretEnvSource(name=cfg.s3_secret))] if cfg.s3_secret else None
    security = c.V1SecurityContext(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        privileged=False,
        capabilities=c.V1Capabilities(drop=["ALL"]),
    )
    mounts = [c.V1VolumeMount(name="scratch", mount_path="/scratch"), c.V1VolumeMount(name="tmp", mount_path="/tmp")]
    return _Parts(env, env_from, security, mounts)


def _stage_container(c: ModuleType, spec: JobSpec, parts: _Parts) -> Any:
    res = spec.resources
    quantities = {"cpu": res.cpu, "memory": res.memory, "ephemeral-storage": res.scratch}
    if res.gpus:
        quantities["nvidia.com/gpu"] = str(res.gpus)
    return c.V1Container(
        name=CONTAINER,
        image=spec.image,
        image_pull_policy="IfNotPresent",
        command=list(spec.command),
        env=parts.env,
        env_from=parts.env_from,
        security_context=parts.security,
        resources=c.V1ResourceRequirements(requests=quantities, limits=quantities),
        volume_mounts=[*parts.mounts, c.V1VolumeMount(name="dshm", mount_path="/dev/shm")],
        termination_message_policy="FallbackToLogsOnError",
    )


def _wait_containers(c: ModuleType, spec: JobSpec, parts: _Parts) -> list[Any] | None:
    """The init container that waits for the upstream stages' done markers (`stseg wait-done`), if any."""
    if not spec.waits_for:
        return None
    return [
        c.V1Container(
            name="wait-inputs",
            image=spec.image,
            image_pull_policy="IfNotPresent",
            command=[
                "stseg",
                "wait-done",
                spec.run_root,
                *[f"{w.prefix}:{w.shards}" for w in spec.waits_for],
                "--timeout",
                str(spec.deadline_s),
            ],
            env=parts.env,
            env_from=parts.env_from,
            security_context=parts.security,
            volume_mounts=parts.mounts,
            resources=c.V1ResourceRequirements(requests=_WAIT_RESOURCES, limits=_WAIT_RESOURCES),
            termination_message_policy="FallbackToLogsOnError",
        )
    ]


def _scheduling(c: ModuleType, res: Resources, cfg: Config) -> tuple[dict[str, str] | None, list[Any] | None]:
    """(nodeSelector, tolerations): GPU pods tolerate the GPU taint and, with a node-pool preset, pick its GPU."""
    if not res.gpus:
        return None, None
    pool = NODE_POOLS[cfg.node_pool]
    tolerations = [c.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]
    return ({pool.label: res.gpu_type or pool.a100} if pool else None), tolerations


def _pod(c: ModuleType, spec: JobSpec, cfg: Config, parts: _Parts) -> Any:
    res = spec.resources
    node_selector, tolerations = _scheduling(c, res, cfg)
    volumes = [
        c.V1Volume(name="dshm", empty_dir=c.V1EmptyDirVolumeSource(medium="Memory", size_limit=res.shm)),
        c.V1Volume(name="scratch", empty_dir=c.V1EmptyDirVolumeSource(size_limit=res.scratch)),
        c.V1Volume(name="tmp", empty_dir=c.V1EmptyDirVolumeSource(size_limit="2Gi")),
    ]
    return c.V1PodSpec(
        restart_policy="Never",
        service_account_name=cfg.service_account,
        automount_service_account_token=False,
        enable_service_links=False,
        security_context=c.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=UID,
            run_as_group=UID,
            fs_group=UID,
            seccomp_profile=c.V1SeccompProfile(type="RuntimeDefault"),
        ),
        init_containers=_wait_containers(c, spec, parts),
        containers=[_stage_container(c, spec, parts)],
        volumes=volumes,
        node_selector=node_selector,
        tolerations=tolerations,
    )


def _failure_policy(c: ModuleType) -> Any:
    """Disruptions (preemption, drain) are not failures; the bad-input exit fails the index at once."""
    return c.V1PodFailurePolicy(
        rules=[
            c.V1PodFailurePolicyRule(
                action="Ignore",
                on_pod_conditions=[c.V1PodFailurePolicyOnPodConditionsPattern(type="DisruptionTarget", status="True")],
            ),
            c.V1PodFailurePolicyRule(
                action="FailIndex",
                on_exit_codes=c.V1PodFailurePolicyOnExitCodesRequirement(
                    container_name=CONTAINER, operator="In", values=[BadInputError.exit_code]
                ),
            ),
        ]
    )


def job_manifest(c: ModuleType, spec: JobSpec, cfg: Config) -> Any:
    """The V1Job for `spec`; `c` is the kubernetes client's `client` module."""
    labels, job_labels = _labels(spec, cfg)
    return c.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=c.V1ObjectMeta(
            name=spec.name, namespace=cfg.namespace, labels=job_labels, annotations=dict(CHECKOV_SKIPS)
        ),
        spec=c.V1JobSpec(
            completion_mode="Indexed",
            completions=spec.shards,
            parallelism=spec.parallelism,
            backoff_limit_per_index=spec.retries,
            max_failed_indexes=spec.max_failed_shards,
            pod_failure_policy=_failure_policy(c),
            active_deadline_seconds=spec.deadline_s,
            ttl_seconds_after_finished=cfg.ttl_seconds,
            suspend=True if cfg.kueue_queue else None,
            template=c.V1PodTemplateSpec(
                metadata=c.V1ObjectMeta(labels=labels), spec=_pod(c, spec, cfg, _parts(c, spec, cfg))
            ),
        ),
    )
