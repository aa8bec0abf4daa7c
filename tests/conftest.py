"""Shared fixtures. Servers used by many test modules (the local S3 server) live here."""

import os
import uuid
from pathlib import Path

import pytest

from stseg_testing import faultproxy

# Two cores are shared by pytest-xdist workers: keep each worker's math libraries single-threaded.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# ---- local S3: moto's real HTTP server, boto3 unchanged -------------------------------------------


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 (free port) with dummy credentials in the environment; yields its URL."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }.items():
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(name, raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch) -> str:
    """A fresh, empty bucket on the local S3 server, with STSEG_S3_ENDPOINT pointing at the server."""
    import boto3

    monkeypatch.setenv("STSEG_S3_ENDPOINT", s3_server)
    name = f"t-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(s3_bucket):
    """`open_store("s3://<fresh bucket>/prefix")` against the local S3 server."""
    from stseg_core.store import open_store

    return open_store(f"s3://{s3_bucket}/prefix")


@pytest.fixture
def fault_proxy(s3_server):
    """Factory: `fault_proxy(policy, slow_s=…)` → a FaultProxy in front of the local S3 server.

    Policies come with it: `fault_proxy.seeded(seed, rates)`, `.schedule([...])`, `.always(action)`
    (see tests/support/stseg_testing/faultproxy.py).
    """
    proxies = []

    def make(policy=None, slow_s: float = 2.0):
        proxy = faultproxy.FaultProxy(s3_server, policy, slow_s=slow_s)
        proxies.append(proxy)
        return proxy

    make.always, make.seeded, make.schedule = faultproxy.always, faultproxy.seeded, faultproxy.schedule
    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module's training tests: on a shared 2-core machine, spinning OpenMP
    workers cost more than they give. Use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---- the upstream programs (Cutie, XMem, LiVOS) at their pinned commits -----------------------------


@pytest.fixture(scope="session")
def upstream_trees() -> Path:
    """The folder holding the pristine upstream checkouts `<Repo>/` (read-only: copy before running): the
    workspace's `../shared/upstream`, else `build/upstream` from `make upstream` (same commits, by git)."""
    from stseg_core.models.upstream.harness import find_trees

    found = find_trees(Path(__file__).resolve().parents[1])
    if found is None:
        pytest.fail("no upstream checkouts in ../shared/upstream or build/upstream: run `make upstream`")
    return found
