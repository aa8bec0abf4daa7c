"""MOSE-sized dry run: does every per-video cost of the pipeline stay flat as the catalogue grows to MOSE's size?

A catalogue with MOSE's video count and its frame- and object-count distribution (`MOSE` below), frames of only
TINY_H × TINY_W pixels so the models' compute is negligible and what is measured is orchestration: planning,
listing, done markers, status, store requests. Five weight-free models, 64 shards, the local backend, the store
(data and run) on a local S3 server (moto, as the tests use) behind a request counter. For each size (a fraction
of the catalogue; the smaller ones are prefixes of the larger, so the distribution is the same) it runs, each
stage as one `stseg` process: synth/upload, plan, infer (5 models × 64 shards), fuse, eval (5 models + the
fusion), then `stseg status` (5 × 64 infer shards + fuse + 6 eval jobs).

Per stage: wall s, CPU s (the stage's processes, and the S3 server's own CPU apart), peak RSS of its largest
process, S3 requests; then per frame: ms wall, ms CPU and requests. The slopes table divides each stage's per-frame
wall and CPU time and requests at the largest size by those at the smallest (the reference, measured in the same
run): 1.0 = flat; a stage above ~1.3 grows faster than the catalogue. Per frame, not per video: the samples' mean
video lengths differ a little (a video is ~83 frames on average).

    .venv/bin/python bench/bench_scale.py [--sizes 1/8,1/4,1/2,1] [--shards 64] [--workers 2]
    .venv/bin/python bench/bench_scale.py --eval 24 [--eval-size 480x854]   # eval: workers vs shards
    .venv/bin/python bench/bench_scale.py --status 2149   # `stseg status` of a done MOSE-sized run, cold and warm

moto's own listing scans its whole bucket per page (O(keys in bucket)), which real S3 does not: the server's CPU
is reported in its own column and is not counted as the pipeline's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from fractions import Fraction
from math import nan
from pathlib import Path

import numpy as np

# ---- the catalogue ----------------------------------------------------------------------------------------------

MOSE = {
    # MOSE (Ding et al., "MOSE: A New Dataset for Video Object Segmentation in Complex Scenes", ICCV 2023; the
    # abstract and https://henghuiding.github.io/MOSE/): 2,149 videos, 5,200 objects (→ 2.42 per video), 431,725
    # masks. Issue #15: ~178,000 frames in all (→ ~83 per video), 1 to ~15 objects per video, most with 1–3.
    "videos": 2149,
    "frames_mean": 83,
    "frames_min": 5,
    "frames_max": 320,
    "objects_share": {
        1: 0.41,
        2: 0.26,
        3: 0.145,
        4: 0.075,
        5: 0.04,
        6: 0.022,
        7: 0.014,
        8: 0.01,
        9: 0.007,
        10: 0.005,
        11: 0.004,
        12: 0.003,
        13: 0.002,
        14: 0.0015,
        15: 0.001,
    },
}
"""MOSE's published totals; the shape between them (log-normal lengths, geometric-like object counts) is ours."""
TINY_H, TINY_W = 32, 48
MODELS = ("flowprop", "flowprop-farneback", "flowprop-plain", "oneshot", "stm")
SEED = 15


def catalogue(seed: int = SEED) -> list[tuple[str, int, int]]:
    """(video, frames, objects) for every MOSE video, drawn from `MOSE`; the first n are a size-n sample."""
    rng = np.random.default_rng(seed)
    n = MOSE["videos"]
    sigma = 0.75  # log-normal: median ~63, a long tail to 300+
    mu = np.log(MOSE["frames_mean"]) - sigma**2 / 2
    frames = np.clip(np.rint(rng.lognormal(mu, sigma, n)), MOSE["frames_min"], MOSE["frames_max"]).astype(int)
    share = MOSE["objects_share"]
    p = np.array(list(share.values()))
    objects = rng.choice(np.array(list(share)), size=n, p=p / p.sum())
    return [(f"v{i:04d}", int(t), int(k)) for i, (t, k) in enumerate(zip(frames, objects, strict=True))]


