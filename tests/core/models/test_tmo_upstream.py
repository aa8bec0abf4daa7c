"""TMO equals the official code: upstream's `tmo.py` (../shared/upstream/TMO, pinned commit) is run beside ours
on the same inputs, weights exchanged in both directions through the official file format.

Upstream resizes every input to 384×384 inside `TMO.forward` (`s = 384`, a local there). The fast tests load its
source with that one constant set to SIZE (asserted to occur exactly once; nothing else is touched) and run ours
at size=SIZE, so the rn101 cases take seconds; the slow test runs the untouched file at 384.
torchvision's and transformers' hub downloads are replaced by randomly initialised backbones (no network).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchvision

from stseg_core.errors import BadInputError
from stseg_core.models.tmo import build_network, checkpoint_dict, load_network
from stseg_core.models.tmo_net import UPSTREAM_SIZE, aos_confidence, mit_b1_config

UPSTREAM = Path(__file__).resolve().parents[3].parent / "shared" / "upstream" / "TMO"
SIZE = 64
TOL = 1e-4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Proxy:
    """A module stand-in: `overrides` replace some attributes, every other one is the module's own."""

    def __init__(self, module, **overrides) -> None:
        self._module, self._overrides = module, overrides

    def __getattr__(self, name: str):
        return self._overrides.get(name) or getattr(self._module, name)


def load_upstream(side: int = UPSTREAM_SIZE):
    """Upstream's tmo.py as a module (inputs resized to side×side), its backbones built without downloads."""
    from transformers import SegformerModel

    path = UPSTREAM / "tmo.py"
    source = path.read_text()
    assert source.count(f"s = {UPSTREAM_SIZE}\n") == 1
    module = type(sys)("tmo_upstream")
    module.__file__ = str(path)
    exec(compile(source.replace(f"s = {UPSTREAM_SIZE}\n", f"s = {side}\n"), str(path), "exec"), module.__dict__)
    resnet101 = torchvision.models.resnet101
    module.tv = _Proxy(
        torchvision, models=_Proxy(torchvision.models, resnet101=lambda pretrained: resnet101(weights=None))
    )
    module.SegformerModel = _Proxy(SegformerModel, from_pretrained=lambda name: SegformerModel(mit_b1_config()))
    return module


@pytest.fixture(scope="module")
def upstream():
    return load_upstream(SIZE)


@pytest.fixture(scope="module")
def rn101(upstream, tmp_path_factory):
    """(upstream TMO('rn101') with seed 0, its official-format file, ours loaded strictly from that file)."""
    torch.manual_seed(0)
    theirs = upstream.TMO("rn101", False).eval()
    path = tmp_path_factory.mktemp("tmo") / "TMO_rn101.pth"
    torch.save(theirs.state_dict(), path)
    return theirs, path, load_network(str(path), size=SIZE).eval()


def _inputs(batch: int, frames: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, 3, 40, 56, generator=g), torch.rand(batch, frames, 3, 48, 64, generator=g)


