"""`cutie`, `xmem`, `livos`: the upstream evaluation programs, run as STSeg ran them, behind `VOSModel`.

The real programs need their repositories, their Python packages and a CUDA GPU: they run only in the
model images (`images/cutie`, `images/xmem`, `images/livos`), where the repository sits at
`$STSEG_<MODEL>_HOME` (default `/opt/<Repo>`). Elsewhere building the model fails with a
`MissingArtifactError` that says so. Tests exercise the same process wiring with a stand-in program.

Per video the adapter lays the frames out in the DAVIS generic layout on local scratch::

    <scratch>/stseg-<model>-XXXX/
        data/JPEGImages/<video>/<stem>.png     every frame, lossless (the exact decoded pixels)
        data/Annotations/<video>/<stem0>.png   the first frame's palette label map only
        out/Annotations/<video>/<stem>.png     written by the program: palette label maps
        out/Scores/<video>/<stem>.hkl          Cutie/XMem with scores: uint8 (K+1)×H×W, probability×255,
                                               channel 0 = background
        out/Scores/<video>/backward.hkl        XMem: {object id: channel}
        program.log                            the program's stdout+stderr (its tail goes in errors)

runs the pinned command (below), then converts the masks and score files into `FrameResult`s:

- Cutie  (hkchengrex/Cutie @ ec5cdd4): `python cutie/eval_vos.py dataset=generic image_directory=…
  mask_directory=… output_dir=… weights=… size=… save_scores=True exp_id=stseg hydra.run.dir=…`.
  Score channels follow Cutie's temporary ids, given in ascending object-id order (its reader passes
  `torch.unique` of the first mask). At that commit `save_scores=True` raises in the result-saver thread
  on each video's last frame (its `backward.hkl` line iterates `tmp_id_to_obj` with the names swapped) and
  the program then waits forever: the cutie image must patch that line, or run with `scores=false`.
  The adapter never reads Cutie's `backward.hkl`.
- XMem   (hkchengrex/XMem @ f3b841d): `python eval.py --model … --dataset G --generic_path … --output …
  --size … --save_scores`. Score channels are mapped through `backward.hkl` (ascending order if absent).
- LiVOS  (uncbiag/LiVOS @ 8c26cb0): `python livos/eval.py dataset=generic image_directory=…
  mask_directory=… output_dir=… weights=… size=… hydra.run.dir=…`; masks only, no probabilities.

Confidence: with score files, score(k) = mean probability of channel k over the pixels labelled k (0 when
absent); LiVOS (and `scores=false`) gives 1 for a present object, 0 for an absent one.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stseg_core.errors import BackendError, BadInputError, MissingArtifactError
from stseg_core.models.base import FrameResult, VideoInput, VOSModel

_LOG_TAIL = 300  # characters of the program's output quoted in an error


@dataclass(frozen=True)
class UpstreamProgram:
    """What differs between the three upstream programs."""

    name: str
    repo: str
    default_home: str
    script: str
    score_format: str | None
    """"cutie", "xmem" or None (masks only)."""
    default_size: int

    @property
    def env_prefix(self) -> str:
        return f"STSEG_{self.name.upper()}"


PROGRAMS = {
    "cutie": UpstreamProgram("cutie", "hkchengrex/Cutie", "/opt/Cutie", "cutie/eval_vos.py", "cutie", 480),
    "xmem": UpstreamProgram("xmem", "hkchengrex/XMem", "/opt/XMem", "eval.py", "xmem", 480),
    "livos": UpstreamProgram("livos", "uncbiag/LiVOS", "/opt/LiVOS", "livos/eval.py", None, 480),
}

SCORED = ("mean upstream probability of the object's channel over the pixels labelled with it "
          "(0 when absent); present = at least one pixel")
UNSCORED = "1 when the upstream mask holds the object, else 0 (the program writes no probabilities)"


def command(program: UpstreamProgram, *, python: str, home: Path, data: Path, out: Path, weights: str,
            size: int, scores: bool, work: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The argv that runs `program` on the generic layout at `data`, writing to `out`."""
    script = str(home / program.script)
    if program.name == "xmem":
        argv = [python, script, "--model", weights, "--dataset", "G", "--generic_path", str(data),
                "--output", str(out), "--size", str(size)]
        if scores:
            argv.append("--save_scores")
    else:
        argv = [python, script, "dataset=generic", f"image_directory={data / 'JPEGImages'}",
                f"mask_directory={data / 'Annotations'}", f"output_dir={out}", f"weights={weights}",
                f"size={size}", "exp_id=stseg", f"hydra.run.dir={work / 'hydra'}"]
        if program.name == "cutie":
            argv.append(f"save_scores={scores}")
    return argv + list(extra)


