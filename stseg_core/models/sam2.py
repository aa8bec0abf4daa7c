"""`sam2`: the official SAM2.1 video predictor (`sam2==1.1.0`) behind `VOSModel`, frames streamed lazily.

Notation: T frames of H×W RGB; K objects; S = the model's square input size (`size`, a multiple of 32,
1024 upstream); the predictor's mask logits come back as K×1×H×W float32 at video resolution.

How a video runs (upstream `init_state` would decode every frame at S×S up front — T·3·S²·4 bytes, 6 GiB
for 500 frames at 1024 — so the inference state is built here instead, over `_LazyFrames`):
1. every object id gets `add_new_mask` on frame 0 with its first-frame mask;
2. `propagate_in_video` runs forward; each frame is decoded from `VideoInput.frames()` only when the
   predictor asks for it, resized to S×S exactly as upstream's JPEG loader does, and dropped after;
3. per-object outputs older than the model's memory reach (spatial memories and object pointers) are
   pruned after each frame, so the state stays bounded on long videos — masks are unchanged.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.models.base import FrameResult, VideoInput, VOSModel
from stseg_core.models.checkpoint import load_checkpoint, read_entry
from stseg_core.models.device import autocast, pick_device

if TYPE_CHECKING:
    import torch
    from sam2.sam2_video_predictor import SAM2VideoPredictor  # untyped package: Any to the type checker

CONFIGS = {
    "t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
"""The sam2.1 configs by short name; `config=` also takes `sam2.1_hiera_<x>` or the config path itself."""

CONFIDENCE_DEFINITION = (
    "sigmoid(object_score_logit) * predicted_iou: SAM2's occlusion head probability that the object is "
    "visible times the mask decoder's IoU estimate of the mask it chose (multimask: the highest), per object "
    "and frame; present = object_score_logit > 0; frame 0 is the given annotation (score 1)"
)

_IMG_MEAN = (0.485, 0.456, 0.406)
_IMG_STD = (0.229, 0.224, 0.225)


def config_path(config: str) -> str:
    """Map `t`/`s`/`b+`/`l`, `sam2.1_hiera_<x>` or a config path inside the sam2 package to the config path."""
    if config in CONFIGS:
        return CONFIGS[config]
    by_path = {v: v for v in CONFIGS.values()} | {Path(v).stem: v for v in CONFIGS.values()}
    if config in by_path:
        return by_path[config]
    raise BadInputError(f"sam2 config {config!r} is not one of {', '.join(CONFIGS)} (or sam2.1_hiera_<name>)")


def _has_cuda_extension() -> bool:
    """Upstream's hole filling needs the compiled `sam2._C`; CPU installs (SAM2_BUILD_CUDA=0) lack it."""
    return importlib.util.find_spec("sam2._C") is not None


def _quiet_upstream_bars() -> None:
    """Upstream wraps each video's propagation in a tqdm bar of its own: one bar per video floods a log and
    stacks up on a terminal. The stage that runs the videos shows the progress (one bar on a terminal)."""
    import functools

    import sam2.sam2_video_predictor as upstream
    from tqdm import tqdm

    upstream.tqdm = functools.partial(tqdm, disable=True)


def build_predictor(
    config: str = "t", size: int = 1024, device: str = "cpu", postprocess: bool | None = None
) -> SAM2VideoPredictor:
    """A random-weight `SAM2VideoPredictor` of `config` at input size `size` on `device` (weights come after).

    `postprocess=None` turns upstream's mask post-processing (hole filling, dynamic multimask) on only when
    the CUDA extension it needs is installed.
    """
    if size <= 0 or size % 32:
        raise BadInputError(f"sam2 size {size}: must be a positive multiple of 32")
    from sam2.build_sam import build_sam2_video_predictor

    if postprocess is None:
        postprocess = _has_cuda_extension()
    _quiet_upstream_bars()
    return build_sam2_video_predictor(
        config_path(config),
        ckpt_path=None,
        device=device,
        hydra_overrides_extra=[f"++model.image_size={size}"],
        apply_postprocessing=postprocess,
    )


def save_random_checkpoint(dest: str | Path, config: str = "t", seed: int = 0) -> Path:
    """Write a seeded random-weight checkpoint in upstream's `{"model": state_dict}` form.

    For tests, demos and `stseg infer` without downloadable weights; weights do not depend on `size`.
    """
    import torch

    torch.manual_seed(seed)
    model = build_predictor(config, size=256, device="cpu")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, dest)
    return dest


