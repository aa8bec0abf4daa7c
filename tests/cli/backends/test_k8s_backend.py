"""The Kubernetes backend against the kmock API emulator over real HTTP with the official client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace

import kmock
import pytest
from kubernetes import client

from stseg_cli.backends.kubernetes import KubernetesBackend
from stseg_cli.config import Config
from stseg_cli.spec import StageRequest, build_specs, pipeline_specs
from stseg_core.errors import BadInputError

NS = "stseg"


class Emulator:
    """kmock's Kubernetes emulator served from its own event loop in a thread (the client under test is sync)."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        async with kmock.KubernetesEmulator() as k8s, kmock.Server(k8s) as server:
            k8s.resources["batch/v1/jobs"] = {}
            k8s.resources["v1/pods"] = {}
            self.k8s, self.url, self._stop = k8s, str(server.url).rstrip("/"), asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Emulator:
        self._thread.start()
        assert self._ready.wait(10), "kmock did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def jobs(self) -> dict[str, dict]:
        """Stored Job bodies by name (what the API server holds)."""
        res = kmock.resource("batch", "v1", "jobs")
        return {name: obj.raw for (r, _ns, name), obj in self.k8s.objects.items() if r == res and not obj.deleted}

    def requests(self, method: str) -> list:
        return [r for r in list(self.k8s) if str(r.method).lower().endswith(method)]


@pytest.fixture()
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture()
def api(emulator: Emulator) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = emulator.url
    return client.ApiClient(conf)


def _cfg(**kw) -> Config:
    return Config(
        **{
            "store": "s3://bucket/stseg",
            "data_root": "s3://bucket/mose/valid",
            "namespace": NS,
            "node_pool": "gke",
            "s3_secret": "stseg-s3",
            "image_registry": "registry.example/stseg",
            "image_tag": "1.2.3",
            **kw,
        }
    )


def _pipeline(cfg: Config, run: str = "r1", shards: int = 4):
    return pipeline_specs(
        cfg, run, StageRequest("infer", models=("sam2", "flowprop"), shards=shards, retries=3), default_gpus=True
    )