def lay_out(video: VideoInput, data: Path) -> None:
    """Write `video` in the DAVIS generic layout under `data` (frames as lossless PNG, first mask only)."""
    from PIL import Image

    from stseg_core.data.labels import encode_label_png

    frames_dir = data / "JPEGImages" / video.name
    masks_dir = data / "Annotations" / video.name
    frames_dir.mkdir(parents=True)
    masks_dir.mkdir(parents=True)
    count = 0
    for stem, rgb in zip(video.stems, video.frames(), strict=False):
        Image.fromarray(rgb).save(frames_dir / f"{stem}.png", compress_level=1)
        count += 1
    if count != video.num_frames:
        raise BadInputError(f"video {video.name}: {count} frames streamed for {video.num_frames} stems")
    (masks_dir / f"{video.stems[0]}.png").write_bytes(encode_label_png(video.first_labels))


def _hickle():
    try:
        import hickle
    except ImportError:
        raise BadInputError("reading upstream score files needs the hickle package (pip install 'stseg[ml]')"
                            ) from None
    return hickle


def _load_hkl(path: Path):
    try:
        return _hickle().load(str(path))
    except (OSError, ValueError, KeyError) as err:
        raise BadInputError(f"{path}: unreadable hickle file ({str(err).splitlines()[0][:200]})") from None


def _channels(program: UpstreamProgram, scores_dir: Path, ids: tuple[int, ...]) -> list[int]:
    """Score-file channel of each object id, in `ids` order."""
    backward = scores_dir / "backward.hkl"
    if program.score_format == "xmem" and backward.is_file():
        mapping = _load_hkl(backward)
        if not isinstance(mapping, dict) or set(map(int, mapping)) != set(ids):
            raise BadInputError(f"{backward}: maps ids {sorted(mapping) if isinstance(mapping, dict) else mapping}"
                                f", expected the first frame's {list(ids)}")
        return [int(mapping[i]) if i in mapping else int(mapping[str(i)]) for i in ids]
    return list(range(1, len(ids) + 1))


def convert_outputs(program: UpstreamProgram, out: Path, video: VideoInput, scores: bool
                    ) -> Iterator[FrameResult]:
    """The program's files under `out` → one FrameResult per stem (frame 0 = the given labels)."""
    from stseg_core.data.labels import read_label_png

    ids = video.object_ids
    masks_dir = out / "Annotations" / video.name
    scores_dir = out / "Scores" / video.name
    use_scores = scores and program.score_format is not None
    channels = _channels(program, scores_dir, ids) if use_scores else []
    known = np.zeros(256, bool)
    known[[0, *ids]] = True
    for index, stem in enumerate(video.stems):
        if index == 0:  # the given labels, as every model yields them
            soft = np.stack([(video.first_labels == i).astype(np.uint8) * 255 for i in ids]) if use_scores else None
            yield FrameResult(stem=stem, labels=video.first_labels.copy(), scores=dict.fromkeys(ids, 1.0),
                              present=dict.fromkeys(ids, True), probs=soft)
            continue
        mask_path = masks_dir / f"{stem}.png"
        if not mask_path.is_file():
            raise MissingArtifactError(f"video {video.name}: {program.name} wrote no mask for frame {stem} "
                                       f"({mask_path})")
        labels = read_label_png(mask_path.read_bytes(), str(mask_path))
        if labels.shape != (video.height, video.width):
            raise BadInputError(f"{mask_path}: mask is {labels.shape[0]}x{labels.shape[1]}, the frame is "
                                f"{video.height}x{video.width}")
        if not known[labels].all():
            extra = sorted(set(np.unique(labels).tolist()) - {0, *ids})
            raise BadInputError(f"{mask_path}: holds ids {extra} not in the first frame's {list(ids)}")
        present = {i: bool((labels == i).any()) for i in ids}
        probs = None
        if use_scores:
            score_path = scores_dir / f"{stem}.hkl"
            if not score_path.is_file():
                raise MissingArtifactError(f"video {video.name}: {program.name} wrote no scores for frame {stem} "
                                           f"({score_path})")
            raw = np.asarray(_load_hkl(score_path))
            if raw.ndim != 3 or raw.shape[1:] != labels.shape or raw.dtype != np.uint8 \
                    or raw.shape[0] <= max(channels):
                raise BadInputError(f"{score_path}: expected uint8 ({max(channels) + 1}, {labels.shape[0]}, "
                                    f"{labels.shape[1]}) probabilities, got {raw.dtype} {raw.shape}")
            probs = raw[channels]
            conf = {i: float(probs[k][labels == i].mean()) / 255.0 if present[i] else 0.0
                    for k, i in enumerate(ids)}
        else:
            conf = {i: 1.0 if present[i] else 0.0 for i in ids}
        yield FrameResult(stem=stem, labels=labels, scores=conf, present=present, probs=probs)