class _LazyFrames:
    """The predictor's `images` sequence, decoded on demand from `VideoInput.frames()` one frame at a time.

    SAM2 reads frames in order (frame 0 while prompting, then 0…T-1 while propagating); a step backwards
    restarts the stream. Each frame becomes a 3×S×S float32 tensor normalised with ImageNet statistics,
    resized with PIL as upstream's loader does, so masks match a JPEG-folder run bit for bit.
    """

    def __init__(self, video: VideoInput, size: int, device: torch.device | None) -> None:
        import torch

        self.video = video
        self.size = size
        self.device = device  # None: keep frames on CPU (upstream's offload_video_to_cpu)
        self._mean = torch.tensor(_IMG_MEAN, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(_IMG_STD, dtype=torch.float32)[:, None, None]
        self._it: Iterator[np.ndarray] | None = None
        self._index = -1
        self._frame: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.video.num_frames

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == self._index and self._frame is not None:
            return self._frame
        if not 0 <= index < len(self):
            raise IndexError(index)
        if self._it is None or index < self._index:
            self._it, self._index = iter(self.video.frames()), -1
        rgb = None
        while self._index < index:  # runs at least once: index > self._index here
            rgb = next(self._it, None)
            self._index += 1
            if rgb is None:
                raise BadInputError(
                    f"video {self.video.name}: frames() ended after {self._index} frames, "
                    f"but it lists {len(self)} stems"
                )
        if rgb is None:
            raise IndexError(index)
        self._frame = self._prepare(rgb, self.video.stems[index])
        return self._frame

    def _prepare(self, rgb: np.ndarray, stem: str) -> torch.Tensor:
        import torch
        from PIL import Image

        v = self.video
        if rgb.shape != (v.height, v.width, 3) or rgb.dtype != np.uint8:
            raise BadInputError(
                f"video {v.name} frame {stem}: expected {v.height}x{v.width}x3 uint8 RGB, "
                f"got shape {rgb.shape} dtype {rgb.dtype}"
            )
        small = np.asarray(Image.fromarray(rgb).resize((self.size, self.size)))
        img = torch.from_numpy(small / 255.0).permute(2, 0, 1).float()
        img -= self._mean
        img /= self._std
        return img if self.device is None else img.to(self.device, non_blocking=True)


class _IouTap:
    """Records the predicted IoU of the mask SAM2 picks on each call of `_forward_sam_heads`.

    Upstream computes the IoU estimate there but does not keep it in the inference state; wrapping the
    bound method on our predictor instance reads it without changing any output.
    """

    def __init__(self, predictor: SAM2VideoPredictor) -> None:
        self._inner = predictor._forward_sam_heads
        self.values: list[torch.Tensor] = []
        predictor._forward_sam_heads = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self._inner(*args, **kwargs)
        ious = out[2]  # B×M; with multimask output SAM2 keeps the mask of highest predicted IoU
        self.values.append(ious.max(dim=-1).values.detach())
        return out


class Sam2Model(VOSModel):
    """SAM2.1 video predictor with masks as prompts on frame 0; see the module docstring for the flow.

    Label map: per pixel the object with the largest mask logit, background where that logit is at most
    `mask_threshold` (0 = probability 0.5, upstream's binarisation). `probs` (when asked) are
    sigmoid(logit)·255 rounded, uint8, per object. One instance segments one video at a time.
    """

    name = "sam2"
    confidence_definition = CONFIDENCE_DEFINITION

    def __init__(
        self,
        predictor: SAM2VideoPredictor,
        *,
        device: str,
        offload_video_to_cpu: bool = True,
        offload_state_to_cpu: bool = False,
        mask_threshold: float = 0.0,
        probs: bool = False,
        bf16: bool = True,
    ) -> None:
        self.predictor = predictor
        self.device = device
        self.default_size = int(predictor.image_size)
        self.offload_video_to_cpu = offload_video_to_cpu
        self.offload_state_to_cpu = offload_state_to_cpu
        self.mask_threshold = float(mask_threshold)
        self.probs = probs
        self.bf16 = bf16
        self._ious = _IouTap(predictor)
        # How many past frames' outputs to keep: the next frame reads spatial memories up to
        # (num_maskmem - 1) strided frames back and object pointers up to max_obj_ptrs_in_encoder - 1 back.
        p = predictor
        self.memory_reach = max(p.num_maskmem * p.memory_temporal_stride_for_eval, p.max_obj_ptrs_in_encoder) + 1

    def _new_state(self, video: VideoInput) -> dict[str, Any]:
        """The inference-state dict `SAM2VideoPredictor.init_state` would build, over lazily decoded frames."""
        import torch

        device = torch.device(self.device)
        frames = _LazyFrames(video, int(self.predictor.image_size), None if self.offload_video_to_cpu else device)
        return {
            "images": frames,
            "num_frames": len(frames),
            "offload_video_to_cpu": self.offload_video_to_cpu,
            "offload_state_to_cpu": self.offload_state_to_cpu,
            "video_height": video.height,
            "video_width": video.width,
            "device": device,
            "storage_device": torch.device("cpu") if self.offload_state_to_cpu else device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": OrderedDict(),
            "obj_idx_to_id": OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }

    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        import torch

        pred = self.predictor
        state = self._new_state(video)
        with torch.inference_mode(), autocast(self.device, self.bf16):
            for obj_id in video.object_ids:
                pred.add_new_mask(state, 0, obj_id, torch.from_numpy(video.first_labels == obj_id))
        first = self.first_result(video)
        if self.probs:
            id_col = np.asarray(video.object_ids, dtype=np.uint8)[:, None, None]
            first = FrameResult(
                first.stem,
                first.labels,
                first.scores,
                first.present,
                probs=(video.first_labels[None] == id_col).astype(np.uint8) * 255,
            )
        yield first
        if video.num_frames == 1:
            return
        ids = torch.tensor(video.object_ids, dtype=torch.uint8, device=self.device)
        self._ious.values.clear()
        steps = pred.propagate_in_video(state)
        while True:
            # Autocast is entered per step, never across a yield, so the caller's code runs outside it.
            with torch.inference_mode(), autocast(self.device, self.bf16):
                step = next(steps, None)
                if step is None:
                    return
                t, _obj_ids, logits = step
                if t == 0:
                    continue
                result = self._frame_result(video, state, t, logits, ids)
                self._prune(state, t)
            yield result

    def _frame_result(
        self, video: VideoInput, state: dict[str, Any], t: int, logits: torch.Tensor, ids: torch.Tensor
    ) -> FrameResult:
        import torch

        ious = self._ious.values
        if len(ious) != len(video.object_ids):
            raise RuntimeError(f"sam2: expected {len(video.object_ids)} IoU estimates on frame {t}, got {len(ious)}")
        iou = torch.cat(ious).float().clamp(0, 1).cpu()
        ious.clear()
        obj_logit = (
            torch.cat(
                [
                    state["output_dict_per_obj"][k]["non_cond_frame_outputs"][t]["object_score_logits"].reshape(1)
                    for k in range(len(video.object_ids))
                ]
            )
            .float()
            .cpu()
        )
        score = torch.sigmoid(obj_logit) * iou
        m = logits[:, 0].float()  # K×H×W
        best, idx = m.max(dim=0)
        labels = torch.where(best > self.mask_threshold, ids[idx], torch.zeros_like(ids[idx]))
        probs = None
        if self.probs:
            probs = torch.sigmoid(m).mul_(255).round_().to(torch.uint8).cpu().numpy()
        return FrameResult(
            stem=video.stems[t],
            labels=labels.cpu().numpy(),
            scores={i: float(s) for i, s in zip(video.object_ids, score.tolist(), strict=True)},
            present={i: bool(v > 0) for i, v in zip(video.object_ids, obj_logit.tolist(), strict=True)},
            probs=probs,
        )

    def _prune(self, state: dict[str, Any], t: int) -> None:
        """Drop per-object outputs the next frame can no longer reach (see `memory_reach`)."""
        oldest = t + 1 - self.memory_reach
        for out in state["output_dict_per_obj"].values():
            stale = [f for f in out["non_cond_frame_outputs"] if f < oldest]
            for f in stale:
                del out["non_cond_frame_outputs"][f]


DEFAULT_CONFIG, DEFAULT_SIZE = "t", 1024
"""Used when neither the options nor the checkpoint's `arch` say (upstream releases carry no `arch`)."""


@dataclass(frozen=True)
class Sam2Config:
    """The `sam2` options (registry overrides, `stseg infer --set k=v`, `STSEG_MODEL_OPTIONS`).

    checkpoint (required): URI of a `{"model": state_dict}` file (upstream release or our finetune stage),
    path / file:// / s3://. config: t | s | b+ | l. size: square input side, a multiple of 32 (config and size
    default to what a finetuned checkpoint's `arch` records, else DEFAULT_CONFIG / DEFAULT_SIZE). device:
    auto | cuda | cpu. offload_video_to_cpu / offload_state_to_cpu: upstream's long-video switches (GPU
    memory). mask_threshold: a pixel is background where every object's logit is at most this. probs: also
    return per-object probabilities. bf16: autocast on CUDA. postprocess: upstream hole filling (None: only
    when the sam2 CUDA extension is installed).
    """

    checkpoint: str | None = None
    config: str | None = None
    size: int | None = None
    device: str | None = None
    offload_video_to_cpu: bool = True
    offload_state_to_cpu: bool = False
    mask_threshold: float = 0.0
    probs: bool = False
    bf16: bool = True
    postprocess: bool | None = None


def build(**overrides: Any) -> Sam2Model:
    """Registry builder: overrides are `Sam2Config` fields; the checkpoint is loaded strictly."""
    from stseg_core.models.options import parse_options

    cfg = parse_options(Sam2Config, overrides, model="sam2")
    if not cfg.checkpoint:
        raise BadInputError("sam2: no checkpoint given (checkpoint=<path, file:// or s3:// URI>)")
    # A finetuned checkpoint records its config and training resolution; explicit options win.
    arch = read_entry(cfg.checkpoint, "arch")
    config = cfg.config or str(arch.get("config") or DEFAULT_CONFIG)
    size = cfg.size or int(arch.get("resolution") or DEFAULT_SIZE)
    device = pick_device(cfg.device)
    predictor = build_predictor(config, size, "cpu", cfg.postprocess)
    load_checkpoint(predictor, cfg.checkpoint, model=f"sam2 {Path(config_path(config)).stem}")
    predictor.to(device)
    return Sam2Model(
        predictor,
        device=device,
        offload_video_to_cpu=cfg.offload_video_to_cpu,
        offload_state_to_cpu=cfg.offload_state_to_cpu,
        mask_threshold=cfg.mask_threshold,
        probs=cfg.probs,
        bf16=cfg.bf16,
    )
