"""PGMR on the synthetic MOSE-like benchmark with real models only: Table 2 per seed and mean ± sd over seeds.

Per seed: generate `valid` (the performance database's split) and `test` (never seen by the database), run
every model on both (the flowprop variants and the weight-free `oneshot` and `stm` trackers; SAM2 / TMO too
when `--checkpoints sam2=…,tmo=…` are given), build the database on valid, fuse test. Every prediction,
confidence and presence flag comes from the models' own computation; the ground truth of `test` is used only
to score. The seeds are held out: the trackers' options were chosen on the `valid` splits of seeds 0–2.

Printed: Table 2 of each seed; the mean ± sd over seeds of every method, with PGMR's variants (keep the
vote, per-video choice, per-span choice, raw instead of calibrated confidences); J&F per hard case of
`meta.json` per model, with the best single model and the per-video oracle (the best model per video
chosen with hindsight: PGMR's head-room).

    .venv/bin/python bench/bench_pgmr_synthetic.py --seeds 3,4,5 --videos 16 --out /tmp/pgmr-bench
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REAL_MODELS = ("flowprop", "flowprop-farneback", "flowprop-plain", "oneshot", "stm")
HARD_CASES = ("occlusion", "disappearance", "distractors", "small_objects", "fast_motion")
FAST_MOTION = 0.02
"""A video counts as fast motion when its mean optical flow exceeds this share of the frame diagonal (the
recommender's `motion` feature; the generator's own hard cases do not name it)."""


def prepare(
    out: Path,
    seed: int,
    videos: int,
    size: tuple[int, int],
    frames: tuple[int, int],
    shards: int,
    models: tuple[str, ...],
    checkpoints: dict[str, str],
) -> None:
    """Data and every model's predictions for one seed (idempotent: finished shards are skipped)."""
    from stseg_core.data.synth import SynthConfig, generate_dataset
    from stseg_core.stages.infer import ensure_plan, run_shard

    data = out / "data"
    if not (data / "meta.json").exists():
        cfg = SynthConfig(
            seed=seed,
            height=size[0],
            width=size[1],
            min_frames=frames[0],
            max_frames=frames[1],
            videos=videos,
            min_objects=1,
            max_objects=4,
        )
        generate_dataset(str(data), cfg, workers=1, splits=("valid", "test"))
    for split in ("valid", "test"):
        run_root = str(out / "runs" / split)
        ensure_plan(str(data / split), run_root, shards)
        for name in models:
            t0 = time.perf_counter()
            extra = {"checkpoint": checkpoints[name]} if name in checkpoints else None
            for shard in range(shards):
                run_shard(
                    data_root=str(data / split),
                    run_root=run_root,
                    model_name=name,
                    shard=shard,
                    num_shards=shards,
                    model_overrides=extra,
                )
            print(f"seed {seed} {split}: {name} {time.perf_counter() - t0:.1f}s", file=sys.stderr)


def evaluate_seed(out: Path, models: tuple[str, ...], default: str) -> dict:
    """Database on valid (with and without calibration), then PGMR's variants on test; the default runs last so
    the run on disk is the default's. → {"tables": variant → Table 2, "videos": variant → per-video J&F,
    "features": video → features, "text": the default's Table 2 as `stseg fuse` prints it}."""
    import json

    from stseg_core.fusion.pgmr import CHOICES
    from stseg_core.fusion.stage import FuseConfig, build_database, format_table, run_fuse
    from stseg_core.runlayout import RECOMMEND
    from stseg_core.store import open_store

    data, runs = out / "data", out / "runs"
    _db, uri = build_database(
        str(runs / "valid"), str(data / "valid"), str(data / "valid_gt"), models, str(out / "perfdb")
    )
    _raw, uri_raw = build_database(
        str(runs / "valid"),
        str(data / "valid"),
        str(data / "valid_gt"),
        models,
        str(out / "perfdb-raw"),
        calibrate=False,
    )
    base = {
        "run_root": str(runs / "test"),
        "data_root": str(data / "test"),
        "models": models,
        "gt_root": str(data / "test_gt"),
    }
    variants = {
        **{mode: FuseConfig(**base, db_uri=uri, choose=mode) for mode in CHOICES},
        "uncalibrated": FuseConfig(**base, db_uri=uri_raw, choose=default, calibrate=False),
    }
    order = [v for v in variants if v != default] + [default]
    result: dict = {"tables": {}, "videos": {}}
    for name in order:
        report = run_fuse(variants[name])
        result["tables"][name] = report.table
        rec = open_store(str(runs / "test")).read_json(RECOMMEND)["videos"]
        result["videos"][name] = {v: e["jf"] for v, e in rec.items()}
        result["features"] = {v: e["features"] for v, e in rec.items()}
        result["text"] = format_table(report)
    result["valid_motion"] = float(np.median([r.features.motion for r in _db.records]))
    result["meta"] = json.loads((data / "meta.json").read_text())["splits"]["test"]
    return result


def _mean_sd(values: list[float]) -> str:
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):6.2f} ± {sd:4.2f}"


