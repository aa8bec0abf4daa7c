"""Folder upload/download throughput: file store vs local S3 (moto), serial vs parallel, clean vs faulty.

The reference is the serial (workers=1) copy to local S3 in the same run; the table gives each
configuration's MiB/s and its ratio to that reference. Every download is checked byte-identical.
The faulty rows go through tests/support/stseg_testing/faultproxy.py with the given fault rate (dropped
connections, truncated replies, 500/503, slow replies) — the cost of the retries, not a correctness check only.

    python bench/bench_store.py                # ~400 small files + 2 multipart files, < 1 min here
    python bench/bench_store.py --small 2000 --large 4
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

MiB = 1024 * 1024


def _load_faultproxy():
    path = Path(__file__).resolve().parents[1] / "tests" / "support" / "stseg_testing" / "faultproxy.py"
    spec = importlib.util.spec_from_file_location("stseg_bench_faultproxy", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=400, help="small files (30-60 KiB, like masks/frames)")
    parser.add_argument("--large", type=int, default=2, help="12 MiB files (multipart)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    args = parser.parse_args()

    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ[name] = value
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from stseg_core.s3store import S3Settings, S3Store
    from stseg_core.store import open_store

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    faultproxy = _load_faultproxy()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    rate = args.fault_rate
    proxy = faultproxy.FaultProxy(
        endpoint,
        faultproxy.seeded(
            1,
            {
                "reset": rate * 0.3,
                "truncate": rate * 0.2,
                "500": rate * 0.2,
                "503": rate * 0.2,
                "slow": rate * 0.1,
            },
        ),
        slow_s=0.2,
    )

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        rng = random.Random(0)
        for i in range(args.small):
            p = src / f"v{i // 50:03d}" / f"{i % 50:05d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(rng.randbytes(rng.randint(30, 60) * 1024))
        for i in range(args.large):
            (src / f"ckpt_{i}.pt").write_bytes(rng.randbytes(12 * MiB))
        want = _digest(src)
        total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) / MiB

        def s3(via: str, **settings):
            bucket = f"b-{uuid.uuid4().hex[:12]}"
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
            return S3Store(bucket, "bench", S3Settings.from_env(endpoint=via, **settings))

        configs = [
            ("file store", 1, lambda: open_store(tmp / "filestore-1")),
            ("file store", args.workers, lambda: open_store(tmp / "filestore-n")),
            ("local S3", 1, lambda: s3(endpoint)),
            ("local S3", args.workers, lambda: s3(endpoint)),
            (f"local S3, {rate:.0%} faults", args.workers, lambda: s3(proxy.url, backoff_s=0.05)),
        ]
        rows = []
        for name, workers, make in configs:
            store = make()
            start = time.perf_counter()
            store.upload_dir(src, "", workers=workers)
            up = time.perf_counter() - start
            dest = tmp / f"dest-{uuid.uuid4().hex[:6]}"
            start = time.perf_counter()
            store.download_dir("", dest, workers=workers)
            down = time.perf_counter() - start
            if _digest(dest) != want:
                raise SystemExit(f"{name}: download differs from the upload")
            rows.append((name, workers, up, down))

    ref_up, ref_down = rows[2][2], rows[2][3]
    print(
        f"{len(want)} files, {total:.1f} MiB ({args.large} multipart files of 12 MiB); "
        f"faults injected on the faulty rows: {proxy.faults()} of {sum(proxy.counts.values())} requests"
    )
    print(f"{'store':<24} {'workers':>7} {'up MiB/s':>9} {'down MiB/s':>10} {'up ×ref':>8} {'down ×ref':>9}")
    for name, workers, up, down in rows:
        print(
            f"{name:<24} {workers:>7} {total / up:>9.1f} {total / down:>10.1f} "
            f"{ref_up / up:>8.2f} {ref_down / down:>9.2f}"
        )
    print("ref = local S3 with 1 worker; every download verified byte-identical (sha256)")
    proxy.close()
    server.stop()


if __name__ == "__main__":
    main()