def test_submit_creates_exactly_the_expected_jobs(emulator: Emulator, api) -> None:
    cfg = _cfg()
    backend = KubernetesBackend(cfg, api_client=api)
    specs = _pipeline(cfg)
    backend.submit(specs)
    jobs = emulator.jobs()
    assert sorted(jobs) == [
        "stseg-r1-eval",
        "stseg-r1-eval-flowprop",
        "stseg-r1-eval-sam2",
        "stseg-r1-fuse",
        "stseg-r1-infer-flowprop",
        "stseg-r1-infer-sam2",
    ]
    # the server holds exactly what --dry-run prints
    assert [jobs[s.name] for s in specs] == backend.render(specs)
    sam2 = jobs["stseg-r1-infer-sam2"]
    assert sam2["metadata"]["namespace"] == NS
    assert sam2["metadata"]["labels"]["stseg.io/run"] == "r1"
    assert sam2["metadata"]["labels"]["stseg.io/model"] == "sam2"
    spec = sam2["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (3, 1)
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailIndex", "onExitCodes": {"containerName": "stage", "operator": "In", "values": [2]}},
    ]
    assert spec["activeDeadlineSeconds"] == 24 * 3600 and spec["ttlSecondsAfterFinished"] == 7 * 24 * 3600
    assert "suspend" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (stage,) = pod["containers"]
    assert stage["image"] == "registry.example/stseg/stseg-sam2:1.2.3"
    assert stage["command"] == ["python", "-m", "stseg_jobs.infer"]
    assert stage["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert stage["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    env = {e["name"]: e["value"] for e in stage["env"]}
    assert env["STSEG_RUN_ROOT"] == "s3://bucket/stseg/runs/r1" and env["STSEG_NUM_SHARDS"] == "4"
    assert env["STSEG_MODEL"] == "sam2" and env["STSEG_STAGE"] == "infer"
    assert stage["envFrom"] == [{"secretRef": {"name": "stseg-s3"}}]
    assert not any("AWS_" in e["name"] for e in stage["env"])  # credentials only through the Secret
    assert {v["name"]: v["emptyDir"] for v in pod["volumes"]}["dshm"]["medium"] == "Memory"
    # a CPU-only model gets no GPU and no GPU node pool
    flow = jobs["stseg-r1-infer-flowprop"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in flow["containers"][0]["resources"]["limits"] and "nodeSelector" not in flow
    # fuse waits in the cluster for every infer marker; eval for the fuse marker
    fuse_init = jobs["stseg-r1-fuse"]["spec"]["template"]["spec"]["initContainers"][0]
    assert fuse_init["command"] == [
        "stseg",
        "wait-done",
        "s3://bucket/stseg/runs/r1",
        "pred/sam2:4",
        "pred/flowprop:4",
        "--timeout",
        "86400",
    ]
    eval_pod = jobs["stseg-r1-eval"]["spec"]["template"]["spec"]
    assert eval_pod["initContainers"][0]["command"][3:4] == ["fused:4"]  # one fuse index per plan shard
    assert (
        jobs["stseg-r1-fuse"]["spec"]["completions"] == 4
        and jobs["stseg-r1-fuse"]["spec"]["completionMode"] == "Indexed"
    )
    eval_env = {e["name"]: e["value"] for e in eval_pod["containers"][0]["env"]}
    assert (eval_env["STSEG_STAGE"], eval_env["STSEG_DATA_ROOT"]) == ("evaluate", "s3://bucket/mose/valid_gt")
    assert eval_env["STSEG_MODEL"] == ""  # the fused masks
    sam2_eval = jobs["stseg-r1-eval-sam2"]["spec"]["template"]["spec"]
    assert sam2_eval["initContainers"][0]["command"][3:4] == ["pred/sam2:4"]
    assert "nvidia.com/gpu" not in sam2_eval["containers"][0]["resources"]["limits"]
    assert len(emulator.requests("post")) == 6


def test_kueue_jobs_are_created_suspended_in_their_queue(emulator: Emulator, api) -> None:
    cfg = _cfg(kueue_queue="a100-queue")
    KubernetesBackend(cfg, api_client=api).submit(
        build_specs(cfg, "r2", StageRequest("finetune", models=("sam2",), gpus=8), default_gpus=True)
    )
    (job,) = emulator.jobs().values()
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "a100-queue"
    assert job["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["torchrun", "--standalone", "--nproc_per_node=8", "-m", "stseg_jobs.finetune"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert KubernetesBackend(cfg, api_client=api).status("r2").jobs[0].waiting


def _pod(job: str, index: int, phase: str, **status) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job}-{index}-{phase.lower()}",
            "namespace": NS,
            "labels": {"stseg.io/run": "r1", "job-name": job, "batch.kubernetes.io/job-completion-index": str(index)},
        },
        "spec": {"containers": [{"name": "stage", "image": "x"}]},
        "status": {"phase": phase, **status},
    }


def test_status_reads_back_done_running_and_failed_indexes(emulator: Emulator, api) -> None:
    cfg = _cfg()
    backend = KubernetesBackend(cfg, api_client=api)
    backend.submit(_pipeline(cfg))
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.patch_namespaced_job_status(
        "stseg-r1-infer-sam2",
        NS,
        {"status": {"completedIndexes": "0-1", "failedIndexes": "3", "active": 1, "startTime": "2026-01-01T00:00:00Z"}},
    )
    batch.patch_namespaced_job_status(
        "stseg-r1-infer-flowprop",
        NS,
        {
            "status": {
                "completedIndexes": "0,2",
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "DeadlineExceeded",
                        "message": "Job was active longer than specified deadline",
                    }
                ],
            }
        },
    )
    job = "stseg-r1-infer-sam2"
    core.create_namespaced_pod(NS, _pod(job, 2, "Running"))
    core.create_namespaced_pod(
        NS,
        _pod(
            job,
            3,
            "Failed",
            containerStatuses=[
                {
                    "name": "stage",
                    "image": "x",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": 2,
                            "message": "loading\nstseg: error: v3/00000.png: not a palette PNG",
                        }
                    },
                }
            ],
        ),
    )
    status = {j.name: j for j in backend.status("r1").jobs}
    sam2 = status["stseg-r1-infer-sam2"]
    assert (sam2.done, sam2.running) == ({0, 1}, {2})
    assert sam2.failed == {3: "exit 2: stseg: error: v3/00000.png: not a palette PNG"}
    assert sam2.elapsed_s > 0 and not sam2.finished
    flow = status["stseg-r1-infer-flowprop"]
    assert flow.done == {0, 2} and flow.finished
    assert flow.failed == {
        k: "job failed: DeadlineExceeded Job was active longer than specified deadline" for k in (1, 3)
    }
    assert status["stseg-r1-fuse"].done == frozenset()