def _tiny(k: int, phase: int, h: int = TINY_H, w: int = TINY_W) -> tuple[np.ndarray, np.ndarray]:
    """RGB frame and label map with `k` objects, each a square in its own cell of a 4×4 grid, shifted by `phase`."""
    rgb = np.full((h, w, 3), 40, np.uint8)
    labels = np.zeros((h, w), np.uint8)
    cols = 4
    ch, cw = h // cols, w // cols
    for obj in range(1, k + 1):
        r, c = divmod(obj - 1, cols)
        y, x = r * ch + 1 + phase % 2, c * cw + 2 + phase % 3
        labels[y : y + ch - 3, x : x + cw - 5] = obj
        rgb[labels == obj] = ((obj * 67) % 256, (obj * 139) % 256, (obj * 29 + 90) % 256)
    return rgb, labels


def write_catalogue(root: Path, videos: list[tuple[str, int, int]]) -> int:
    """`valid/` (frames + first annotation) and `valid_gt/` (every annotation) on disk; returns frames written."""
    from stseg_core.data.labels import encode_label_png
    from stseg_core.data.mose import ANNOTATIONS_DIR, FRAMES_DIR, encode_jpeg, frame_stem

    cache: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    total = 0
    for name, frames, k in videos:
        jpg_dir, ann_dir, gt_dir = (
            root / "valid" / FRAMES_DIR / name,
            root / "valid" / ANNOTATIONS_DIR / name,
            root / "valid_gt" / ANNOTATIONS_DIR / name,
        )
        for d in (jpg_dir, ann_dir, gt_dir):
            d.mkdir(parents=True)
        for t in range(frames):
            key = (k, t % 6)
            if key not in cache:
                rgb, labels = _tiny(k, t % 6)
                cache[key] = (encode_jpeg(rgb), encode_label_png(labels))
            jpg, png = cache[key]
            stem = frame_stem(t)
            (jpg_dir / f"{stem}.jpg").write_bytes(jpg)
            (gt_dir / f"{stem}.png").write_bytes(png)
            if t == 0:
                (ann_dir / f"{stem}.png").write_bytes(png)
        total += frames
    return total


# ---- the S3 server with a request counter -----------------------------------------------------------------------


def serve(port_file: str) -> None:
    """moto's S3 app behind a counter of requests by kind; `GET /__counts` answers the counts."""
    import logging
    from collections import Counter
    from threading import Lock

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    moto = DomainDispatcherApplication(create_backend_app)
    counts: Counter[str] = Counter()
    lock = Lock()

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/__counts":
            with lock:
                body = json.dumps(counts).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        method, query = environ["REQUEST_METHOD"], environ.get("QUERY_STRING", "")
        kind = "LIST" if method == "GET" and ("list-type" in query or "prefix=" in query) else method
        with lock:
            counts[kind] += 1
        return moto(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


class Server:
    """The counting S3 server as a child process: its URL, its request counts and its CPU seconds."""

    def __init__(self, tmp: Path) -> None:
        port_file = tmp / "port"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}"

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/__counts") as r:
            return json.load(r)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


# ---- stages -----------------------------------------------------------------------------------------------------


def _measured(server: Server, argv: list[str], env: dict[str, str], log: Path) -> dict:
    """Run one stage process to the end: wall, CPU (its whole process tree), peak RSS, S3 requests."""
    before, server_cpu = server.counts(), server.cpu_s()
    usage = log.with_suffix(".usage.json")
    t0 = time.perf_counter()
    with log.open("ab") as out:
        # Through a small launcher: a child forked from this (large) process would count its pages in its peak RSS.
        proc = subprocess.Popen(
            [sys.executable, __file__, "--measure", str(usage), *argv], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            code = proc.wait()
        except BaseException:  # interrupted: stop the stage (its supervisor stops its shards) before the server
            proc.send_signal(signal.SIGINT)
            proc.wait()
            raise
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:6])}… failed (exit {code}); see {log}")
    after = server.counts()
    requests = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {
        "wall": wall,
        **json.loads(usage.read_text()),
        "server_cpu": server.cpu_s() - server_cpu,
        "requests": sum(requests.values()),
        "by_kind": requests,
    }