class UpstreamModel(VOSModel):
    """One upstream program; each `segment` call runs it once on a one-video generic layout."""

    needs_gpu = True

    def __init__(self, program: UpstreamProgram, *, weights: Path, home: Path, python: str, size: int,
                 scores: bool, scratch: str | None, extra: tuple[str, ...], timeout_s: float | None) -> None:
        self.program = program
        self.name = program.name
        self.default_size = program.default_size
        self.confidence_definition = SCORED if scores and program.score_format else UNSCORED
        self.weights, self.home, self.python = weights, home, python
        self.size, self.scores, self.scratch, self.extra, self.timeout_s = size, scores, scratch, extra, timeout_s

    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        with tempfile.TemporaryDirectory(prefix=f"stseg-{self.name}-", dir=self.scratch) as tmp:
            work = Path(tmp)
            data, out = work / "data", work / "out"
            lay_out(video, data)
            argv = command(self.program, python=self.python, home=self.home, data=data, out=out,
                           weights=str(self.weights), size=self.size, scores=self.scores, work=work,
                           extra=self.extra)
            self._run(argv, work, video.name)
            yield from convert_outputs(self.program, out, video, self.scores)

    def _run(self, argv: list[str], work: Path, video: str) -> None:
        log = work / "program.log"
        try:
            with open(log, "wb") as fh:
                proc = subprocess.run(argv, cwd=self.home, stdout=fh, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise BackendError(f"video {video}: {self.name} program ran past {self.timeout_s} s "
                               f"({_tail(log)})") from None
        except OSError as err:
            raise MissingArtifactError(f"{self.name}: cannot start {argv[0]} ({err.strerror})") from None
        if proc.returncode != 0:
            raise BackendError(f"video {video}: {self.name} program exited with code {proc.returncode} "
                               f"({_tail(log)})")


def _tail(log: Path) -> str:
    """The last lines of the program's output, on one line."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-_LOG_TAIL:] or "no output"


@dataclass(frozen=True)
class UpstreamOptions:
    """Options of the upstream adapters (see `build_upstream`)."""

    checkpoint: str | None = None
    home: str | None = None
    python: str | None = None
    size: int | None = None
    scores: bool = True
    scratch: str | None = None
    extra_args: str = ""
    timeout_s: float | None = None
    device: str | None = None


def build_upstream(name: str, **overrides) -> UpstreamModel:
    """Check the program is installed (`home`, default `$STSEG_<NAME>_HOME` or `/opt/<Repo>`), resolve the
    checkpoint URI to a local file, and return the model.

    Options: checkpoint (URI of the upstream weights file, required), home, python (default
    `$STSEG_<NAME>_PYTHON` or this interpreter), size (short side the program resizes to), scores
    (ask for probability files), scratch (where the layout goes; default the system temp dir),
    extra_args (appended to the command, shell-split), timeout_s, device (only "cuda"/"auto" make sense).
    """
    from stseg_core.models.options import parse_options

    program = PROGRAMS[name]
    opts = parse_options(UpstreamOptions, overrides, model=name)
    home = Path(opts.home or os.environ.get(f"{program.env_prefix}_HOME") or program.default_home)
    script = home / program.script
    if not script.is_file():
        raise MissingArtifactError(
            f"{name}: upstream program {script} not found; the real {program.repo} runs only in the {name} "
            f"image (elsewhere set {program.env_prefix}_HOME or home= to a checkout)")
    if opts.device not in (None, "", "auto", "cuda"):
        raise BadInputError(f"{name} option device={opts.device!r}: the upstream program runs on CUDA only")
    if not opts.checkpoint:
        raise BadInputError(f"{name} needs checkpoint=URI (the upstream weights file, copied into the store)")
    from stseg_core.models.checkpoint import resolve_checkpoint

    weights = resolve_checkpoint(opts.checkpoint)
    python = opts.python or os.environ.get(f"{program.env_prefix}_PYTHON") or sys.executable
    return UpstreamModel(program, weights=weights, home=home, python=python,
                         size=program.default_size if opts.size is None else opts.size, scores=opts.scores,
                         scratch=opts.scratch or None, extra=tuple(shlex.split(opts.extra_args)),
                         timeout_s=opts.timeout_s)


def build_cutie(**overrides) -> UpstreamModel:
    return build_upstream("cutie", **overrides)


def build_xmem(**overrides) -> UpstreamModel:
    return build_upstream("xmem", **overrides)


def build_livos(**overrides) -> UpstreamModel:
    return build_upstream("livos", **overrides)