def _upstream_scores(upstream, model, imgs, flows) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B×L×2×H×W scores, hard masks or None) from upstream's forward: its `scores` output, or at batch 1 (where
    it returns only hard masks) the input of the last softmax of each frame, recorded beside its `masks`."""
    recorded: list[torch.Tensor] = []

    def softmax(x, dim):
        recorded.append(x.detach().clone())
        return torch.softmax(x, dim=dim)

    upstream.torch = _Proxy(torch, softmax=softmax)
    with torch.no_grad():
        out = model(imgs, flows)
    if "scores" in out:
        return out["scores"], None
    per_frame = recorded[2::3] if model.aos else recorded  # AOS: softmax(img), softmax(flow), softmax(kept)
    assert len(per_frame) == imgs.shape[1]
    return torch.stack(per_frame, dim=1), out["masks"]


def _ours(net, imgs, flows, aos: bool) -> torch.Tensor:
    net.aos = aos
    with torch.no_grad():
        return torch.stack([net(imgs[:, i], flows[:, i]) for i in range(imgs.shape[1])], dim=1)


def test_official_rn101_file_loads_strictly_and_scores_match(upstream, rn101):
    theirs, _, ours = rn101
    assert list(ours.state_dict()) == list(theirs.state_dict())
    imgs, flows = _inputs(2, 2)
    want, _ = _upstream_scores(upstream, theirs, imgs, flows)
    got = _ours(ours, imgs, flows, aos=False)
    assert got.shape == want.shape == (2, 2, 2, 40, 56)
    assert (got - want).abs().max() < TOL


@pytest.mark.slow
def test_at_upstreams_own_384(rn101):
    real = load_upstream()
    _, path, _ = rn101
    theirs = real.TMO("rn101", True).eval()
    theirs.load_state_dict(torch.load(path, weights_only=True))
    ours = load_network(str(path)).eval()
    imgs, flows = _inputs(1, 1, seed=6)
    want, masks = _upstream_scores(real, theirs, imgs, flows)
    got = _ours(ours, imgs, flows, aos=True)
    assert (got - want).abs().max() < TOL and torch.equal(got.argmax(dim=2, keepdim=True), masks)


def test_aos_picks_the_same_branch_and_scores_as_upstream(upstream, rn101):
    theirs, _, ours = rn101
    imgs, flows = _inputs(1, 4, seed=1)
    flows[:, 1] = 0.5  # a featureless flow image: the image branch may win there
    theirs.aos = True
    try:
        want, masks = _upstream_scores(upstream, theirs, imgs, flows)
    finally:
        theirs.aos = False
    got = _ours(ours, imgs, flows, aos=True)
    assert (got - want).abs().max() < TOL
    assert torch.equal(got.softmax(dim=2).argmax(dim=2, keepdim=True), masks)
    # both branches occur over these frames, so the rule itself is compared, not one constant choice
    s = ours.size
    x = torch.nn.functional.interpolate(imgs[0], size=(s, s), mode="bicubic")
    m = torch.nn.functional.interpolate(flows[0], size=(s, s), mode="bicubic")
    with torch.no_grad():
        app = ours.vos.app_encoder(x)
        conf_img = aos_confidence(ours.vos.decoder(app, ours.vos.mo_encoder(x))[0])
        conf_flow = aos_confidence(ours.vos.decoder(app, ours.vos.mo_encoder(m))[0])
    assert set((conf_img > conf_flow).tolist()) == {True, False}
    off = _ours(ours, imgs, flows, aos=False)
    assert (off - got).abs().amax(dim=(0, 2, 3, 4)).gt(TOL).any()  # AOS changed some frame's scores


def test_our_checkpoint_loads_into_upstream_and_matches(upstream, rn101, tmp_path):
    theirs, official, _ = rn101
    ours = build_network("rn101", seed=5, size=SIZE).eval()
    torch.save(checkpoint_dict(ours), tmp_path / "ours.pt")
    theirs.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True)["model"], strict=True)
    try:
        imgs, flows = _inputs(2, 1, seed=2)
        want, _ = _upstream_scores(upstream, theirs, imgs, flows)
        assert (_ours(ours, imgs, flows, aos=False) - want).abs().max() < TOL
    finally:
        theirs.load_state_dict(torch.load(official, weights_only=True))


def test_mitb1_both_directions(upstream, tmp_path):
    torch.manual_seed(3)
    theirs = upstream.TMO("mitb1", True).eval()
    torch.save(theirs.state_dict(), tmp_path / "TMO_mitb1.pth")
    ours = load_network(str(tmp_path / "TMO_mitb1.pth"), backbone="mitb1", size=SIZE).eval()
    imgs, flows = _inputs(1, 2, seed=4)
    want, _ = _upstream_scores(upstream, theirs, imgs, flows)
    assert (_ours(ours, imgs, flows, aos=True) - want).abs().max() < TOL
    torch.save(checkpoint_dict(ours), tmp_path / "ours.pt")
    back = upstream.TMO("mitb1", False)
    back.load_state_dict(torch.load(tmp_path / "ours.pt", weights_only=True)["model"], strict=True)
    for k, v in theirs.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_mitb1_backbone_weights_from_a_segformer_classification_file(tmp_path):
    from transformers import SegformerModel

    torch.manual_seed(4)
    imagenet = {f"segformer.{k}": v for k, v in SegformerModel(mit_b1_config()).state_dict().items()}
    imagenet["classifier.weight"] = torch.zeros(1000, 512)  # nvidia/mit-b1 is an ImageNet classifier
    torch.save(imagenet, tmp_path / "mit_b1.pt")
    net = build_network("mitb1", backbone_weights=str(tmp_path / "mit_b1.pt"))
    key = "encoder.block.3.1.mlp.dense2.weight"
    assert torch.equal(net.vos.mo_encoder.backbone.state_dict()[key], imagenet[f"segformer.{key}"])


def test_other_backbone_or_network_fails_in_one_line_naming_the_key(rn101, tmp_path):
    _, official, _ = rn101
    with pytest.raises(BadInputError) as info:
        load_network(str(official), backbone="mitb1")
    assert str(info.value) == (
        f"checkpoint {official}: not a TMO mitb1 state dict; first mismatching key "
        "vos.app_encoder.backbone.encoder.patch_embeddings.0.proj.weight (missing from the checkpoint); "
        "expected backbone mitb1 (set backbone= to load another)"
    )
    torch.save({"image_encoder.trunk.weight": torch.zeros(2)}, tmp_path / "sam2.pt")
    with pytest.raises(
        BadInputError,
        match=r"^checkpoint .*sam2\.pt: not a TMO rn101 state dict; first "
        r"mismatching key vos\.app_encoder\.mean \(missing",
    ):
        load_network(str(tmp_path / "sam2.pt"))
    state = torch.load(official, weights_only=True)
    state["vos.decoder.predictor.conv.weight"] = torch.zeros(3, 256, 3, 3)
    torch.save(state, tmp_path / "bent.pth")
    with pytest.raises(
        BadInputError,
        match=r"first mismatching key vos\.decoder\.predictor\.conv\.weight "
        r"\(checkpoint \[3, 256, 3, 3\], model \[2, 256, 3, 3\]\)",
    ):
        load_network(str(tmp_path / "bent.pth"))


def test_training_step_loss_equals_upstream_trainers(upstream, rn101, monkeypatch):
    """Upstream's own `Trainer.cycle_dataset('train')` (CUDA calls made no-ops; its `utils` imports pypng only to
    write palette PNGs, never reached here) against our recipe's step on the same batch."""
    import types

    from stseg_core.train.tmo_recipe import batchnorms, step_loss, train_mode

    theirs, official, ours = rn101
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    monkeypatch.setitem(sys.modules, "png", types.ModuleType("png"))
    monkeypatch.syspath_prepend(str(UPSTREAM))
    for name in ("utils", "evaluation", "evaluation.metrics", "evaluation.evaluator", "trainer"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    from trainer import Trainer

    g = torch.Generator().manual_seed(7)
    batch = {
        "imgs": torch.rand(2, 1, 3, SIZE, SIZE, generator=g),
        "flows": torch.rand(2, 1, 3, SIZE, SIZE, generator=g),
        "indices": torch.tensor([0.0, 1.0]).view(2, 1, 1, 1, 1),  # sample 0: motion as option (RGB as motion)
        "masks": (torch.rand(2, 1, 1, SIZE, SIZE, generator=g) > 0.7).long(),
    }
    try:
        trainer = Trainer(
            theirs,
            "rn101",
            torch.optim.Adam(theirs.parameters(), lr=1e-5),
            [batch],
            None,
            save_name="t",
            save_step=1,
            val_step=1,
        )
        trainer.cycle_dataset(mode="train")
        want = trainer.stats["loss"].avg
    finally:
        theirs.load_state_dict(torch.load(official, weights_only=True))
    train_mode(ours, batchnorms(ours))
    try:
        got = step_loss(
            ours, batch["imgs"][:, 0], batch["flows"][:, 0], batch["indices"][:, 0], batch["masks"][:, 0, 0]
        )
    finally:
        ours.eval()
    assert abs(float(got.detach()) - want) < 1e-5 * max(1.0, want)
