"""`tmo`: TMO ("Treating Motion as Option", Cho et al., WACV 2023) as published, plus our step that splits
its single foreground into MOSE object ids.

Upstream-exact (checked against suhwan-cho/TMO's own `tmo.py` in tests/core/models/test_tmo_upstream.py): the network
(`tmo_net.TMONet`, same state-dict keys: official `TMO_rn101.pth` / `TMO_mitb1.pth` files load strictly), its
input pipeline (frames and flow images in [0, 1], bicubic to s×s, ImageNet normalisation in the encoders,
2-class scores bicubic back to frame size, softmax) and adaptive output selection (`aos`). Default aos=false:
upstream's `run.py` evaluates (and trains) its released weights with AOS off; aos=true is the paper's
optional test-time variant, at about 1.7× the cost (a third encoder pass and a second decoder pass).
The flow image is TMO's motion input: its method (`flow=dis` default on CPU, `flow=raft` as upstream used)
changes what the network sees. Ours: the foreground → ids step, `tmo_ids.ForegroundSplitter` (TMO is
single-foreground).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.models.base import FrameResult, VideoInput, VOSModel
from stseg_core.models.tmo_ids import ForegroundSplitter

if TYPE_CHECKING:
    import torch

    from stseg_core.models.tmo_net import TMONet

CONFIDENCE_DEFINITION = (
    "mean TMO foreground probability over the pixels assigned to the object "
    "(0 when it has none); present = at least one pixel assigned"
)
DEFAULT_BACKBONE = "rn101"


# ----------------------------------------------------------------------------------------------------------
# Network weights
# ----------------------------------------------------------------------------------------------------------


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 (RGB frame or flow image) → 3×H×W float32 in [0, 1], what TMONet takes (upstream's
    `to_tensor`); used by inference and training alike."""
    import torch

    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1).div(255.0)


def build_network(
    backbone: str = DEFAULT_BACKBONE,
    seed: int = 0,
    backbone_weights: str | None = None,
    aos: bool = False,
    size: int = 384,
) -> TMONet:
    """A TMONet with a reproducible random init (`seed`, without touching the global RNG); optionally both
    encoders start from ImageNet weights at `backbone_weights` (a store URI: a torchvision ResNet state dict,
    fc.* ignored; for mitb1 a Segformer state dict, `segformer.` prefix and classifier.* ignored)."""
    import torch

    from stseg_core.models.tmo_net import TMONet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TMONet(backbone, aos=aos, size=size)
    if backbone_weights is not None:
        from stseg_core.models.checkpoint import load_strict, read_state_dict

        state = {
            k.removeprefix("segformer."): v
            for k, v in read_state_dict(backbone_weights).items()
            if not k.startswith(("fc.", "classifier."))
        }
        for enc in (net.vos.app_encoder, net.vos.mo_encoder):
            if backbone == "mitb1":
                load_strict(enc.backbone, state, source=backbone_weights, model="tmo mitb1 encoder")
            else:  # the normalisation buffers are TMO's own, not the ResNet's
                load_strict(
                    enc,
                    {**state, "mean": enc.mean, "std": enc.std},
                    source=backbone_weights,
                    model=f"tmo {backbone} encoder",
                )
    return net


def arch_entry(net: TMONet) -> dict[str, Any]:
    """The `arch` entry of our TMO checkpoints: what `load_network` reads back as the recorded backbone."""
    return {"backbone": net.backbone}


def checkpoint_dict(net: TMONet) -> dict[str, Any]:
    """What our TMO checkpoint file holds (`torch.save` it): `{"model": state_dict, "arch": {"backbone"}}`;
    `model` is upstream's state dict exactly, so `TMO(ver, aos).load_state_dict(ckpt["model"])` takes it."""
    return {"model": net.state_dict(), "arch": arch_entry(net)}