def test_status_counts_the_frames_of_done_shards_from_their_markers(
    emulator: Emulator, api, tmp_path, store_calls
) -> None:
    from stseg_core.runlayout import commit_shard
    from stseg_core.store import open_store

    cfg = _cfg(store=str(tmp_path / "store"))
    backend = KubernetesBackend(cfg, api_client=api)
    backend.submit(_pipeline(cfg, shards=2))
    run = open_store(tmp_path / "store" / "runs" / "r1")
    for shard, frames in ((0, 3), (1, 5)):
        keys = [f"pred/sam2/v{shard}/{f:05d}.png" for f in range(frames)] + [f"pred/sam2/v{shard}/scores.json"]
        for key in keys:
            run.write_bytes(key, b"x")
        commit_shard(run, "pred/sam2", shard, keys)
    client.BatchV1Api(api).patch_namespaced_job_status(
        "stseg-r1-infer-sam2",
        NS,
        {
            "status": {
                "completedIndexes": "0-1",
                "startTime": "2026-01-01T00:00:00Z",
                "completionTime": "2026-01-01T00:00:04Z",
            }
        },
    )
    store_calls.clear()
    status = {j.name: j for j in backend.status("r1").jobs}
    assert status["stseg-r1-infer-sam2"].frames == 8  # PNGs the two markers list, not scores.json
    assert status["stseg-r1-infer-sam2"].frames_per_s == 2.0
    assert status["stseg-r1-infer-flowprop"].frames == 0  # nothing done yet
    assert store_calls["list_sizes"] == 1 and store_calls["read_bytes"] == 2  # one listing, each marker once
    store_calls.clear()
    again = {j.name: j for j in backend.status("r1").jobs}  # the next poll of `--watch`: markers not read again
    assert again["stseg-r1-infer-sam2"].frames == 8
    assert store_calls["list_sizes"] == 1 and store_calls["read_bytes"] == 0


def test_cancel_deletes_the_runs_jobs_with_their_pods(emulator: Emulator, api) -> None:
    cfg = _cfg()
    backend = KubernetesBackend(cfg, api_client=api)
    backend.submit(_pipeline(cfg, "r1"))
    backend.submit(_pipeline(cfg, "other"))
    assert backend.runs() == ["other", "r1"]
    assert backend.cancel("r1") == 6
    assert sorted(emulator.jobs()) == sorted(s.name for s in _pipeline(cfg, "other"))
    deletes = emulator.requests("delete")
    assert len(deletes) == 6
    assert all(r.params["propagationPolicy"] == "Foreground" for r in deletes)  # pods go with their Job


def test_second_submit_is_refused_or_resumes_only_missing_jobs(emulator: Emulator, api) -> None:
    cfg = _cfg()
    backend = KubernetesBackend(cfg, api_client=api)
    specs = _pipeline(cfg)
    backend.submit(specs)
    with pytest.raises(BadInputError, match=r"^run r1 already has stseg-r1-eval, .* pass --resume"):
        backend.submit(specs)
    client.BatchV1Api(api).delete_namespaced_job("stseg-r1-fuse", NS)
    client.BatchV1Api(api).patch_namespaced_job_status(
        "stseg-r1-infer-sam2",
        NS,
        {
            "status": {
                "failedIndexes": "1",
                "conditions": [{"type": "Failed", "status": "True", "reason": "MaxFailedIndexesExceeded"}],
            }
        },
    )
    posts = len(emulator.requests("post"))
    backend.submit(specs, resume=True)
    created = [r.data["metadata"]["name"] for r in emulator.requests("post")[posts:]]
    assert created == ["stseg-r1-infer-sam2", "stseg-r1-fuse"]  # the missing Job and the failed one, re-made
    assert "status" not in emulator.jobs()["stseg-r1-infer-sam2"]


