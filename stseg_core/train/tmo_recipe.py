"""TMO finetuning: upstream's training step (suhwan-cho/TMO `trainer.py`) plus STSeg's recipe around it.

Notation: s = the square input size (384 default, TMO's); a sample is one frame t of a training video:
x = RGB frame, m = its flow image (colour wheel of the flow t→t+1, exactly what inference feeds, read from
the shared cache `<flow_cache>/flow/<method>/<video>/<stem>.png`), y = foreground mask (any object id > 0,
TMO being single-foreground), u ∈ {0, 1} = motion validity. x and m are resized bicubically to s×s, in
[0, 1]; y nearest-neighbour.

Motion as option (upstream's training trick): with probability `rgb_motion_prob` a sample has u = 0 and the
motion encoder sees x instead of m (m ← u·m + (1 − u)·x, upstream's own formula). Upstream gets u = 0 from
still images (DUTS: 384 of each epoch's 512 clips, hence the default 0.75); on MOSE the frames themselves
play that part.

Small-target enlarging (STSeg): when the foreground covers less than `enlarge_below` of the frame, with
probability `enlarge_prob` the sample is cropped to a square around the foreground's bounding box,
`enlarge_context`× its longer side (clipped to the frame), before resizing — the same crop for x, m and y —
so small objects reach the network at a size it can learn from.

Optimisation as upstream: Adam over every parameter at lr 1e-5, batch 16, loss = cross-entropy of the 2-class
scores; BatchNorm running statistics frozen (upstream keeps its rn101 model in eval mode while training;
the BN affine weights still train). MiT-b1 has no BatchNorm and trains in train mode, as upstream.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.train.distributed import (
    DistEnv,
    barrier,
    epoch_loader,
    init_distributed,
    rank_sampler,
    seed_rank,
    steps_per_epoch,
    sync_skipper,
    wrap_ddp,
)
from stseg_core.train.loop import TrainParts, TrainResult, prepare_run, run_epochs
from stseg_core.train.split import VideoSplit

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

    from stseg_core.data.mose import MoseSplit
    from stseg_core.models.flow import FlowCache
    from stseg_core.models.tmo_net import TMONet
    from stseg_core.telemetry import JobMetrics


@dataclass(frozen=True)
class TmoRecipe:
    """STSeg's TMO finetune settings (defaults = the paper's recipe).

    init: a TMO checkpoint URI to continue from (an official `TMO_<backbone>.pth` state dict or ours), or
    "random" (random decoder; encoders from `backbone_weights`, ImageNet weights, when given). backbone:
    rn101 | mitb1 | rn18 | rn34 | rn50 (must match `init`). rgb_motion_prob: share of samples whose motion
    input is the RGB frame (motion as option). flow: dis | raft | raft_large | raft_small (flow_checkpoint:
    RAFT weights).
    flow_cache: store URI for the flow images (default: the checkpoint store's root, where `stseg infer`
    finds them with `--set flow_cache=<store>`).
    """

    init: str
    backbone: str = "rn101"
    backbone_weights: str | None = None
    size: int = 384
    epochs: int = 40
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-5
    checkpoint_every: int = 5
    val_fraction: float = 0.15
    enlarge_below: float = 0.01
    enlarge_prob: float = 0.5
    enlarge_context: float = 4.0
    rgb_motion_prob: float = 0.75
    flow: str = "dis"
    flow_checkpoint: str | None = None
    flow_cache: str | None = None
    seed: int = 123
    workers: int = 0
    device: str = "auto"

    def check(self) -> None:
        if self.size < 32 or self.size % 32:
            raise BadInputError(f"tmo finetune size={self.size}: must be a positive multiple of 32")
        for name in ("epochs", "batch_size", "grad_accum", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise BadInputError(f"tmo finetune {name}={getattr(self, name)}: must be at least 1")
        if not 0 <= self.enlarge_prob <= 1 or self.enlarge_context < 1:
            raise BadInputError("tmo finetune enlarge_prob must be in [0, 1] and enlarge_context at least 1")
        if not 0 <= self.rgb_motion_prob <= 1:
            raise BadInputError(f"tmo finetune rgb_motion_prob={self.rgb_motion_prob}: must be in [0, 1]")
        from stseg_core.models.flow import flow_method
        from stseg_core.models.tmo_net import BACKBONES

        if self.backbone not in BACKBONES:
            raise BadInputError(f"tmo finetune backbone={self.backbone!r}: must be one of {', '.join(BACKBONES)}")
        flow_method(self.flow)


def precompute_flows(
    data: MoseSplit, videos: tuple[str, ...], cache: FlowCache, method: str, checkpoint: str | None, device: str
) -> int:
    """Fill the flow cache for `videos` (videos already complete are skipped); returns videos computed.

    The cache layout is the inference adapter's, so a video's flow is computed once for training,
    validation and later inference alike.
    """
    from stseg_core.models.base import VideoInput
    from stseg_core.models.flow import build_flow, frames_with_flow

    estimator = None
    done = 0
    for name in videos:
        info = data.video(name)
        have = set(cache.store.list(f"flow/{cache.method}/{name}/"))
        if all(cache.key(name, s) in have for s in info.frames):
            continue
        estimator = estimator or build_flow(method, checkpoint=checkpoint, device=device)
        for _ in frames_with_flow(VideoInput.from_split(data, name), estimator, cache):
            pass
        done += 1
    return done


def enlarge_crop(mask: np.ndarray, below: float, context: float) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the square crop that enlarges a small foreground, or None when it is not small
    (or empty). The window is `context`× the bounding box's longer side, centred on it, clipped to the frame."""
    h, w = mask.shape
    area = int(np.count_nonzero(mask))
    if area == 0 or area >= below * h * w:
        return None
    ys, xs = np.nonzero(mask)
    side = int(np.ceil(context * max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)))
    side = min(side, h, w)
    cy, cx = (ys.min() + ys.max() + 1) // 2, (xs.min() + xs.max() + 1) // 2
    y0 = int(np.clip(cy - side // 2, 0, h - side))
    x0 = int(np.clip(cx - side // 2, 0, w - side))
    return y0, y0 + side, x0, x0 + side


class FrameSamples:
    """Map-style dataset of (video, stem) training samples → (x 3×s×s, m 3×s×s float32 in [0, 1], u 1×1×1
    float32, y s×s int64)."""

    def __init__(self, data: MoseSplit, videos: tuple[str, ...], cache: FlowCache, recipe: TmoRecipe) -> None:
        self.data = data
        self.cache = cache
        self.recipe = recipe
        self.items = [(v, s) for v in videos for s in data.video(v).frames]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        import cv2
        import torch

        from stseg_core.models.tmo import image_tensor

        video, stem = self.items[index]
        rgb = self.data.read_frame(video, stem)
        cached = self.cache.get(video, stem)
        if cached is None:
            raise MissingArtifactError(
                f"tmo finetune: no flow image of {video}/{stem} in {self.cache.store.root} "
                "(precompute_flows writes them before training)"
            )
        flow_img = cached[0]
        fg = (self.data.annotation(video, stem) > 0).astype(np.uint8)
        r = self.recipe
        box = enlarge_crop(fg, r.enlarge_below, r.enlarge_context)
        if box is not None and random.random() < r.enlarge_prob:
            y0, y1, x0, x1 = box
            rgb, flow_img, fg = rgb[y0:y1, x0:x1], flow_img[y0:y1, x0:x1], fg[y0:y1, x0:x1]
        x, m = (image_tensor(cv2.resize(a, (r.size, r.size), interpolation=cv2.INTER_CUBIC)) for a in (rgb, flow_img))
        y = torch.from_numpy(cv2.resize(fg, (r.size, r.size), interpolation=cv2.INTER_NEAREST).astype(np.int64))
        u = torch.full((1, 1, 1), 0.0 if random.random() < r.rgb_motion_prob else 1.0)
        return x, m, u, y


def batchnorms(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The BatchNorm modules of `net`: kept in eval mode while training (running statistics frozen)."""
    import torch

    return [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def train_mode(net: torch.nn.Module, bns: list[torch.nn.Module]) -> None:
    """Upstream's training mode: everything in train mode but BatchNorm, whose statistics stay as loaded."""
    net.train()
    for bn in bns:
        bn.eval()


def step_loss(net: torch.nn.Module, x: torch.Tensor, m: torch.Tensor, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Upstream's training loss on one batch: motion as option, then cross-entropy of the 2-class scores."""
    import torch

    scores = net(x, u * m + (1 - u) * x)
    return torch.nn.functional.cross_entropy(scores, y)


def build_net(recipe: TmoRecipe) -> TMONet:
    """The network: from `init` (strict, backbone checked) or random + ImageNet backbone weights."""
    from stseg_core.models.tmo import build_network, load_network

    if recipe.init == "random":
        return build_network(
            recipe.backbone, seed=recipe.seed, backbone_weights=recipe.backbone_weights, size=recipe.size
        )
    return load_network(recipe.init, recipe.backbone, size=recipe.size)


def validate(
    net: torch.nn.Module, recipe: TmoRecipe, data: MoseSplit, videos: tuple[str, ...], flow_cache: str, device: str
) -> dict[str, float]:
    """J&F of the current weights through the `tmo` adapter (its splitter turns foreground into ids)."""
    from stseg_core.models.tmo import TMO, TMOConfig
    from stseg_core.train.val import jf_on_videos

    adapter = TMO(
        TMOConfig(
            backbone=recipe.backbone,
            size=recipe.size,
            flow=recipe.flow,
            flow_checkpoint=recipe.flow_checkpoint,
            flow_cache=flow_cache,
            device=device,
            probs=False,
        )
    )
    adapter.net.load_state_dict(net.state_dict(), strict=True)
    adapter.net.eval()
    return jf_on_videos(adapter, data, videos)


def finetune_tmo(
    recipe: TmoRecipe,
    *,
    data_root: str,
    store: str,
    run_id: str,
    scratch: str | Path,
    metrics: JobMetrics | None = None,
    dist: DistEnv | None = None,
) -> TrainResult:
    """Finetune TMO on the training split at `data_root`; checkpoints go to `<store>/checkpoints/tmo/<run_id>/`.
    Inputs are checked and flow images precomputed before the first step; a run resumes from its latest
    checkpoint in the store."""

    from stseg_core.models.flow import FlowCache, flow_method
    from stseg_core.store import open_store

    run = prepare_run(recipe, "tmo", data_root=data_root, store=store, run_id=run_id, dist=dist, min_frames=3)
    dist, ckpts, data, split, device = run.dist, run.ckpts, run.data, run.split, run.device
    seed_rank(recipe.seed, dist)
    net = build_net(recipe)
    bns = batchnorms(net)
    net.to(device)
    flow_root = recipe.flow_cache or (store if isinstance(store, str) else store.root)
    cache = FlowCache(open_store(flow_root), flow_method(recipe.flow))
    if dist.is_main:
        precompute_flows(data, split.train + split.val, cache, recipe.flow, recipe.flow_checkpoint, device)
    init_distributed(dist, device)
    barrier(dist)
    parts = _parts(recipe, net, bns, data, split, cache, flow_root, device, dist)
    return run_epochs(parts, ckpts, recipe, dist, metrics)


def _parts(
    recipe: TmoRecipe,
    net: TMONet,
    bns: list[torch.nn.Module],
    data: MoseSplit,
    split: VideoSplit,
    cache: FlowCache,
    flow_root: str,
    device: str,
    dist: DistEnv,
) -> TrainParts:
    import torch

    from stseg_core.models.tmo import arch_entry

    dataset = FrameSamples(data, split.train, cache, recipe)
    sampler = rank_sampler(dataset, dist, recipe.seed)
    steps = steps_per_epoch(dataset, sampler, recipe, dist, what="tmo finetune", unit="frames")
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    runner = wrap_ddp(net, dist, device)

    def batches(epoch: int) -> DataLoader[Any]:
        return epoch_loader(
            dataset, sampler, epoch, batch_size=recipe.batch_size, workers=recipe.workers, device=device
        )

    def forward(batch: Any) -> torch.Tensor:
        return step_loss(runner, *(t.to(device, non_blocking=True) for t in batch))

    return TrainParts(
        model=net,
        optimizer=optimizer,
        forward=forward,
        no_sync=sync_skipper(runner),
        batches=batches,
        steps_per_epoch=steps,
        validate=lambda m: validate(m, recipe, data, split.val, flow_root, device),
        group_lrs=(("all", recipe.lr),),
        arch=arch_entry(net),
        recipe=asdict(recipe),
        lr_end_ratio=1.0,
        train_mode=lambda: train_mode(net, bns),
    )
