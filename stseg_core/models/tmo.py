"""`tmo`: TMO ("Treating Motion as Option", Cho et al. 2023) re-implemented, plus the step that splits its
single foreground into MOSE object ids.

Notation: the network works at s×s (default 384, TMO's input size); x = RGB frame t, m = the flow image of
frame t (colour-wheel encoding of the flow t→t+1, see `flow.py`), both resized to s×s and normalised with the
ImageNet mean/std. Two ResNets of the same architecture (`weights=None` always; weights only ever come
from a checkpoint URI): the appearance encoder on x gives a1…a4, the motion encoder on m gives m1…m4, at
strides 4, 8, 16, 32 with c1…c4 channels (256…2048 for ResNet-50/101/152, 64…512 for ResNet-18/34).
Fusion per stage i: gᵢ = aᵢ + σ(Wᵢ[aᵢ; mᵢ]) ⊙ mᵢ — a learnt gate decides how much motion to trust (motion
as an *option*: where the flow is uninformative the gate can shut it out). Decoder: top-down FPN, D
channels, refined to stride 4 (d, D×s/4×s/4), then a head gives one foreground logit, upsampled to s×s.

From one foreground to K ids (`ForegroundSplitter`, frame t ≥ 1, all at frame size H×W):
  1. fg = P ≥ threshold, P = the foreground probability resized to H×W.
  2. Seeds: the previous label map splatted forward along the flow t−1→t (each labelled pixel p lands on
     round(p + F(p))), kept only inside fg.
  3. Each connected region of fg that holds seeds: every unclaimed pixel takes the id of its nearest seed.
  4. A region with no seed (an object that reappears, or one the warp lost) and at least `min_region` of
     the frame: the first-frame anchors decide — each object's prototype is its mean decoder feature d over
     its first-frame mask (cosine-normalised); the region goes to the object whose prototype is most
     similar to the region's features on average. Smaller seedless regions are dropped as clutter.
Confidence: score(k) = mean P over the pixels labelled k (0 when absent); present(k) = k has ≥ 1 pixel.
Soft output: probs(k) = P inside the Voronoi cell of k's pixels (each pixel's nearest labelled pixel).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from stseg_core.errors import BadInputError
from stseg_core.models.base import FrameResult, VideoInput, VOSModel

if TYPE_CHECKING:
    import torch

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)

CONFIDENCE_DEFINITION = ("mean TMO foreground probability over the pixels assigned to the object "
                         "(0 when it has none); present = at least one pixel assigned")


# ----------------------------------------------------------------------------------------------------------
# Network
# ----------------------------------------------------------------------------------------------------------


def to_input(image: np.ndarray, size: int) -> np.ndarray:
    """H×W×3 uint8 (RGB frame or flow image) → 3×size×size float32, ImageNet-normalised: what both encoders
    take, at inference here and in training (so the two never drift apart)."""
    import cv2

    x = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    return np.ascontiguousarray(((x - _MEAN) / _STD).transpose(2, 0, 1))


def resnet_names() -> list[str]:
    """torchvision ResNet-family builders usable as TMO encoders (resnet18 … resnet152, resnext*, wide_*)."""
    import torchvision

    return sorted(n for n in torchvision.models.list_models(module=torchvision.models)
                  if n.startswith(("resnet", "resnext", "wide_resnet")))


@dataclass(frozen=True)
class TMOArch:
    """What fixes the shapes of TMO's weights; stored in every checkpoint as `arch`."""

    backbone: str = "resnet101"
    decoder_channels: int = 128

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str) -> TMOArch:
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            raise BadInputError(f"checkpoint {source}: 'arch' must hold exactly {sorted(names)}, got {data!r}")
        return cls(backbone=str(data["backbone"]), decoder_channels=int(data["decoder_channels"]))