def checkpoint_backbone(uri: str) -> str | None:
    """The backbone our finetune stage recorded in the checkpoint at `uri` (None for official files)."""
    from stseg_core.models.checkpoint import read_entry
    from stseg_core.models.tmo_net import BACKBONES

    found = read_entry(uri, "arch").get("backbone")
    if found is not None and found not in BACKBONES:
        raise BadInputError(f"checkpoint {uri}: arch backbone {found!r} is not one of {', '.join(BACKBONES)}")
    return found


def _first_mismatch(expected: dict[str, Any], state: dict[str, Any]) -> str | None:
    """The first key (in the model's order, then the checkpoint's extras) where `state` does not fit, and why."""
    for k, v in expected.items():
        if k not in state:
            return f"{k} (missing from the checkpoint)"
        if tuple(state[k].shape) != tuple(v.shape):
            return f"{k} (checkpoint {list(state[k].shape)}, model {list(v.shape)})"
    return next((f"{k} (not in the model)" for k in state if k not in expected), None)


def load_network(uri: str, backbone: str | None = None, aos: bool = False, size: int = 384) -> TMONet:
    """TMONet with the weights at `uri`: an official TMO state dict (`torch.save(model.state_dict())`) or our
    `{"model": …, "arch": …}`, loaded strictly. `backbone`: None = the checkpoint's recorded one, else rn101
    (the official default); a file of another backbone or network fails naming the first mismatching key."""
    import torch

    from stseg_core.models.checkpoint import read_state_dict
    from stseg_core.models.tmo_net import TMONet

    state = read_state_dict(uri)  # validates the file (missing → MissingArtifactError, junk → BadInputError)
    recorded = checkpoint_backbone(uri)
    if backbone is not None and recorded is not None and backbone != recorded:
        raise BadInputError(f"checkpoint {uri}: holds TMO {recorded} but backbone {backbone} was asked for")
    backbone = backbone or recorded or DEFAULT_BACKBONE
    with torch.device("meta"):  # shapes only: no init work before the check, the weights come from `state`
        net = TMONet(backbone, aos=aos, size=size)
    problem = _first_mismatch(net.state_dict(), state)
    if problem is not None:
        raise BadInputError(
            f"checkpoint {uri}: not a TMO {backbone} state dict; first mismatching key {problem}; "
            f"expected backbone {backbone} (set backbone= to load another)"
        )
    net.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True, assign=True
    )
    return net


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TMOConfig:
    """Options of `tmo` (all overridable by name through the registry, as values or strings).

    checkpoint: URI of a TMO checkpoint (official state dict or our finetune's); None = random weights from
    `seed` (tests and smoke runs only). backbone: rn101 | mitb1 (published) | rn18 | rn34 | rn50 (ours, small);
    None = the checkpoint's recorded one, else rn101. aos: adaptive output selection (default off, as
    upstream's run.py). size: s, the square network input (384 = upstream). flow: dis | raft (= raft_large,
    as upstream) | raft_large | raft_small; flow_checkpoint: RAFT weights URI (default: torchvision's file in
    the torch cache, baked into the tmo image). flow_cache: store URI under which flow images are cached
    (`flow/<method>/<video>/<stem>.png`); None = no cache. threshold, min_region: see `tmo_ids.ForegroundSplitter`.
    device: "auto", "cpu" or "cuda" (float32 everywhere, as upstream). probs: emit K×H×W soft probabilities.
    """

    checkpoint: str | None = None
    backbone: str | None = None
    aos: bool = False
    size: int = 384
    flow: str = "dis"
    flow_checkpoint: str | None = None
    flow_cache: str | None = None
    threshold: float = 0.5
    min_region: float = 0.001
    device: str | None = None
    seed: int = 0
    probs: bool = True
    backbone_weights: str | None = None

    def __post_init__(self) -> None:
        from stseg_core.models.tmo_net import BACKBONES

        if self.size < 32 or self.size % 32:
            raise BadInputError(f"tmo option size={self.size} must be a positive multiple of 32")
        if not 0.0 < self.threshold < 1.0:
            raise BadInputError(f"tmo option threshold={self.threshold} must be in (0, 1)")
        if self.backbone is not None and self.backbone not in BACKBONES:
            raise BadInputError(f"tmo option backbone={self.backbone!r} is not one of {', '.join(BACKBONES)}")


