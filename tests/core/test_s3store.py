"""S3 specifics against the live local S3 server: multipart, pagination, batched delete, retries through faults."""

import hashlib
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from stseg_core.errors import BackendError, BadInputError, MissingArtifactError
from stseg_core.s3client import MULTIPART_THRESHOLD
from stseg_core.s3store import S3Settings, S3Store

MiB = 1024 * 1024


def _client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint)


def _store(bucket, proxy, prefix="p", **settings):
    """A store that talks to S3 through `proxy`, with quick backoff so fault tests stay fast."""
    defaults = {"backoff_s": 0.01, "max_backoff_s": 0.05}
    return S3Store(bucket, prefix, S3Settings.from_env(endpoint=proxy.url, **{**defaults, **settings}))


def test_large_objects_are_multipart_and_byte_identical(s3_store, s3_server, tmp_path):
    big = os.urandom(17 * MiB + 5)  # 8 MiB parts → 3 parts
    s3_store.write_bytes("big.bin", big)
    exact = os.urandom(MULTIPART_THRESHOLD)  # exactly 8 MiB: one PUT
    s3_store.write_bytes("exact.bin", exact)
    src = tmp_path / "file.bin"
    src.write_bytes(os.urandom(9 * MiB))
    s3_store.write_file("file.bin", src)

    client = _client(s3_server)
    etag = {
        k: client.head_object(Bucket=s3_store.bucket, Key=f"prefix/{k}")["ETag"].strip('"')
        for k in ("big.bin", "exact.bin", "file.bin")
    }
    assert etag["big.bin"].endswith("-3") and etag["file.bin"].endswith("-2")
    assert "-" not in etag["exact.bin"]
    assert s3_store.read_bytes("big.bin") == big
    s3_store.read_file("file.bin", tmp_path / "back.bin")  # large: ranged parallel GETs
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert s3_store.list_sizes() == {"big.bin": len(big), "exact.bin": len(exact), "file.bin": 9 * MiB}


def test_listing_and_deleting_more_than_1000_keys(s3_store):
    keys = [f"many/{i:05d}.png" for i in range(1005)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3_store.write_bytes(k, k.encode()), keys))
    s3_store.write_bytes("other.txt", b"x")
    assert s3_store.list("many") == keys  # two pages of list_objects_v2
    assert len(s3_store.list()) == 1006
    s3_store.delete("many")  # two DeleteObjects batches
    assert s3_store.list() == ["other.txt"]


def test_missing_bucket_and_key(s3_server, monkeypatch):
    monkeypatch.setenv("STSEG_S3_ENDPOINT", s3_server)
    store = S3Store("no-such-bucket-here", "x")
    with pytest.raises(MissingArtifactError, match=r"^s3://no-such-bucket-here/x: bucket 'no-such-bucket-here'"):
        store.list()
    assert not store.exists("k")