def _build_network(arch: TMOArch):
    """A TMONet for `arch` (random init). Defined lazily so importing this module never imports torch."""
    import torch
    import torchvision
    from torch import nn

    if arch.backbone not in resnet_names():
        raise BadInputError(f"tmo backbone {arch.backbone!r} is not a torchvision ResNet "
                            f"(choose from {', '.join(resnet_names())})")
    if arch.decoder_channels < 8:
        raise BadInputError(f"tmo decoder_channels={arch.decoder_channels} must be at least 8")

    def encoder() -> nn.Module:
        net = torchvision.models.get_model(arch.backbone, weights=None)
        net.fc = nn.Identity()  # the classifier is unused; backbone checkpoints have their fc.* keys dropped
        return net

    def stages(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        out = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            x = layer(x)
            out.append(x)
        return out

    def conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                             nn.ReLU(inplace=True))

    class TMONet(nn.Module):
        """(rgb B×3×s×s, flow image B×3×s×s, both normalised) → (logit B×1×s×s, d B×D×s/4×s/4)."""

        def __init__(self) -> None:
            super().__init__()
            self.appearance = encoder()
            self.motion = encoder()
            a = self.appearance
            widths = [_stage_width(layer) for layer in (a.layer1, a.layer2, a.layer3, a.layer4)]
            d = arch.decoder_channels
            self.gates = nn.ModuleList(nn.Conv2d(2 * c, c, 1) for c in widths)
            self.laterals = nn.ModuleList(conv_bn_relu(c, d, 1) for c in widths)
            self.refine = nn.ModuleList(conv_bn_relu(d, d, 3) for _ in widths[:-1])
            self.head = nn.Sequential(conv_bn_relu(d, d, 3), nn.Conv2d(d, 1, 1))

        def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            fused = []
            for gate, a, m in zip(self.gates, stages(self.appearance, rgb), stages(self.motion, flow),
                                  strict=True):
                fused.append(a + torch.sigmoid(gate(torch.cat([a, m], 1))) * m)
            y = self.laterals[3](fused[3])
            for i in (2, 1, 0):
                up = nn.functional.interpolate(y, size=fused[i].shape[-2:], mode="bilinear", align_corners=False)
                y = self.refine[i](self.laterals[i](fused[i]) + up)
            logit = nn.functional.interpolate(self.head(y), size=rgb.shape[-2:], mode="bilinear",
                                              align_corners=False)
            return logit, y

    return TMONet()


def _stage_width(layer) -> int:
    """Output channels of a ResNet stage (last block's last BatchNorm)."""
    block = layer[-1]
    bn = block.bn3 if hasattr(block, "bn3") else block.bn2
    return int(bn.num_features)


def build_network(arch: TMOArch, seed: int = 0, backbone_weights: str | None = None):
    """A TMONet with a reproducible random init (`seed`, without touching the global RNG); optionally both
    encoders start from a torchvision ResNet state dict at `backbone_weights` (a store URI; fc.* ignored)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _build_network(arch)
    if backbone_weights is not None:
        from stseg_core.models.checkpoint import load_strict, read_state_dict

        state = {k: v for k, v in read_state_dict(backbone_weights).items() if not k.startswith("fc.")}
        for enc in (net.appearance, net.motion):
            load_strict(enc, state, source=backbone_weights, model=f"tmo {arch.backbone} encoder")
    return net


def checkpoint_dict(net, arch: TMOArch) -> dict:
    """What a TMO checkpoint file holds (`torch.save` it): `{"model": state_dict, "arch": {...}}`."""
    return {"model": net.state_dict(), "arch": arch.to_dict()}


def load_network(uri: str, arch: TMOArch | None = None):
    """(TMONet, its TMOArch) from the checkpoint at `uri`, loaded strictly.

    `arch`, when given, must equal the checkpoint's own: a checkpoint of another backbone or width is bad
    input, never silently re-shaped.
    """
    import torch

    from stseg_core.models.checkpoint import load_strict, read_state_dict, resolve_checkpoint

    state = read_state_dict(uri)  # validates the file (missing → MissingArtifactError, junk → BadInputError)
    meta = torch.load(resolve_checkpoint(uri), map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(meta, dict) or "arch" not in meta:
        raise BadInputError(f"checkpoint {uri}: not a TMO checkpoint (no 'arch' entry; expected "
                            "{'model': state_dict, 'arch': {...}})")
    found = TMOArch.from_dict(meta["arch"], uri)
    if arch is not None and arch != found:
        raise BadInputError(f"checkpoint {uri}: holds TMO {found.backbone} (decoder {found.decoder_channels}) "
                            f"but {arch.backbone} (decoder {arch.decoder_channels}) was asked for")
    net = _build_network(found)
    load_strict(net, state, source=uri, model=f"tmo {found.backbone}")
    return net, found


# ----------------------------------------------------------------------------------------------------------
# One foreground → K ids
# ----------------------------------------------------------------------------------------------------------


def _splat(labels: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Forward-warp a label map along the flow t−1→t: each labelled pixel p lands on round(p + F(p)).

    Forward flow is defined on frame t−1's grid, so splatting uses it where it is measured (a backward warp
    would read it at frame t's positions, wrong wherever an object moved more than its own width). Where
    two objects land on one pixel the smaller id's write is overwritten (occlusion order is unknown).
    """
    h, w = labels.shape
    ys, xs = np.nonzero(labels)
    tx = np.rint(xs + flow[ys, xs, 0]).astype(np.int64)
    ty = np.rint(ys + flow[ys, xs, 1]).astype(np.int64)
    keep = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    out = np.zeros_like(labels)
    out[ty[keep], tx[keep]] = labels[ys[keep], xs[keep]]
    return out