class TMO(VOSModel):
    """TMO network + `ForegroundSplitter`; frames and flow images streamed one at a time."""

    name = "tmo"
    default_size = 384
    confidence_definition = CONFIDENCE_DEFINITION

    def __init__(self, config: TMOConfig) -> None:
        from stseg_core.models.device import pick_device
        from stseg_core.models.flow import FlowCache, build_flow

        self.config = config
        self.device = pick_device(config.device)
        if config.checkpoint is not None:
            net = load_network(config.checkpoint, config.backbone, aos=config.aos, size=config.size)
        else:
            net = build_network(
                config.backbone or DEFAULT_BACKBONE,
                seed=config.seed,
                backbone_weights=config.backbone_weights,
                aos=config.aos,
                size=config.size,
            )
        self.net = net.to(self.device).eval()
        self.flow = build_flow(config.flow, checkpoint=config.flow_checkpoint, device=self.device)
        self.cache = None
        if config.flow_cache is not None:
            from stseg_core.store import open_store

            self.cache = FlowCache(open_store(config.flow_cache), self.flow.method)

    @property
    def backbone(self) -> str:
        return self.net.backbone

    def predict(self, rgb: np.ndarray, flow_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame → (foreground probability H×W float32 at the frame's size, decoder features D×s/4×s/4)."""
        import torch

        with torch.inference_mode():
            x, m = (image_tensor(a)[None].to(self.device) for a in (rgb, flow_image))
            scores, feat = self.net.predict(x, m)
            prob = torch.softmax(scores, dim=1)[0, 1]
        return prob.cpu().numpy(), feat[0].cpu().numpy()

    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        from stseg_core.models.flow import frames_with_flow, image_to_flow

        splitter = None
        prev_flow = None
        for stem, rgb, flow_img, max_flow in frames_with_flow(video, self.flow, self.cache):
            if rgb.shape[:2] != (video.height, video.width):
                raise BadInputError(
                    f"video {video.name}: frame {stem} is {rgb.shape[1]}x{rgb.shape[0]}, "
                    f"expected {video.width}x{video.height} (WxH)"
                )
            prob, feat = self.predict(rgb, flow_img)
            if splitter is None or prev_flow is None:  # the first frame (both are set after it)
                splitter = ForegroundSplitter(
                    video.first_labels, video.object_ids, feat, self.config.threshold, self.config.min_region
                )
                first = self.first_result(video)
                soft = None
                if self.config.probs:
                    soft = np.stack([(video.first_labels == i).astype(np.uint8) * 255 for i in video.object_ids])
                yield dataclasses.replace(first, probs=soft)
            else:
                labels, scores, present, soft = splitter.step(prob, prev_flow, feat)
                yield FrameResult(
                    stem=stem, labels=labels, scores=scores, present=present, probs=soft if self.config.probs else None
                )
            prev_flow = image_to_flow(flow_img, max_flow)


def build(**overrides: Any) -> TMO:
    """Registry builder: overrides are `TMOConfig` fields, given as values or strings (from the CLI/env)."""
    from stseg_core.models.checkpoint import read_entry
    from stseg_core.models.options import parse_options

    if overrides.get("checkpoint") and "size" not in overrides:
        # a checkpoint of our finetune stage runs at the input size it was trained at
        trained = read_entry(str(overrides["checkpoint"]), "recipe").get("size")
        if trained:
            overrides = {**overrides, "size": trained}
    return TMO(parse_options(TMOConfig, overrides, model="tmo"))