def test_waiting_submit_computes_one_status_per_poll(emulator: Emulator, api, monkeypatch, tmp_path) -> None:
    """`submit --wait` hands the status it just computed to the progress bars instead of their fetching another."""
    from stseg_cli.run_watch import attached

    cfg = _cfg(store=str(tmp_path / "store"))  # a store status can list (an unreachable S3 costs minutes of retries)
    backend = KubernetesBackend(cfg, api_client=api)
    specs = _pipeline(cfg)
    backend.submit(specs)
    for spec in specs:  # every Job done: the wait ends at its first poll
        done = {"completedIndexes": f"0-{spec.shards - 1}" if spec.shards > 1 else "0"}
        client.BatchV1Api(api).patch_namespaced_job_status(spec.name, NS, {"status": done})
    statuses = []
    monkeypatch.setattr(backend, "_status", lambda run, _real=backend._status: statuses.append(run) or _real(run))
    attached(backend, "r1", lambda bars: backend.submit(specs, resume=True, wait=True, on_change=bars.refresh))
    assert statuses == ["r1"]  # the poll's own; none again for the bars' update or their last frame


def test_logs_read_the_newest_pod_of_the_shard(emulator: Emulator, api) -> None:
    cfg = _cfg()
    backend = KubernetesBackend(cfg, api_client=api)
    backend.submit(_pipeline(cfg))
    client.CoreV1Api(api).create_namespaced_pod(NS, _pod("stseg-r1-infer-sam2", 1, "Running"))
    emulator.k8s[f"get /api/v1/namespaces/{NS}/pods/stseg-r1-infer-sam2-1-running/log"] << b"shard 1: 12 frames\n"
    assert "".join(backend.logs("r1", "infer", "sam2", 1)) == "shard 1: 12 frames\n"
    with pytest.raises(BadInputError, match="no pod of job stseg-r1-infer-sam2 shard 2"):
        list(backend.logs("r1", "infer", "sam2", 2))


def test_missing_kubeconfig_context_is_one_line(tmp_path, emulator: Emulator) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: emu, cluster: {{server: "{emulator.url}"}}}}]
users: [{{name: me, user: {{token: t}}}}]
contexts: [{{name: dev, context: {{cluster: emu, user: me}}}}]
current-context: dev
""")
    with pytest.raises(BadInputError) as err:
        KubernetesBackend(_cfg(kubeconfig=str(kubeconfig), kube_context="prod")).runs()
    assert str(err.value) == f"kubeconfig context 'prod' not found in {kubeconfig} (known: dev)"
    # the context that exists reaches the emulator through the kubeconfig
    assert KubernetesBackend(_cfg(kubeconfig=str(kubeconfig), kube_context="dev")).runs() == []


def test_every_spec_field_reaches_the_manifest(api) -> None:
    cfg = _cfg(node_pool="eks", gpu_type="p5.48xlarge", s3_secret="")
    (spec,) = build_specs(
        cfg,
        "r3",
        StageRequest("infer", models=("cutie",), shards=8, parallelism=2, cpu="6", memory="40Gi"),
        default_gpus=True,
    )
    assert spec.max_failed_shards == 2  # a quarter of the shards
    spec = replace(spec, deadline_s=600, max_failed_shards=3)
    (job,) = KubernetesBackend(cfg, api_client=api).render([spec])
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node.kubernetes.io/instance-type": "p5.48xlarge"}
    assert "envFrom" not in pod["containers"][0]  # no Secret: the service account's IRSA role
    assert pod["serviceAccountName"] == "stseg-job" and pod["automountServiceAccountToken"] is False
    limits = pod["containers"][0]["resources"]["limits"]
    assert (limits["cpu"], limits["memory"]) == ("6", "40Gi")
    assert (job["spec"]["parallelism"], job["spec"]["maxFailedIndexes"], job["spec"]["activeDeadlineSeconds"]) == (
        2,
        3,
        600,
    )
