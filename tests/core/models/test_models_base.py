"""Model interface and registry: input validation, lazy builders, unknown names, device choice."""

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from stseg_core.data.mose import MoseWriter, write_video
from stseg_core.errors import BadInputError, MissingArtifactError
from stseg_core.models import registry
from stseg_core.models.base import FrameResult, VideoInput, VOSModel
from stseg_core.models.device import autocast, pick_device
from stseg_core.models.options import parse_options
from stseg_core.preflight import Preflight, require_weights
from stseg_core.store import open_store


def _labels() -> np.ndarray:
    lab = np.zeros((8, 10), np.uint8)
    lab[1:3, 1:3] = 1
    lab[5:7, 6:9] = 4
    return lab


def _video(ids=(1, 4), labels=None) -> VideoInput:
    frames = [np.zeros((8, 10, 3), np.uint8)] * 3
    return VideoInput(
        name="cat",
        stems=("00000", "00001", "00002"),
        height=8,
        width=10,
        first_labels=_labels() if labels is None else labels,
        object_ids=ids,
        frames=lambda: iter(frames),
    )


def test_registry_lists_every_model_and_unknown_name_lists_them():
    assert registry.available() == [
        "cutie",
        "flowprop",
        "flowprop-farneback",
        "flowprop-plain",
        "livos",
        "oneshot",
        "sam2",
        "stm",
        "tmo",
        "xmem",
    ]
    with pytest.raises(BadInputError) as err:
        registry.build_model("sam3")
    assert str(err.value) == (
        "unknown model 'sam3' (known: cutie, flowprop, flowprop-farneback, "
        "flowprop-plain, livos, oneshot, sam2, stm, tmo, xmem)"
    )
    assert registry.info("flowprop-plain").defaults == (("reacquire", False), ("refine", False))
    assert registry.info("cutie").builder == "stseg_core.models.upstream:build_cutie"
    assert registry.info("flowprop").default_checkpoint is None


def test_registry_facts_the_cli_and_specs_read():
    assert registry.default_set() == ("sam2", "tmo", "cutie", "xmem", "livos")
    assert registry.cpu_models() == (
        "flowprop",
        "flowprop-farneback",
        "flowprop-plain",
        "oneshot",
        "stm",
        "sam2",
        "tmo",
    )
    assert registry.finetunable() == ("sam2", "tmo")
    assert {m: registry.info(m).image for m in registry.available() if registry.info(m).image != "fusion"} == {
        "sam2": "sam2",
        "tmo": "tmo",
        "cutie": "cutie",
        "xmem": "xmem",
        "livos": "livos",
    }
    assert [m for m in registry.available() if registry.info(m).gets_gpu] == ["cutie", "livos", "sam2", "tmo", "xmem"]
    assert [m for m in registry.available() if registry.info(m).needs_weights] == ["cutie", "livos", "sam2", "xmem"]
    assert registry.recipe_of("tmo").size_option == "size"
    with pytest.raises(BadInputError, match=r"^model 'stm' cannot be finetuned \(finetunable: sam2, tmo\)$"):
        registry.recipe_of("stm")


def test_options_are_checked_without_building():
    registry.check_options("flowprop-farneback", {"size": "128"})
    with pytest.raises(
        BadInputError,
        match=r"^flowprop has no option\(s\) checkpoint \(options: .*; it takes no "
        r"checkpoint$",
    ):
        registry.check_options("flowprop", {"checkpoint": "x.pt"})
    with pytest.raises(BadInputError, match=r"^tmo option size='big': not an integer$"):
        registry.check_options("tmo", {"size": "big"})


def test_builders_are_imported_only_when_built(monkeypatch):
    monkeypatch.setitem(
        registry._REGISTRY,
        "later",
        registry.ModelInfo("later", "stseg_tests_not_a_module:build", "stseg_tests_not_a_module:Options", "x"),
    )
    assert "later" in registry.available()
    assert "stseg_tests_not_a_module" not in sys.modules
    with pytest.raises(BadInputError, match=r"model later: cannot import stseg_tests_not_a_module"):
        registry.build_model("later")
    with pytest.raises(BadInputError, match="builder must be 'module:attribute'"):
        registry.ModelInfo("bad", "no_colon", "m:Options", "")


def test_build_model_passes_overrides_to_the_builder():
    model = registry.build_model("flowprop", flow="farneback", size="128")
    assert isinstance(model, VOSModel)
    assert (model.name, model.config.flow, model.config.size) == ("flowprop", "farneback", 128)