def summary(results: dict[int, dict], models: tuple[str, ...], default: str) -> str:
    """Mean ± sd over seeds per method, the goal check, and J&F per hard case with the oracle."""
    from stseg_core.fusion.perfdb import FUSED
    from stseg_core.fusion.pgmr import CHOICES, PGMR

    seeds = sorted(results)
    main = default
    rows: dict[str, list[float]] = {}
    for s in seeds:
        table = results[s]["tables"][main]
        for method in (*models, "bbox-average", "bbox-max", FUSED):
            rows.setdefault(method, []).append(table[method]["J&F"])
        for variant in (*CHOICES, "uncalibrated"):
            rows.setdefault(f"PGMR {variant}", []).append(results[s]["tables"][variant][PGMR]["J&F"])
        videos = results[s]["videos"][main]
        rows.setdefault("oracle (best model per video)", []).append(
            float(np.mean([max(v[m] for m in models) for v in videos.values()]))
        )
    best = max(models, key=lambda m: np.mean(rows[m]))
    names = {
        FUSED: "pseudo-label (vote only)",
        "PGMR vote": "PGMR vote (keep the pseudo-label)",
        "PGMR video": "PGMR per-video choice",
        "PGMR span": "PGMR per-span choice",
        "PGMR uncalibrated": f"PGMR {default}, raw confidences",
    }
    lines = [
        f"mean ± sd (sample sd, ddof=1) over seeds {', '.join(map(str, seeds))} — J&F on test, "
        f"database built on valid; PGMR default: {default}, calibrated confidences",
        f"{'method':<44}{'J&F':>15}   per seed",
    ]
    for method, vals in rows.items():
        label = names.get(method, method) + (" (default)" if method == f"PGMR {main}" else "")
        lines.append(f"{label:<44}{_mean_sd(vals):>15}   " + " ".join(f"{v:6.2f}" for v in vals))
    gain = [p - b for p, b in zip(rows[f"PGMR {main}"], rows[best], strict=True)]
    vs_box = [
        p - max(a, m) for p, a, m in zip(rows[f"PGMR {main}"], rows["bbox-average"], rows["bbox-max"], strict=True)
    ]
    lines.append(
        f"PGMR − best single model ({best}): {_mean_sd(gain)}; PGMR − best bbox baseline: {_mean_sd(vs_box)}; "
        f"goal (≥ +2 over best single, above both bbox): "
        f"{'met' if np.mean(gain) >= 2 and min(vs_box) > 0 else 'MISSED'}"
    )
    lines += ["", hard_case_table(results, models, best, main)]
    return "\n".join(lines)


def _cases(meta: dict, features: dict, motion_cut: float) -> set[str]:
    cases = set(meta["present"]) & set(HARD_CASES)
    if features["motion"] > motion_cut:
        cases.add("fast_motion")
    return cases


def hard_case_table(results: dict[int, dict], models: tuple[str, ...], best: str, main: str) -> str:
    """Mean J&F per hard case over the test videos (all seeds pooled) that have it, per model and fused output."""
    from stseg_core.fusion.perfdb import FUSED
    from stseg_core.fusion.pgmr import PGMR

    cols = [*models, FUSED, PGMR, "oracle"]
    per_case: dict[str, list[dict[str, float]]] = {c: [] for c in (*HARD_CASES, "all")}
    for res in results.values():
        for video, jf in res["videos"][main].items():
            row = {**{c: jf[c] for c in (*models, FUSED, PGMR)}, "oracle": max(jf[m] for m in models)}
            for case in (*_cases(res["meta"][video], res["features"][video], res["valid_motion"]), "all"):
                per_case[case].append(row)
    short = {FUSED: "vote", PGMR: "PGMR"}
    head = f"{'hard case (test videos)':<26}" + "".join(f"{short.get(c, c)[:12]:>13}" for c in cols)
    lines = [
        "J&F per hard case (videos pooled over seeds; fast_motion = the video's mean flow above the valid "
        "split's median; a video counts in every case it has)",
        head,
    ]
    for case, rows in per_case.items():
        if not rows:
            continue
        means = {c: float(np.mean([r[c] for r in rows])) for c in cols}
        top = max(models, key=lambda m: means[m])
        lines.append(
            f"{case + f' ({len(rows)})':<26}" + "".join(f"{means[c]:>12.2f}{'*' if c == top else ' '}" for c in cols)
        )
    lines.append(
        f"* best single model in that case (overall best: {best}); oracle = best model per video with "
        "hindsight, the head-room a per-video choice could win"
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="3,4,5", help="held-out synthetic seeds (trackers were tuned on 0–2)")
    ap.add_argument("--videos", type=int, default=16, help="videos per split (valid and test)")
    ap.add_argument("--size", default="192x320", help="HxW of the synthetic frames")
    ap.add_argument("--frames", default="16-32", help="min-max frames per video")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--checkpoints", default="", help="sam2=URI,tmo=URI: add these models with their weights")
    ap.add_argument(
        "--default",
        choices=("vote", "video", "span"),
        default="vote",
        help="PGMR's default choice (stseg_core.fusion.pgmr.DEFAULT_CHOICE)",
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/stseg-pgmr-bench"))
    args = ap.parse_args()
    from stseg_core.names import split_names

    h, w = (int(x) for x in args.size.split("x"))
    f0, f1 = (int(x) for x in args.frames.split("-"))
    checkpoints = dict(item.split("=", 1) for item in split_names(args.checkpoints))
    models = (*REAL_MODELS, *(m for m in ("sam2", "tmo") if m in checkpoints))
    results = {}
    for seed in (int(s) for s in split_names(args.seeds)):
        out = args.out / f"seed{seed}"
        prepare(out, seed, args.videos, (h, w), (f0, f1), args.shards, models, checkpoints)
        results[seed] = evaluate_seed(out, models, args.default)
        print(
            f"seed {seed}: synthetic test split, {args.videos} videos per split, {args.size}, frames {args.frames}; "
            f"database built on valid"
        )
        print(results[seed]["text"] + "\n", flush=True)
    print(summary(results, models, args.default))


if __name__ == "__main__":
    main()
