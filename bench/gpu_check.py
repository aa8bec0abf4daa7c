"""The GPU check to run when a CUDA machine is lent (`make gpu-check`, ≤ 8 minutes on one GPU): one table of what
the GPU stages cost, next to the published A100 figures, then the CUDA-only tests (`pytest -m gpu`).

    python bench/gpu_check.py              # on the GPU machine (offline: `make gpu-wheels` brought the wheels)
    python bench/gpu_check.py --cpu-smoke  # tiny sizes on the CPU in seconds (make test runs it, so it cannot rot)

Rows (random weights throughout: no checkpoint is needed, and speed and memory do not depend on the values):
- SAM2.1 tiny / base+ / large through our adapter at 1024 px, bf16 autocast and fp32: frames/s on a
  synthetic 480×854 video with two objects (the prompted first frame left out);
- TMO ResNet-101 at 384 px through our adapter (DIS flow on the CPU included): frames/s;
- one finetune step: SAM2.1-L at 1024 with 8-frame clips, TMO ResNet-101 at 384 with batch 16: median
  s/step (first step left out) and peak GPU memory;
- the J&F evaluator (all CPU cores): frames/s on 480p.
Published: the SAM2 README's SAM 2.1 speed table (A100, frames/s; measured there with its benchmark script,
compiled model): tiny 91.2, base+ 64.1, large 39.5. Our adapter is not compiled, so expect less.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finetune import A100_FPS  # the published figures, kept in one place

SAM2_NAMES = {"t": "tiny", "b+": "base+", "l": "large"}
GPU = {
    "sam2_size": 1024,
    "sam2_frames": 24,
    "video": (480, 854),
    "tmo": ("rn101", 384, 24),
    "ft_sam2": ("l", 1024, 8),
    "ft_tmo": ("rn101", 384, 16),
    "jf": (480, 854, 60),
}
SMOKE = {
    "sam2_size": 128,
    "sam2_frames": 3,
    "video": (64, 96),
    "tmo": ("rn18", 64, 3),
    "ft_sam2": ("t", 128, 3),
    "ft_tmo": ("rn18", 64, 4),
    "jf": (64, 96, 6),
}


def _video(h: int, w: int, frames: int):
    """Two moving ellipses on a texture, in memory (no decoding in the timed loop)."""
    import cv2

    from stseg_core.models.base import VideoInput

    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    rgb, labels = [], np.zeros((h, w), np.uint8)
    for t in range(frames):
        img = np.roll(base, t, axis=1).copy()
        cv2.ellipse(img, (w // 4 + t, h // 3), (w // 12, h // 10), 0, 0, 360, (220, 40, 40), -1)
        cv2.ellipse(img, (3 * w // 4 - t, 2 * h // 3), (w // 14, h // 8), 0, 0, 360, (40, 200, 60), -1)
        rgb.append(img)
    cv2.ellipse(labels, (w // 4, h // 3), (w // 12, h // 10), 0, 0, 360, 1, -1)
    cv2.ellipse(labels, (3 * w // 4, 2 * h // 3), (w // 14, h // 8), 0, 0, 360, 2, -1)
    return VideoInput(
        name="v",
        stems=tuple(f"{t:05d}" for t in range(frames)),
        height=h,
        width=w,
        first_labels=labels,
        object_ids=(1, 2),
        frames=lambda: iter(rgb),
    )


def _fps(model, video) -> float:
    frames = model.segment(video)
    next(frames)  # the prompted first frame (and any warm-up) is not tracking speed
    start = time.perf_counter()
    n = sum(1 for _ in frames)
    return n / (time.perf_counter() - start)


def sam2_fps(config: str, size: int, bf16: bool, device: str, sizes: dict) -> float:
    from stseg_core.models.sam2 import Sam2Model, build_predictor

    predictor = build_predictor(config, size, "cpu", postprocess=False).to(device)
    return _fps(Sam2Model(predictor, device=device, bf16=bf16), _video(*sizes["video"], sizes["sam2_frames"]))


def tmo_fps(device: str, sizes: dict) -> float:
    from stseg_core.models.registry import build_model

    backbone, size, frames = sizes["tmo"]
    model = build_model("tmo", backbone=backbone, size=size, device=device)
    return _fps(model, _video(*sizes["video"], frames))


def finetune_step(case: str, device: str, sizes: dict, tmp: Path) -> tuple[float, float | None]:
    """(median s/step without the first, peak GPU memory in GiB or None on the CPU) of a one-epoch finetune."""
    import torch

    from stseg_core.data.synth import SynthConfig, generate_dataset
    from stseg_core.stages.finetune import run_finetune

    if case == "sam2":
        config, res, frames = sizes["ft_sam2"]
        opts = dict(
            init="random",
            config=config,
            resolution=res,
            num_frames=frames,
            max_objects=2,
            multiplier=2,
            epochs=1,
            checkpoint_every=1,
            device=device,
        )
        length = frames
    else:
        backbone, size, batch = sizes["ft_tmo"]
        opts = dict(
            init="random", backbone=backbone, size=size, batch_size=batch, epochs=1, checkpoint_every=1, device=device
        )
        length = 3 * batch // 2 + 1  # two training videos: three batches of frames
    data = tmp / f"ds-{case}"
    generate_dataset(
        data,
        SynthConfig(
            seed=1, height=96, width=128, min_frames=length, max_frames=length, min_objects=1, max_objects=2, videos=3
        ),
        splits=("train",),
    )
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    res = run_finetune(
        case, opts, data_root=str(data / "train"), store=str(tmp / "store"), run_id=case, scratch=tmp / "scratch"
    )
    steps = sorted(res.step_seconds[1:]) or res.step_seconds
    peak = torch.cuda.max_memory_allocated() / 1024**3 if device.startswith("cuda") else None
    return steps[len(steps) // 2], peak


def jf_fps(sizes: dict, tmp: Path) -> float:
    """The evaluator with every core on a split scored against itself shifted by two pixels."""
    from stseg_core.data.labels import encode_label_png
    from stseg_core.metrics.evaluate import evaluate

    h, w, frames = sizes["jf"]
    rng = np.random.default_rng(0)
    for v in range(4):
        for t in range(frames):
            lab = np.zeros((h, w), np.uint8)
            for k in (1, 2, 3):
                y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
                lab[y : y + h // 3, x : x + w // 3] = k
            for root, img in ((tmp / "gt/Annotations", lab), (tmp / "pred", np.roll(lab, 2, axis=1))):
                (root / f"v{v}").mkdir(parents=True, exist_ok=True)
                (root / f"v{v}" / f"{t:05d}.png").write_bytes(encode_label_png(img))
    start = time.perf_counter()
    result = evaluate(str(tmp / "gt"), str(tmp / "pred"), workers=os.cpu_count() or 1)
    return result.frames / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (seconds); no -m gpu tests")
    ap.add_argument("--skip-tests", action="store_true", help="do not run `pytest -m gpu` afterwards")
    args = ap.parse_args(argv)
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (use --cpu-smoke to exercise the script on the CPU)")
    device, sizes = ("cpu", SMOKE) if args.cpu_smoke else ("cuda", GPU)
    if args.cpu_smoke:
        torch.set_num_threads(1)
    where = "CPU smoke (tiny sizes, not figures)" if args.cpu_smoke else torch.cuda.get_device_name(0)
    rows: list[tuple[str, str, str]] = []
    configs = ("t",) if args.cpu_smoke else tuple(SAM2_NAMES)
    for config in configs:
        for bf16 in (True, False):
            fps = sam2_fps(config, sizes["sam2_size"], bf16, device, sizes)
            rows.append(
                (
                    f"SAM2.1 {SAM2_NAMES[config]} @{sizes['sam2_size']} {'bf16' if bf16 else 'fp32'}",
                    f"{fps:.1f} frames/s",
                    f"{A100_FPS[config]} frames/s" if bf16 else "",
                )
            )
    backbone, size, _f = sizes["tmo"]
    rows.append((f"TMO {backbone} @{size}", f"{tmo_fps(device, sizes):.1f} frames/s", ""))
    with tempfile.TemporaryDirectory(prefix="stseg-gpu-check-") as tmp:
        for case in ("sam2", "tmo"):
            step, peak = finetune_step(case, device, sizes, Path(tmp))
            what = sizes["ft_sam2"] if case == "sam2" else sizes["ft_tmo"]
            label = (
                f"finetune SAM2.1 {SAM2_NAMES[what[0]]} @{what[1]}, {what[2]} frames"
                if case == "sam2"
                else f"finetune TMO {what[0]} @{what[1]}, batch {what[2]}"
            )
            rows.append((label, f"{step:.2f} s/step" + (f", {peak:.1f} GiB peak" if peak is not None else ""), ""))
        rows.append(
            (
                f"J&F evaluator, {sizes['jf'][0]}p, {os.cpu_count()} processes",
                f"{jf_fps(sizes, Path(tmp) / 'jf'):.0f} frames/s",
                "",
            )
        )
    print(f"stseg gpu check on {where} (torch {torch.__version__})")
    print(f"{'what':<48} {'measured':>28} {'published A100':>16}")
    for what, measured, published in rows:
        print(f"{what:<48} {measured:>28} {published:>16}")
    if not args.cpu_smoke and not args.skip_tests:
        root = Path(__file__).resolve().parents[1]
        code = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-o", "addopts=--import-mode=importlib", "tests"],
            cwd=root,
            check=False,
        ).returncode
        if code not in (0, 5):  # 5: no test is marked gpu
            raise SystemExit(code)
    return rows


if __name__ == "__main__":
    main()