def test_video_input_validates_first_frame_ids():
    v = _video()
    assert v.num_frames == 3 and v.object_ids == (1, 4)
    with pytest.raises(BadInputError) as err:
        _video(ids=(1, 2, 4))  # id 2 vanished in frame 0
    assert str(err.value) == (
        "video cat: object ids [2] are absent from the first frame 00000 (ids present there: [1, 4])"
    )
    with pytest.raises(BadInputError, match=r"video cat: first frame 00000 holds ids \[4\] not listed"):
        _video(ids=(1,))
    with pytest.raises(BadInputError, match="video cat: no object ids"):
        _video(ids=(), labels=np.zeros((8, 10), np.uint8))
    with pytest.raises(BadInputError, match="must be 8x10 uint8"):
        _video(labels=_labels().astype(np.int32))


def test_first_result_is_the_given_labels():
    class Echo(VOSModel):
        name = "echo"

        def segment(self, video):
            yield self.first_result(video)

    r: FrameResult = next(Echo().segment(_video()))
    assert r.stem == "00000" and np.array_equal(r.labels, _labels())
    assert r.scores == {1: 1.0, 4: 1.0} and r.present == {1: True, 4: True} and r.probs is None


def test_from_split_streams_frames_and_labels(tmp_path):
    frames = [np.full((8, 10, 3), 40 * i, np.uint8) for i in range(3)]
    write_video(tmp_path, "cat", frames, {0: _labels()})
    from stseg_core.data.mose import MoseSplit

    v = VideoInput.from_split(MoseSplit(tmp_path), "cat")
    assert v.stems == ("00000", "00001", "00002") and (v.height, v.width) == (8, 10) and v.object_ids == (1, 4)
    assert np.array_equal(v.first_labels, _labels())
    means = [round(float(f.mean())) for f in v.frames()]
    assert means == [0, 40, 80] and len(list(v.frames())) == 3  # re-iterable


def test_from_split_refuses_missing_or_empty_first_annotation(tmp_path):
    from stseg_core.data.mose import MoseSplit

    w = MoseWriter(open_store(tmp_path))
    for i in range(2):
        w.write_frame("late", i, np.zeros((8, 10, 3), np.uint8))
        w.write_frame("empty", i, np.zeros((8, 10, 3), np.uint8))
    w.write_annotation("late", 1, _labels())  # annotated, but not on its first frame
    w.write_annotation("empty", 0, np.zeros((8, 10), np.uint8))
    split = MoseSplit(tmp_path)
    with pytest.raises(BadInputError, match=r"missing first-frame annotation of video 'late'"):
        VideoInput.from_split(split, "late")
    with pytest.raises(
        BadInputError,
        match=r"Annotations/empty/00000.png: the first frame of video 'empty' "
        r"annotates no object \(nothing to segment\)$",
    ):
        VideoInput.from_split(split, "empty")


def test_pick_device():
    import torch

    has_cuda = torch.cuda.is_available()
    assert pick_device(None) == pick_device("auto") == ("cuda" if has_cuda else "cpu")
    assert pick_device("cpu") == "cpu"
    with pytest.raises(BadInputError, match="device 'tpu' is not one of auto, cuda, cpu"):
        pick_device("tpu")
    if not has_cuda:
        with pytest.raises(BadInputError, match="device 'cuda' was forced but torch sees no CUDA GPU"):
            pick_device("cuda")
    with autocast("cpu"):
        x = torch.ones(2, 2) @ torch.ones(2, 2)
    assert x.dtype == torch.float32


@dataclass(frozen=True)
class RecorderOptions:
    checkpoint: str | None = None


class _Recorder(VOSModel):
    """Remembers what its builder was given."""

    def __init__(self, options: RecorderOptions) -> None:
        self.options = options

    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        yield self.first_result(video)


def build_recorder(**overrides: object) -> _Recorder:
    return _Recorder(parse_options(RecorderOptions, overrides, model="recorder"))


def test_a_default_checkpoint_is_built_with_and_checked_when_none_is_given(tmp_path):
    weights = tmp_path / "w.pt"
    registry.register(
        registry.ModelInfo(
            "recorder",
            f"{__name__}:build_recorder",
            f"{__name__}:RecorderOptions",
            "test-only",
            needs_weights=True,
            default_checkpoint=str(weights),
        )
    )
    try:
        assert registry.build_model("recorder").options.checkpoint == str(weights)
        assert registry.build_model("recorder", checkpoint="other.pt").options.checkpoint == "other.pt"
        with pytest.raises(MissingArtifactError, match=f"^recorder checkpoint {re.escape(str(weights))}: not found$"):
            require_weights("recorder", {}, Preflight())  # the default is what the job will load: it must exist
        weights.write_bytes(b"w")
        require_weights("recorder", {}, Preflight())
    finally:
        registry.unregister("recorder")
    with pytest.raises(BadInputError, match=r"^model sam2 needs weights"):
        require_weights("sam2", {}, Preflight())