def measure(usage: str, argv: list[str]) -> int:
    """Run `argv`; write its process tree's CPU seconds and largest peak RSS (MiB) to `usage`; its exit code."""
    proc = subprocess.Popen(argv)
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        return proc.wait()
    Path(usage).write_text(json.dumps({"cpu": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024}))
    return os.waitstatus_to_exitcode(status)


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def run_size(server: Server, tmp: Path, videos: list, shards: int, workers: int, models: tuple[str, ...]) -> dict:
    """Every stage on `videos`; returns {stage: measurements} plus the frame count."""
    tag = f"n{len(videos)}"
    data_uri, store_uri = f"s3://data-{tag}/mose", f"s3://run-{tag}/store"
    run = "scale"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STSEG_S3_ENDPOINT": server.url,
        "STSEG_STORE": store_uri,
        "STSEG_DATA_ROOT": f"{data_uri}/valid",
        "STSEG_GT_ROOT": f"{data_uri}/valid_gt",
        "STSEG_STATE_DIR": str(tmp / f"state-{tag}"),
        "STSEG_WORKERS": str(workers),
        "OMP_NUM_THREADS": "1",
    }
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for bucket in (f"data-{tag}", f"run-{tag}"):
        s3.create_bucket(Bucket=bucket)
    local = tmp / f"cat-{tag}"
    frames = write_catalogue(local, videos)
    log = tmp / f"{tag}.log"
    stseg = [sys.executable, "-m", "stseg_cli"]
    out: dict = {"frames": frames, "videos": len(videos)}
    out["synth/upload"] = _measured(
        server,
        _py(
            f"from stseg_core.store import open_store; open_store({data_uri!r}).upload_dir({str(local)!r}, workers=16)"
        ),
        env,
        log,
    )
    shutil.rmtree(local)
    out["plan"] = _measured(
        server,
        _py(
            f"from stseg_core.infer import ensure_plan; ensure_plan({data_uri + '/valid'!r}, "
            f"{store_uri + '/runs/' + run!r}, {shards})"
        ),
        env,
        log,
    )
    names = ",".join(models)
    out["infer"] = _measured(
        server, [*stseg, "submit", "infer", "--run", run, "--models", names, "--shards", str(shards)], env, log
    )
    out["fuse"] = _measured(server, [*stseg, "submit", "fuse", "--run", run, "--models", names], env, log)
    out["eval"] = _measured(
        server, [*stseg, "submit", "eval", "--run", run, "--models", names, "--option", f"workers={workers}"], env, log
    )
    out["status"] = _measured(server, [*stseg, "status", run], env, log)
    return out


# ---- status at full size, without running the stages ---------------------------------------------------------------


def status_at(server: Server, tmp: Path, n: int, shards: int, models: tuple[str, ...]) -> None:
    """`stseg status` of a pipeline run over `n` catalogue videos whose every shard is done: the real specs
    (`pipeline_specs`) and done markers of the real size (one line per file: label PNGs + scores.json), written
    directly; timed cold (no frame counts in the state folder yet) and warm (what a poll costs)."""
    from stseg_cli.backends.local import LocalBackend
    from stseg_cli.config import Config
    from stseg_cli.spec import StageRequest, pipeline_specs
    from stseg_core.data.mose import frame_stem
    from stseg_core.plan import plan_shards, video_cost
    from stseg_core.runlayout import done_key, pred_prefix
    from stseg_core.store import open_store

    videos = catalogue()[:n]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STSEG_S3_ENDPOINT": server.url,
        "STSEG_STORE": "s3://status/store",
        "STSEG_STATE_DIR": str(tmp / "state-status"),
        "STSEG_DATA_ROOT": "s3://status/data/valid",
    }
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "STSEG_S3_ENDPOINT")})
    import boto3

    boto3.client("s3", endpoint_url=server.url, region_name="us-east-1").create_bucket(Bucket="status")
    cfg = Config(store=env["STSEG_STORE"], data_root=env["STSEG_DATA_ROOT"], state_dir=env["STSEG_STATE_DIR"])
    specs = pipeline_specs(cfg, "scale", StageRequest("infer", models=models, shards=shards), default_gpus=False)
    LocalBackend(cfg)._files("scale").save_specs(specs)
    store = open_store(specs[0].env_dict["STSEG_RUN_ROOT"])
    plan = plan_shards({v: video_cost(t, k) for v, t, k in videos}, shards)
    lengths = {v: t for v, t, _ in videos}
    digest = "0" * 64

    def marker(prefix: str, names) -> dict:
        files = {
            f"{prefix}/{v}/{name}": {"size": 100, "sha256": digest}
            for v in names
            for name in [*(f"{frame_stem(t)}.png" for t in range(lengths[v])), "scores.json"]
        }
        return {"version": 1, "files": files, "total_bytes": 100 * len(files), "meta": {}}

    for model in models:
        for k in range(shards):
            store.write_json(done_key(pred_prefix(model), k), marker(pred_prefix(model), plan.videos(k)))
    store.write_json(done_key("fused", 0), marker("fused", lengths))
    argv = [sys.executable, "-m", "stseg_cli", "status", "scale"]
    frames = sum(lengths.values())
    print(f"stseg status, {n} videos ({frames} frames), {len(specs)} jobs, {shards} shards × {len(models)} models")
    for label in ("cold", "warm", "warm"):
        m = _measured(server, argv, env, tmp / "status.log")
        print(
            f"  {label}: {m['wall']:.2f} s wall, {m['cpu']:.2f} s CPU, {m['rss_mib']:.0f} MiB, "
            f"{m['requests'] - 1} S3 requests"
        )