class ForegroundSplitter:
    """Owns the object-id rules of one video: ids only ever come from the first frame (see module docstring).

    Shapes: labels H×W uint8; prob H×W float32 in [0, 1]; flow H×W×2 float32 (t−1→t, pixels); feat D×h×w
    float32 (decoder features at any resolution, compared by cosine similarity).
    """

    def __init__(self, first_labels: np.ndarray, object_ids: tuple[int, ...], first_feat: np.ndarray,
                 threshold: float = 0.5, min_region: float = 0.001) -> None:
        self.ids = tuple(int(i) for i in object_ids)
        self.threshold = float(threshold)
        self.min_region = float(min_region)
        self.prev = first_labels
        self.prototypes = self._prototypes(first_labels, first_feat)

    def _prototypes(self, labels: np.ndarray, feat: np.ndarray) -> np.ndarray:
        """K×D unit vectors: mean feature of each object's first-frame mask (area-weighted at feature size)."""
        import cv2

        d, h, w = feat.shape
        protos = np.zeros((len(self.ids), d), np.float32)
        flat = feat.reshape(d, -1)
        for k, oid in enumerate(self.ids):
            weight = cv2.resize((labels == oid).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA).ravel()
            if weight.sum() > 0:
                protos[k] = flat @ weight / weight.sum()
        return protos / np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-6)

    def step(self, prob: np.ndarray, flow: np.ndarray, feat: np.ndarray
             ) -> tuple[np.ndarray, dict[int, float], dict[int, bool], np.ndarray]:
        """One frame → (labels H×W uint8, scores, present, probs K×H×W uint8)."""
        import cv2
        from scipy import ndimage

        h, w = prob.shape
        fg = prob >= self.threshold
        seeds = np.where(fg, _splat(self.prev, flow), 0).astype(np.uint8)
        labels = np.zeros((h, w), np.uint8)
        n_regions, regions = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
        if n_regions > 1:
            seeded = np.zeros(n_regions, bool)
            seeded[np.unique(regions[seeds > 0])] = True
            seeded[0] = False
            if seeds.any():
                _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
                nearest = seeds[iy, ix]
                take = seeded[regions]
                labels[take] = nearest[take]
            self._anchor_regions(labels, regions, n_regions, seeded, feat)
        present = {oid: bool((labels == oid).any()) for oid in self.ids}
        scores = {oid: float(prob[labels == oid].mean()) if present[oid] else 0.0 for oid in self.ids}
        self.prev = labels
        return labels, scores, present, self._soft(prob, labels)

    def _anchor_regions(self, labels: np.ndarray, regions: np.ndarray, n_regions: int, seeded: np.ndarray,
                        feat: np.ndarray) -> None:
        """Give each large seedless region to the object whose first-frame prototype it resembles most."""
        import cv2

        h, w = labels.shape
        areas = np.bincount(regions.ravel(), minlength=n_regions)
        todo = [r for r in range(1, n_regions) if not seeded[r] and areas[r] >= self.min_region * h * w]
        if not todo:
            return
        d, fh, fw = feat.shape
        unit = feat.reshape(d, -1)
        unit = unit / np.maximum(np.linalg.norm(unit, axis=0, keepdims=True), 1e-6)
        sims = (self.prototypes @ unit).reshape(len(self.ids), fh, fw)
        for r in todo:
            inside = regions == r
            mean_sim = [float(cv2.resize(s, (w, h), interpolation=cv2.INTER_LINEAR)[inside].mean()) for s in sims]
            labels[inside] = self.ids[int(np.argmax(mean_sim))]

    def _soft(self, prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """K×H×W uint8: P × [pixel's nearest labelled pixel belongs to k]."""
        from scipy import ndimage

        out = np.zeros((len(self.ids), *labels.shape), np.uint8)
        if not labels.any():
            return out
        _, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
        owner = labels[iy, ix]
        p255 = np.round(prob * 255.0).astype(np.uint8)
        for k, oid in enumerate(self.ids):
            out[k] = np.where(owner == oid, p255, 0)
        return out


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TMOConfig:
    """Options of `tmo` (all overridable by name through the registry, as values or strings).

    checkpoint: URI of a TMO checkpoint; None = random weights from `seed` (tests and smoke runs only).
    backbone / decoder_channels: the architecture; None = take it from the checkpoint (resnet101 / 128
    without one). size: s, the square network input. flow: "dis", "raft_small" or "raft_large";
    flow_checkpoint: RAFT weights URI. flow_cache: store URI under which flow images are cached
    (`flow/<method>/<video>/<stem>.png`); None = no cache. threshold, min_region: see `ForegroundSplitter`.
    device: "auto", "cpu" or "cuda". probs: emit K×H×W soft probabilities.
    """

    checkpoint: str | None = None
    backbone: str | None = None
    decoder_channels: int | None = None
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
        if self.size < 32 or self.size % 32:
            raise BadInputError(f"tmo option size={self.size} must be a positive multiple of 32")
        if not 0.0 < self.threshold < 1.0:
            raise BadInputError(f"tmo option threshold={self.threshold} must be in (0, 1)")


class TMO(VOSModel):
    """TMO network + `ForegroundSplitter`; frames and flow images streamed one at a time."""

    name = "tmo"
    needs_gpu = False
    default_size = 384
    confidence_definition = CONFIDENCE_DEFINITION

    def __init__(self, config: TMOConfig) -> None:
        from stseg_core.models.device import pick_device
        from stseg_core.models.flow import FlowCache, build_flow

        self.config = config
        self.device = pick_device(config.device)
        asked = None
        if config.backbone is not None or config.decoder_channels is not None:
            default = TMOArch()
            asked = TMOArch(backbone=config.backbone or default.backbone,
                            decoder_channels=config.decoder_channels or default.decoder_channels)
        if config.checkpoint is not None:
            net, self.arch = load_network(config.checkpoint, asked)
        else:
            self.arch = asked or TMOArch()
            net = build_network(self.arch, seed=config.seed, backbone_weights=config.backbone_weights)
        self.net = net.to(self.device).eval()
        self.flow = build_flow(config.flow, checkpoint=config.flow_checkpoint, device=self.device)
        self.cache = None
        if config.flow_cache is not None:
            from stseg_core.store import open_store

            self.cache = FlowCache(open_store(config.flow_cache), self.flow.method)

    def predict(self, rgb: np.ndarray, flow_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame → (foreground probability H×W float32 at the frame's size, decoder features D×s/4×s/4)."""
        import cv2
        import torch

        from stseg_core.models.device import autocast

        with torch.inference_mode(), autocast(self.device):
            s = self.config.size
            rgb_t, flow_t = (torch.from_numpy(to_input(x, s))[None].to(self.device) for x in (rgb, flow_image))
            logit, feat = self.net(rgb_t, flow_t)
        prob = torch.sigmoid(logit.float())[0, 0].cpu().numpy()
        h, w = rgb.shape[:2]
        return cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR), feat.float()[0].cpu().numpy()

    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        from stseg_core.models.flow import frames_with_flow, image_to_flow

        splitter = None
        prev_flow = None
        for stem, rgb, flow_img, max_flow in frames_with_flow(video, self.flow, self.cache):
            if rgb.shape[:2] != (video.height, video.width):
                raise BadInputError(f"video {video.name}: frame {stem} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                    f"expected {video.width}x{video.height} (WxH)")
            prob, feat = self.predict(rgb, flow_img)
            if splitter is None:
                splitter = ForegroundSplitter(video.first_labels, video.object_ids, feat,
                                              self.config.threshold, self.config.min_region)
                first = self.first_result(video)
                soft = None
                if self.config.probs:
                    soft = np.stack([(video.first_labels == i).astype(np.uint8) * 255 for i in video.object_ids])
                yield dataclasses.replace(first, probs=soft)
            else:
                labels, scores, present, soft = splitter.step(prob, prev_flow, feat)
                yield FrameResult(stem=stem, labels=labels, scores=scores, present=present,
                                  probs=soft if self.config.probs else None)
            prev_flow = image_to_flow(flow_img, max_flow)


def build(**overrides) -> TMO:
    """Registry builder: overrides are `TMOConfig` fields, given as values or strings (from the CLI/env)."""
    from stseg_core.models.checkpoint import read_entry
    from stseg_core.models.options import parse_options

    if overrides.get("checkpoint") and "size" not in overrides:
        # a checkpoint of our finetune stage runs at the input size it was trained at
        trained = read_entry(str(overrides["checkpoint"]), "recipe").get("size")
        if trained:
            overrides = {**overrides, "size": trained}
    return TMO(parse_options(TMOConfig, overrides, model="tmo"))
