"""TMO's network (Cho et al., WACV 2023, "Treating Motion as Option"), parameter for parameter the official
release's (suhwan-cho/TMO), so an official state dict loads strictly here and ours loads into upstream's module.

Notation: x = RGB frame, m = motion image (the flow image of frame t, or x itself: *motion as option*), both
B×3×H×W in [0, 1]; s = network side (384 upstream). x and m are resized bicubically to s×s; each encoder
normalises with the ImageNet mean/std (buffers `mean`, `std`) and gives features at strides 4, 8, 16, 32:
a4…a32 from x (`vos.app_encoder`), m4…m32 from m (`vos.mo_encoder`), with c4…c32 channels (`CHANNELS`).
Backbones: `rn101` (published, torchvision ResNet-101 stages), `mitb1` (published, Segformer MiT-b1 from
`transformers`, config written here: no download), and `rn18`/`rn34`/`rn50`, the same network over a smaller
ResNet (ours, for CPU tests and the demo; no official weights exist for them).
Decoder (`vos.decoder`), D = 256 channels, top-down; up = ×2 bicubic; [;] = channel concatenation:
    y32 = cbam1(blend1(conv1(a32 + m32)))
    yk  = cbam_i(blend_i([conv_i(ak + mk); up(y2k)]))        (k, i) = (16, 2), (8, 3), (4, 4)
    z   = predictor(y4) → ×4 bicubic to s×s: 2-class scores (background, foreground); then bicubic to H×W.
CBAM (Woo et al. 2018): conv1 3×3, then channel attention σ(conv2(avgpool) + conv2(maxpool)), then spatial
attention σ(conv3([channel mean; channel max])). Every conv is a `conv` submodule (+ ReLU in ConvRelu).
AOS (adaptive output selection, test time): z is computed twice, with m = flow image (z_f) and m = x (z_x);
conf(z) = (Σ over pixels and both classes of (h − p)² where p < h)^½, p = softmax(z), h = 0.1; the frame keeps
z_x when conf(z_x) > conf(z_f), else z_f. Upstream applies it only to batches of one frame; here it applies
to each frame of a batch alike (the same rule per frame).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from stseg_core.errors import BadInputError

if TYPE_CHECKING:
    from transformers import SegformerConfig

UPSTREAM_SIZE = 384
AOS_THRESHOLD = 0.1
DECODER_CHANNELS = 256
_RESNETS = {"rn18": "resnet18", "rn34": "resnet34", "rn50": "resnet50", "rn101": "resnet101"}
BACKBONES = (*_RESNETS, "mitb1")
"""Accepted `backbone` names; `rn101` and `mitb1` are the two the TMO authors released weights for."""
CHANNELS = {
    "rn18": (64, 128, 256, 512),
    "rn34": (64, 128, 256, 512),
    "rn50": (256, 512, 1024, 2048),
    "rn101": (256, 512, 1024, 2048),
    "mitb1": (64, 128, 320, 512),
}
"""Encoder channels at strides 4, 8, 16, 32 per backbone."""
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def mit_b1_config() -> SegformerConfig:
    """The `nvidia/mit-b1` Segformer configuration, written out (what `from_pretrained` would fetch)."""
    from transformers import SegformerConfig

    return SegformerConfig(
        num_channels=3,  # type: ignore[no-untyped-call]  # transformers: unannotated __init__ num_encoder_blocks=4, depths=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[64, 128, 320, 512],
        patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 2],
        num_attention_heads=[1, 2, 5, 8],
        mlp_ratios=[4, 4, 4, 4],
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        drop_path_rate=0.1,
        layer_norm_eps=1e-6,
        decoder_hidden_size=256,
        reshape_last_stage=True,
    )


def _conv(cin: int, cout: int, k: int, relu: bool = False) -> nn.Sequential:
    """Upstream's `Conv` / `ConvRelu`: a same-padded k×k conv named `conv` (+ `relu`), Kaiming-uniform init."""
    conv = nn.Conv2d(cin, cout, k, 1, k // 2)
    nn.init.kaiming_uniform_(conv.weight)
    assert conv.bias is not None  # nn.Conv2d has a bias unless bias=False
    nn.init.zeros_(conv.bias)
    layers = [("conv", conv)] + ([("relu", nn.ReLU())] if relu else [])
    return nn.Sequential(OrderedDict(layers))


class CBAM(nn.Module):
    """Convolutional block attention: a 3×3 conv, then channel and spatial re-weighting."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = _conv(c, c, 3)
        self.conv2 = nn.Sequential(_conv(c, c, 1, relu=True), _conv(c, c, 1))
        self.conv3 = nn.Sequential(_conv(2, 16, 3, relu=True), _conv(16, 1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        pooled = self.conv2(F.adaptive_avg_pool2d(x, 1)) + self.conv2(F.adaptive_max_pool2d(x, 1))
        x = x * torch.sigmoid(pooled)
        stats = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv3(stats))


class Encoder(nn.Module):
    """Image in [0, 1] → features at strides 4, 8, 16, 32. ResNets keep torchvision's stage names at top level
    (`conv1`, `bn1`, `layer1`…); MiT-b1 sits under `backbone`. Weights never come from a hub here."""

    # the ResNet stages, set by name in __init__ (declared for the type checker; parameters are only where set)
    conv1: nn.Module
    bn1: nn.Module
    relu: nn.Module
    maxpool: nn.Module
    layer1: nn.Module
    layer2: nn.Module
    layer3: nn.Module
    layer4: nn.Module

    def __init__(self, backbone: str) -> None:
        super().__init__()
        self.kind = backbone
        if backbone in _RESNETS:
            import torchvision

            net = torchvision.models.get_model(_RESNETS[backbone], weights=None)
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
                setattr(self, name, getattr(net, name))
        elif backbone == "mitb1":
            from transformers import SegformerModel

            self.backbone = SegformerModel(mit_b1_config())  # type: ignore[no-untyped-call]  # as SegformerConfig
        else:
            raise BadInputError(f"tmo backbone {backbone!r} is not one of {', '.join(BACKBONES)}")
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = (img - self.mean) / self.std
        if self.kind == "mitb1":
            return list(self.backbone(x, output_hidden_states=True).hidden_states[:4])
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feats = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            feats.append(x)
        return feats


class Decoder(nn.Module):
    """Summed appearance + motion features → (2-class scores at the input side, y4: D×s/4×s/4 features)."""

    def __init__(self, channels: tuple[int, int, int, int]) -> None:
        super().__init__()
        d = DECODER_CHANNELS
        for i, c in enumerate(reversed(channels), start=1):  # stage 1 = stride 32 … stage 4 = stride 4
            setattr(self, f"conv{i}", _conv(c, d, 1, relu=True))
            setattr(self, f"blend{i}", _conv(d if i == 1 else 2 * d, d, 3, relu=True))
            setattr(self, f"cbam{i}", CBAM(d))
        self.predictor = _conv(d, 2, 3)

    def forward(self, app: list[torch.Tensor], mo: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        y: torch.Tensor | None = None
        for i, (a, m) in enumerate(zip(reversed(app), reversed(mo), strict=True), start=1):
            x = getattr(self, f"conv{i}")(a + m)
            if y is not None:
                x = torch.cat([x, F.interpolate(y, scale_factor=2, mode="bicubic")], dim=1)
            y = getattr(self, f"cbam{i}")(getattr(self, f"blend{i}")(x))
        if y is None:
            raise BadInputError("tmo decoder: no encoder features")
        return F.interpolate(self.predictor(y), scale_factor=4, mode="bicubic"), y


class VOS(nn.Module):
    """The trainable part, under upstream's module name `vos`."""

    def __init__(self, backbone: str) -> None:
        super().__init__()
        self.app_encoder = Encoder(backbone)
        self.mo_encoder = Encoder(backbone)
        self.decoder = Decoder(CHANNELS[backbone])


def aos_confidence(scores: torch.Tensor) -> torch.Tensor:
    """Per frame (B×2×h×w → B): the AOS confidence, the ℓ2 norm of how far class probabilities fall below h."""
    p = torch.softmax(scores, dim=1)
    below = torch.where(p < AOS_THRESHOLD, AOS_THRESHOLD - p, torch.zeros_like(p))
    return below.square().flatten(1).sum(dim=1).sqrt()


class TMONet(nn.Module):
    """TMO: (x B×3×H×W, m B×3×H'×W', both in [0, 1]) → 2-class scores B×2×H×W (softmax gives probabilities).

    `aos` and `size` are run settings, not weights (the state dict is upstream's `TMO` module's exactly).
    """

    def __init__(self, backbone: str = "rn101", aos: bool = False, size: int = UPSTREAM_SIZE) -> None:
        super().__init__()
        if size < 32 or size % 32:
            raise BadInputError(f"tmo size={size} must be a positive multiple of 32")
        self.backbone = backbone
        self.aos = bool(aos)
        self.size = int(size)
        self.vos = VOS(backbone)

    def forward(self, img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return self.predict(img, flow)[0]

    def predict(self, img: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores B×2×H×W at x's size, decoder features y4 of the branch kept, B×D×s/4×s/4)."""
        h, w = img.shape[-2:]
        s = (self.size, self.size)
        img = F.interpolate(img, size=s, mode="bicubic")
        flow = F.interpolate(flow, size=s, mode="bicubic")
        app = self.vos.app_encoder(img)
        scores, feat = self.vos.decoder(app, self.vos.mo_encoder(flow))
        if self.aos:
            scores_img, feat_img = self.vos.decoder(app, self.vos.mo_encoder(img))
            keep_img = (aos_confidence(scores_img) > aos_confidence(scores)).view(-1, 1, 1, 1)
            scores = torch.where(keep_img, scores_img, scores)
            feat = torch.where(keep_img, feat_img, feat)
        return F.interpolate(scores, size=(h, w), mode="bicubic"), feat
