"""The Kubernetes backend: one Indexed Job per JobSpec (one index per shard), through the official client.

Ordering lives in the cluster, not on the laptop: a Job whose spec waits for upstream stages (fuse waits for
every infer marker, eval for every fuse marker) starts with an init container running `stseg wait-done`, which
polls the store for those done markers and gives up after the Job's deadline. So `stseg submit pipeline`
creates every Job at once and the laptop may go offline; a controller-side alternative (Argo, a Job that
creates Jobs) would need extra RBAC and another moving part for the same guarantee.

The manifests themselves (labels, containers, scheduling, failure policy) are built in `k8s_manifest`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from stseg_cli.backends.base import (
    Backend,
    Capabilities,
    JobStatus,
    OnChange,
    RunStatus,
    done_frames,
    parse_indexes,
)
from stseg_cli.backends.k8s_manifest import CONTAINER, job_manifest
from stseg_cli.spec import JobSpec, job_name, output_prefix
from stseg_core.errors import BackendError, BadInputError

RUN_LABEL = "stseg.io/run"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


def _client():
    try:
        from kubernetes import client
    except ImportError:
        raise BackendError("the kubernetes backend needs the kubernetes client: pip install 'stseg[kube]'") from None
    return client


def _api_error(err, what: str) -> BackendError:
    reason = getattr(err, "reason", "") or type(err).__name__
    return BackendError(f"kubernetes: {what}: {getattr(err, 'status', '')} {reason}".replace("  ", " "))


class KubernetesBackend(Backend):
    """Indexed Jobs on a cluster (kubeconfig context or in-cluster service account)."""

    name = "kubernetes"
    capabilities = Capabilities(
        gpus=True, kueue=True, node_pools=True, local_files=False, waits_by_default=False, resume=False
    )

    def __init__(self, config, api_client=None) -> None:
        super().__init__(config)
        self._api_client = api_client
        # {job name: done_frames' cache}: `--watch` and `--wait` read each done marker once per process
        self._frames: dict[str, dict[str, list[int]]] = {}

    # -- connection -------------------------------------------------------------------------------
    def _connect(self):
        if self._api_client is not None:
            return self._api_client
        client = _client()
        from kubernetes import config as kconfig

        path = Path(
            self.config.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
        ).expanduser()
        context = self.config.kube_context or None
        if path.is_file():
            try:
                contexts, _ = kconfig.list_kube_config_contexts(config_file=str(path))
            except kconfig.ConfigException as err:
                raise BadInputError(f"kubeconfig {path}: {str(err).splitlines()[0]}") from None
            names = [c["name"] for c in contexts or []]
            if context and context not in names:
                raise BadInputError(
                    f"kubeconfig context {context!r} not found in {path} (known: {', '.join(names) or 'none'})"
                )
            conf = client.Configuration()
            kconfig.load_kube_config(config_file=str(path), context=context, client_configuration=conf)
        elif context:
            raise BadInputError(f"kubeconfig context {context!r} asked for, but there is no kubeconfig at {path}")
        else:
            try:
                kconfig.load_incluster_config()
            except kconfig.ConfigException:
                raise BadInputError(
                    f"no kubeconfig at {path} and not inside a cluster; set kubeconfig/kube_context in stseg.yaml"
                ) from None
            conf = client.Configuration.get_default_copy()
        self._api_client = client.ApiClient(conf)
        return self._api_client

    def _batch(self):
        return _client().BatchV1Api(self._connect())

    def _core(self):
        return _client().CoreV1Api(self._connect())

    # -- manifests --------------------------------------------------------------------------------
    def manifest(self, spec: JobSpec):
        """The V1Job for `spec` (client model objects, so misspelled fields fail here already)."""
        return job_manifest(_client(), spec, self.config)

    def _render(self, specs: Sequence[JobSpec]) -> list[dict]:
        sanitize = _client().ApiClient().sanitize_for_serialization
        return [sanitize(self.manifest(s)) for s in specs]

    # -- jobs of a run ----------------------------------------------------------------------------
    def _run_jobs(self, run: str | None = None) -> list:
        """Jobs of `run` (all stseg runs when None). Labels are filtered here too, not only server-side."""
        selector = f"{RUN_LABEL}={run}" if run else RUN_LABEL
        try:
            items = self._batch().list_namespaced_job(self.config.namespace, label_selector=selector).items
        except _client().ApiException as err:
            raise _api_error(err, f"list jobs in namespace {self.config.namespace}") from None
        return [
            j
            for j in items
            if (j.metadata.labels or {}).get(RUN_LABEL) and (run is None or j.metadata.labels[RUN_LABEL] == run)
        ]

    def _submit(
        self, specs: list[JobSpec], *, resume: bool, wait: bool, on_change: OnChange | None
    ) -> RunStatus | None:
        run = specs[0].run
        batch = self._batch()
        ns = self.config.namespace
        existing = {j.metadata.name: j for j in self._run_jobs(run)}
        clash = sorted(set(existing) & {s.name for s in specs})
        if clash and not resume:
            raise BadInputError(
                f"run {run} already has {', '.join(clash)} in namespace {ns}; pass --resume to "
                "create only its missing Jobs, or choose another --run"
            )
        ApiException = _client().ApiException
        for spec in specs:
            job = existing.get(spec.name)
            if job is not None and not _has_condition(job, "Failed"):
                continue  # resume: a live or finished Job carries on by itself
            if job is not None:  # a failed Job cannot restart: replace it (its done shards are no-ops)
                self._delete(spec.name)
                self._wait_gone(spec.name)
            try:
                batch.create_namespaced_job(ns, self.manifest(spec))
            except ApiException as err:
                raise _api_error(err, f"create job {spec.name} in namespace {ns}") from None
        if not wait:
            return None
        while True:
            status = self._status(run)
            if on_change:
                on_change(status)
            if status.finished:
                return status
            time.sleep(5)

    def _delete(self, name: str) -> None:
        try:
            # Foreground: the Job object goes only after its pods, so nothing of the run keeps running.
            self._batch().delete_namespaced_job(name, self.config.namespace, propagation_policy="Foreground")
        except _client().ApiException as err:
            if err.status != 404:
                raise _api_error(err, f"delete job {name}") from None

    def _wait_gone(self, name: str, timeout_s: float = 120) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            try:
                self._batch().read_namespaced_job(name, self.config.namespace)
            except _client().ApiException as err:
                if err.status == 404:
                    return
                raise _api_error(err, f"read job {name}") from None
            time.sleep(1)
        raise BackendError(f"kubernetes: job {name} still exists {timeout_s:.0f} s after its deletion")

    def _pods(self, run: str) -> list:
        try:
            items = self._core().list_namespaced_pod(self.config.namespace, label_selector=f"{RUN_LABEL}={run}").items
        except _client().ApiException as err:
            raise _api_error(err, f"list pods in namespace {self.config.namespace}") from None
        return [p for p in items if (p.metadata.labels or {}).get(RUN_LABEL) == run]

    def _status(self, run: str) -> RunStatus:
        jobs = sorted(self._run_jobs(run), key=lambda j: j.metadata.name)
        if not jobs:
            raise BadInputError(f"no jobs of run {run} in namespace {self.config.namespace} (see `stseg runs`)")
        pods = self._pods(run)
        stores: dict = {}
        out = []
        for job in jobs:
            st = job.status
            shards = job.spec.completions or 1
            done = parse_indexes(st.completed_indexes if st else None)
            failed_idx = parse_indexes(st.failed_indexes if st else None)
            mine = [p for p in pods if (p.metadata.labels or {}).get("job-name") == job.metadata.name]
            running = (
                frozenset(
                    int(p.metadata.labels[INDEX_LABEL])
                    for p in mine
                    if p.status and p.status.phase in ("Pending", "Running") and INDEX_LABEL in p.metadata.labels
                )
                - done
                - failed_idx
            )
            failed = {k: _pod_reason(mine, k) for k in sorted(failed_idx)}
            stopped = _condition(job, "Failed")
            if stopped is not None:  # deadline or too many failed indexes: every unfinished shard is lost
                why = f"job failed: {stopped.reason or ''} {stopped.message or ''}".strip()
                failed.update({k: why for k in range(shards) if k not in done and k not in failed})
                running = frozenset()
            start = st.start_time if st else None
            end = (st.completion_time if st else None) or None
            elapsed = ((end.timestamp() if end else time.time()) - start.timestamp()) if start else 0.0
            labels = job.metadata.labels or {}
            stage = labels.get("stseg.io/stage", "")
            model = "" if labels.get("stseg.io/model") == "all" else labels.get("stseg.io/model", "")
            out.append(
                JobStatus(
                    name=job.metadata.name,
                    stage=stage,
                    model=model,
                    shards=shards,
                    done=done,
                    frames=_done_frames(
                        job, output_prefix(stage, model), done, stores, self._frames.setdefault(job.metadata.name, {})
                    ),
                    running=running,
                    failed=failed,
                    waiting=bool(job.spec.suspend) or _has_condition(job, "Suspended"),
                    elapsed_s=max(0.0, elapsed),
                )
            )
        return RunStatus(run=run, jobs=tuple(out))

    def _logs(self, run: str, stage: str, model: str, shard: int, follow: bool) -> Iterator[str]:
        name = job_name(run, stage, model)
        pods = [
            p
            for p in self._pods(run)
            if (p.metadata.labels or {}).get("job-name") == name
            and (p.metadata.labels or {}).get(INDEX_LABEL) == str(shard)
        ]
        if not pods:
            raise BadInputError(
                f"no pod of job {name} shard {shard} in namespace {self.config.namespace} "
                "(not started, or removed after ttlSecondsAfterFinished)"
            )
        pod = max(pods, key=lambda p: p.metadata.creation_timestamp.timestamp() if p.metadata.creation_timestamp else 0)
        try:
            resp = self._core().read_namespaced_pod_log(
                pod.metadata.name, self.config.namespace, container=CONTAINER, follow=follow, _preload_content=False
            )
        except _client().ApiException as err:
            raise _api_error(err, f"logs of pod {pod.metadata.name}") from None
        for chunk in resp.stream(4096):
            yield chunk.decode("utf-8", "replace")

    def _cancel(self, run: str) -> int:
        jobs = self._run_jobs(run)
        for job in jobs:
            self._delete(job.metadata.name)
        return len(jobs)

    def _runs(self) -> list[str]:
        return sorted({j.metadata.labels[RUN_LABEL] for j in self._run_jobs()})


def _condition(job, kind: str):
    for cond in (job.status.conditions or []) if job.status else []:
        if cond.type == kind and cond.status == "True":
            return cond
    return None


def _has_condition(job, kind: str) -> bool:
    return _condition(job, kind) is not None


def _pod_reason(pods: list, index: int) -> str:
    """The last failed pod of `index`: its exit code and the last line of its termination message."""
    failed = [
        p
        for p in pods
        if (p.metadata.labels or {}).get(INDEX_LABEL) == str(index) and p.status and p.status.phase == "Failed"
    ]
    for pod in sorted(failed, key=lambda p: p.metadata.name, reverse=True):
        for cs in pod.status.container_statuses or []:
            term = cs.state.terminated if cs.name == CONTAINER and cs.state else None
            if term is not None:
                lines = [ln for ln in (term.message or "").splitlines() if ln.strip()]
                return f"exit {term.exit_code}: {lines[-1] if lines else term.reason or ''}".rstrip(": ")
        if pod.status.reason:
            return f"{pod.status.reason}: {pod.status.message or ''}".rstrip(": ")
    return "failed (no pod left to read the reason from)"


def _done_frames(job, prefix: str | None, done: frozenset[int], stores: dict, cache: dict[str, list[int]]) -> int:
    """Frames the Job's done shards wrote, from their markers in the run root its pods were given (`cache`: see
    `done_frames`)."""
    env = {e.name: e.value for e in (job.spec.template.spec.containers[0].env or [])}
    root = env.get("STSEG_RUN_ROOT")
    if not (root and prefix and done):
        return 0
    if root not in stores:
        from stseg_core.store import open_store

        try:
            stores[root] = open_store(root)
        except Exception:  # status never fails for want of store access
            return 0
    try:  # one listing, the markers read in parallel (at MOSE's size they hold ~115 MB of file lists in all)
        counted = done_frames(stores[root], prefix, cache)
    except Exception:  # status never fails for want of store access
        return 0
    return sum(counted.get(k, 0) for k in done)