def test_transfers_complete_byte_identical_through_faults(s3_bucket, fault_proxy, tmp_path):
    """Dropped connections, truncated replies, 500/503 and slow replies: both retry layers carry it through."""
    proxy = fault_proxy(
        fault_proxy.seeded(7, {"reset": 0.07, "truncate": 0.07, "500": 0.05, "503": 0.06, "slow": 0.04}), slow_s=0.3
    )
    # botocore's own backoff sleeps up to seconds; here stseg's quick whole-operation retries do the work
    # (the two layers together are tested above and below).
    store = _store(s3_bucket, proxy, max_attempts=1, retries=10)
    src = tmp_path / "src"
    files = {f"v{i}/{j:05d}.png": os.urandom(200 + 37 * j) for i in range(3) for j in range(10)}
    files["big/blob.bin"] = os.urandom(10 * MiB)
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    assert store.upload_dir(src, "up", workers=6) == len(files)
    assert store.download_dir("up", tmp_path / "dest", workers=6) == len(files)
    got = {
        p.relative_to(tmp_path / "dest").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (tmp_path / "dest").rglob("*")
        if p.is_file()
    }
    assert got == {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    assert proxy.faults() >= 5, proxy.counts
    assert {"reset", "truncate", "500", "503", "slow"} <= set(proxy.counts)


def test_whole_operation_retry_covers_what_botocore_does_not(s3_bucket, fault_proxy):
    """With botocore allowed one attempt, only stseg's own retry loop can get past these faults."""
    data = os.urandom(50_000)
    proxy = fault_proxy(fault_proxy.schedule(["503", "reset", "truncate", "500"], when=lambda r: r.method == "GET"))
    store = _store(s3_bucket, proxy, max_attempts=1, retries=4)
    store.write_bytes("k.bin", data)
    assert store.read_bytes("k.bin") == data
    assert proxy.counts == {"pass": 2, "503": 1, "reset": 1, "truncate": 1, "500": 1}


def test_slow_replies_past_the_read_timeout_are_retried(s3_bucket, fault_proxy):
    proxy = fault_proxy(fault_proxy.schedule(["slow", "slow"]), slow_s=1.0)
    store = _store(s3_bucket, proxy, read_timeout_s=0.3, max_attempts=2)
    start = time.monotonic()
    store.write_bytes("slow.txt", b"patience")
    assert store.read_bytes("slow.txt") == b"patience"
    assert proxy.counts["slow"] == 2 and time.monotonic() - start < 10


def test_failure_outlasting_the_retries_is_one_line_backend_error(s3_bucket, fault_proxy):
    proxy = fault_proxy(fault_proxy.always("503"))
    store = _store(s3_bucket, proxy, max_attempts=2, retries=2)
    with pytest.raises(BackendError) as err:
        store.write_bytes("runs/r/x.png", b"png")
    message = str(err.value)
    assert message.startswith(f"s3://{s3_bucket}/p/runs/r/x.png: write failed after 3 attempts")
    assert "SlowDown" in message and "\n" not in message
    assert proxy.counts["503"] == 3 * 2  # 3 whole-operation attempts × 2 botocore attempts


def test_failed_multipart_upload_leaves_nothing_visible(s3_bucket, s3_server, fault_proxy):
    proxy = fault_proxy(fault_proxy.always("500", when=lambda r: r.method == "PUT" and "partNumber=2" in r.path))
    store = _store(s3_bucket, proxy, max_attempts=1, retries=1)
    with pytest.raises(BackendError, match=r"big\.bin: write failed after 2 attempts"):
        store.write_bytes("big.bin", os.urandom(MULTIPART_THRESHOLD + MiB))
    client = _client(s3_server)
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    assert not client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")  # aborted, not left dangling


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_botocore_retries_alone_in_both_modes(s3_bucket, fault_proxy, mode):
    """With stseg's own retries off, botocore's request retries get past throttling and 5xx."""
    proxy = fault_proxy(fault_proxy.schedule(["503", "500"]))
    store = _store(s3_bucket, proxy, retry_mode=mode, max_attempts=3, retries=0)
    store.write_bytes("k", b"v")
    assert store.read_bytes("k") == b"v"
    assert proxy.counts == {"503": 1, "500": 1, "pass": 2}


def test_settings_come_from_the_environment(monkeypatch):
    for name, value in {
        "STSEG_S3_ENDPOINT": "http://127.0.0.1:9",
        "STSEG_S3_MAX_ATTEMPTS": "7",
        "STSEG_S3_RETRY_MODE": "adaptive",
        "STSEG_S3_RETRIES": "2",
        "STSEG_S3_READ_TIMEOUT": "1.5",
    }.items():
        monkeypatch.setenv(name, value)
    s = S3Settings.from_env()
    assert (s.endpoint, s.max_attempts, s.retry_mode, s.retries, s.read_timeout_s) == (
        "http://127.0.0.1:9",
        7,
        "adaptive",
        2,
        1.5,
    )
    monkeypatch.setenv("STSEG_S3_RETRIES", "many")
    with pytest.raises(BadInputError, match=r"^STSEG_S3_RETRIES='many': not an integer$"):
        S3Settings.from_env()


def test_upload_dir_stops_at_the_first_lasting_failure(s3_bucket, fault_proxy, tmp_path):
    for i in range(40):
        (tmp_path / f"{i:03d}.bin").write_bytes(b"x")
    proxy = fault_proxy(fault_proxy.always("503"))
    store = _store(s3_bucket, proxy, max_attempts=1, retries=1)
    with pytest.raises(BackendError, match=rf"^s3://{s3_bucket}/p/up/\d{{3}}\.bin: write failed after 2 attempts"):
        store.upload_dir(tmp_path, "up", workers=2)
    assert proxy.counts["503"] < 40 * 2  # copies not yet started were cancelled


def test_missing_credentials_is_one_line_backend_error(s3_bucket, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups
    store = S3Store(s3_bucket, "p")
    with pytest.raises(BackendError, match=rf"^s3://{s3_bucket}/p/k: read failed: no AWS credentials found"):
        store.read_bytes("k")


@pytest.fixture()
def silent_endpoint():
    """A server that accepts connections and reads requests but never answers: `http://user:pw@host:port`."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)  # kept open, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://user:s3cret@127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_an_endpoint_that_never_answers_fails_within_the_deadline_and_says_so(silent_endpoint, s3_bucket, caplog):
    store = S3Store(s3_bucket, "p", S3Settings.from_env(endpoint=silent_endpoint, deadline_s=3.0))
    start = time.monotonic()
    with caplog.at_level("WARNING", logger="stseg.store"), pytest.raises(BackendError) as err:
        store.exists("runs/r/pred/sam2/_done/0.json")
    elapsed = time.monotonic() - start
    # default 5 botocore attempts of 0.3 s read timeout each fit in half the deadline; no attempt starts after it
    assert 3.0 <= elapsed < 3.0 + 5 * 0.3 + 16, elapsed  # + botocore's own backoff between its attempts (≤ 15 s)
    message = str(err.value)
    assert message.startswith(f"s3://{s3_bucket}/p/runs/r/pred/sam2/_done/0.json: exists failed after ")
    assert "STSEG_S3_DEADLINE_S=3" in message and "\n" not in message
    endpoint = silent_endpoint.replace("user:s3cret@", "")
    assert [r.getMessage().split(" failed (")[0] for r in caplog.records] == [
        f"stseg: S3 endpoint {endpoint}: exists of s3://{s3_bucket}/p/runs/r/pred/sam2/_done/0.json"
    ]
    assert "s3cret" not in message and "s3cret" not in caplog.text


def test_deadline_caps_request_timeouts_and_must_be_positive(monkeypatch):
    s = S3Settings.from_env(deadline_s=120.0)
    assert (s.request_timeout_s(60.0), s.request_timeout_s(10.0)) == (12.0, 10.0)  # 5 attempts in 60 s
    monkeypatch.setenv("STSEG_S3_DEADLINE_S", "0")
    with pytest.raises(BadInputError, match=r"^STSEG_S3_DEADLINE_S=0: must be more than 0 seconds$"):
        S3Settings.from_env()