# ---- eval: workers in one process, or shards? --------------------------------------------------------------------


def eval_compare(server: Server, tmp: Path, n: int, h: int, w: int) -> None:
    """J&F of `n` catalogue videos at h×w: one process with 1 or 2 workers vs 2 concurrent shards (STSEG_VIDEOS)."""
    from stseg_core.data.labels import encode_label_png
    from stseg_core.data.mose import frame_stem
    from stseg_core.store import open_store

    videos = catalogue()[:n]
    local = tmp / "eval-set"
    for name, frames, k in videos:
        for part, shift in (("gt/Annotations", 0), ("run/pred/m", 1)):  # the "prediction" is offset by a pixel
            folder = local / part / name
            folder.mkdir(parents=True)
            for t in range(frames):
                (folder / f"{frame_stem(t)}.png").write_bytes(encode_label_png(_tiny(k, t % 6 + shift, h, w)[1]))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STSEG_S3_ENDPOINT": server.url,
        "OMP_NUM_THREADS": "1",
        "STSEG_STAGE": "evaluate",
        "STSEG_DATA_ROOT": "s3://evalset/gt",
        "STSEG_RUN_ROOT": "s3://evalset/run",
        "STSEG_MODEL": "m",
    }
    import boto3

    boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="evalset")
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "STSEG_S3_ENDPOINT")})
    open_store("s3://evalset").upload_dir(local, workers=16)
    frames = sum(f for _, f, _ in videos)
    names = [v for v, _, _ in videos]
    halves = (names[0::2], names[1::2])
    print(f"eval of {n} videos, {frames} frames of {h}x{w}, predictions and ground truth on S3 (moto)")
    print(f"{'layout':<26} {'wall s':>7} {'CPU s':>7} {'frames/s':>8} {'CPU ms/fr':>9} {'LIST':>5} {'GET':>6}")
    for label, shards in (
        ("1 process, 1 worker", [(names, 1)]),
        ("1 process, 2 workers", [(names, 2)]),
        ("2 shards × 1 worker", [(halves[0], 1), (halves[1], 1)]),
    ):
        before = server.counts()
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "stseg_jobs.evaluate"],
                stdout=subprocess.DEVNULL,
                env={**env, "STSEG_WORKERS": str(workers), "STSEG_VIDEOS": ",".join(part), "STSEG_EVAL_NAME": f"e{i}"},
            )
            for i, (part, workers) in enumerate(shards)
        ]
        cpu = 0.0
        for proc in procs:
            _, status, ru = os.wait4(proc.pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, label
            cpu += ru.ru_utime + ru.ru_stime
        wall = time.perf_counter() - t0
        got = {k: v - before.get(k, 0) for k, v in server.counts().items()}
        print(
            f"{label:<26} {wall:>7.1f} {cpu:>7.1f} {frames / wall:>8.1f} {1000 * cpu / frames:>9.2f} "
            f"{got.get('LIST', 0):>5} {got.get('GET', 0):>6}"
        )


# ---- report -----------------------------------------------------------------------------------------------------

STAGES = ("synth/upload", "plan", "infer", "fuse", "eval", "status")


def _per_frame(stage: str, field: str, a: dict, b: dict) -> float:
    """Cost per frame at size b ÷ at size a (the samples' mean video lengths differ: per frame is the fair unit)."""
    return (b[stage][field] / b["frames"]) / (a[stage][field] / a["frames"]) if a[stage][field] else nan


def _marginal(stage: str, field: str, results: list[dict]) -> float:
    """Cost per added frame between the last two sizes ÷ between the first two (fixed costs cancel)."""
    if len(results) < 3:
        return nan
    (a, b), (c, d) = results[:2], results[-2:]
    first = (b[stage][field] - a[stage][field]) / (b["frames"] - a["frames"])
    last = (d[stage][field] - c[stage][field]) / (d["frames"] - c["frames"])
    return last / first if first > 0 else nan


def report(results: list[dict]) -> None:
    print(
        f"{'videos':>6} {'frames':>7} {'stage':<13} {'wall s':>8} {'CPU s':>8} {'S3 CPU s':>8} {'peak MiB':>8} "
        f"{'requests':>9} {'ms/frame':>8} {'CPU ms/fr':>9} {'req/frame':>9}"
    )
    for r in results:
        for stage in STAGES:
            m, f = r[stage], r["frames"]
            print(
                f"{r['videos']:>6} {f:>7} {stage:<13} {m['wall']:>8.1f} {m['cpu']:>8.1f} {m['server_cpu']:>8.1f} "
                f"{m['rss_mib']:>8.0f} {m['requests']:>9} {1000 * m['wall'] / f:>8.2f} "
                f"{1000 * m['cpu'] / f:>9.2f} {m['requests'] / f:>9.2f}"
            )
    if len(results) < 2:
        return
    ref, big = results[0], results[-1]
    print(
        f"\nslopes, {ref['videos']} → {big['videos']} videos (1.0 = flat): cost per frame at the largest size ÷ at "
        "the smallest (the reference); marginal: cost per added frame in the last step ÷ in the first (fixed "
        "per-shard costs cancel; needs 3 sizes)"
    )
    print(f"{'stage':<13} {'wall':>6} {'CPU':>6} {'requests':>8} {'marg. CPU':>9} {'marg. req':>9}")
    for stage in STAGES[:-1]:
        row = [_per_frame(stage, f, ref, big) for f in ("wall", "cpu", "requests")]
        row += [_marginal(stage, f, results) for f in ("cpu", "requests")]
        print(f"{stage:<13} {row[0]:>6.2f} {row[1]:>6.2f} {row[2]:>8.2f} {row[3]:>9.2f} {row[4]:>9.2f}")
    print(
        "status latency (5 × shards infer + fuse + 6 eval jobs): "
        + ", ".join(
            f"{r['status']['wall']:.2f} s wall / {r['status']['cpu']:.2f} s CPU @ {r['videos']} videos" for r in results
        )
    )
    stages = ("plan", "infer", "fuse", "eval")
    print(
        f"pipeline at {big['videos']} videos (plan+infer+fuse+eval, 5 models, frames of {TINY_H}×{TINY_W}): "
        f"{1000 * sum(big[s]['cpu'] for s in stages) / big['frames']:.1f} ms CPU and "
        f"{sum(big[s]['requests'] for s in stages) / big['frames']:.1f} S3 requests per frame, "
        f"S3 server {1000 * sum(big[s]['server_cpu'] for s in stages) / big['frames']:.1f} ms CPU per frame"
    )


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        sys.exit(measure(sys.argv[2], sys.argv[3:]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1/8,1/4,1/2,1", help="fractions of MOSE's 2,149 videos, smallest first")
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2, help="local backend processes (and eval workers)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--json", help="also write the measurements here")
    ap.add_argument("--eval", type=int, metavar="N", help="only compare eval layouts on N videos (see --eval-size)")
    ap.add_argument("--eval-size", default="480x854", help="frame size of the --eval comparison, HxW")
    ap.add_argument("--report", metavar="JSON", help="only print the tables of an earlier run's --json file")
    ap.add_argument("--status", type=int, metavar="N", help="only time `stseg status` of a done run of N videos")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.report:
        report(json.loads(Path(args.report).read_text()))
        return
    if args.status:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            server = Server(Path(tmp))
            try:
                status_at(server, Path(tmp), args.status, args.shards, tuple(args.models.split(",")))
            finally:
                server.close()
        return
    if args.eval:
        h, w = (int(x) for x in args.eval_size.split("x"))
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            server = Server(Path(tmp))
            try:
                eval_compare(server, Path(tmp), args.eval, h, w)
            finally:
                server.close()
        return
    cat = catalogue()
    sizes = [Fraction(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        server = Server(Path(tmp))
        try:
            for size in sizes:
                n = max(1, round(len(cat) * size))
                results.append(
                    run_size(server, Path(tmp), cat[:n], args.shards, args.workers, tuple(args.models.split(",")))
                )
                print(
                    f"# {n} videos done: " + ", ".join(f"{s} {results[-1][s]['wall']:.1f} s" for s in STAGES),
                    file=sys.stderr,
                    flush=True,
                )
                if args.json:
                    Path(args.json).write_text(json.dumps(results, indent=1))
        finally:
            server.close()
    report(results)


if __name__ == "__main__":
    main()
