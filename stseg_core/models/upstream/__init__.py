"""`cutie`, `xmem`, `livos`: the upstream evaluation programs, run as STSeg ran them, behind `VOSModel`.

The programs (hkchengrex/Cutie @ ec5cdd4, hkchengrex/XMem @ f3b841d, uncbiag/LiVOS @ 8c26cb0; `programs.py`
pins them and says what each reads and writes) sit at `$STSEG_<MODEL>_HOME` (default `/opt/<Repo>` in the
model images). They call CUDA unconditionally; `device=cpu` runs them on the CPU through a shim installed for
the child process only (`cpu/sitecustomize.py`), which is how the tests run them for real.

One launch per batch: `segment_many` lays out every video of a batch (`files.py`: JPEG frames copied byte
for byte), starts the program once over all of them, and yields each video's results as soon as the program
has moved on to the next video (it processes them in name order), so outputs reach the store while it runs.
If the program fails, the videos yielded before stay good and the error names the video it was on.
`segment` is the one-video batch.

Confidence: with score files, score(k) = mean probability of channel k over the pixels labelled k (0 when
absent); LiVOS (and `scores=false`) gives 1 for a present object, 0 for an absent one.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stseg_core.errors import BackendError, BadInputError, MissingArtifactError
from stseg_core.models.base import FrameResult, VideoInput, VOSModel
from stseg_core.models.upstream.files import convert_outputs, lay_out
from stseg_core.models.upstream.programs import PROGRAMS, UpstreamProgram, check_patched, child_env, command

__all__ = [
    "PROGRAMS",
    "UpstreamModel",
    "build_cutie",
    "build_livos",
    "build_upstream",
    "build_xmem",
    "convert_outputs",
    "lay_out",
]

_LOG_TAIL = 300  # characters of the program's output quoted in an error
_POLL_S = 0.1

SCORED = (
    "mean upstream probability of the object's channel over the pixels labelled with it "
    "(0 when absent); present = at least one pixel"
)
UNSCORED = "1 when the upstream mask holds the object, else 0 (the program writes no probabilities)"


class UpstreamModel(VOSModel):
    """One upstream program; each `segment_many` call runs it once over a batch of videos."""

    def __init__(
        self,
        program: UpstreamProgram,
        *,
        weights: Path,
        home: Path,
        python: str,
        size: int,
        scores: bool,
        scratch: str | None,
        extra: tuple[str, ...],
        timeout_s: float | None,
        device: str | None,
        batch_frames: int,
    ) -> None:
        self.program = program
        self.name = program.name
        self.default_size = program.default_size
        self.confidence_definition = SCORED if program.writes_scores(scores) else UNSCORED
        self.weights, self.home, self.python = weights, home, python
        self.size, self.scores, self.scratch, self.extra, self.timeout_s = size, scores, scratch, extra, timeout_s
        self.device = device
        self.batch_frames = batch_frames
        """Most frames one launch takes (infer splits a shard into batches of at most this many)."""
        self.layout_s = 0.0
        """Seconds the last batch's layout took (frames linked or copied, first masks written)."""
        self.startup_s = 0.0
        """Seconds from the last launch until the program began writing its first video (imports, CUDA set-up,
        weights, the first frame): what one launch per batch instead of per video saves."""

    def segment(self, video: VideoInput) -> Iterator[FrameResult]:
        for _video, results in self.segment_many([video]):
            yield from results

    def segment_many(self, videos: Sequence[VideoInput]) -> Iterator[tuple[VideoInput, Iterator[FrameResult]]]:
        """Run the program once over `videos` (given in name order, the order it processes them); yield
        `(video, results)` per video as soon as its outputs are complete. Consume each `results` before asking
        for the next video: the files go when the batch ends."""
        names = [v.name for v in videos]
        if names != sorted(set(names)):
            raise BadInputError(f"{self.name}: a batch must list distinct videos in name order, got {names}")
        with tempfile.TemporaryDirectory(prefix=f"stseg-{self.name}-", dir=self.scratch) as tmp:
            work = Path(tmp)
            data, out = work / "data", work / "out"
            start = time.perf_counter()
            for video in videos:
                lay_out(video, data)
            self.layout_s = time.perf_counter() - start
            argv = command(
                self.program,
                python=self.python,
                home=self.home,
                data=data,
                out=out,
                weights=str(self.weights),
                size=self.size,
                scores=self.scores,
                work=work,
                extra=self.extra,
            )
            log = work / "program.log"
            with open(log, "wb") as fh:
                try:
                    proc = subprocess.Popen(
                        argv,
                        cwd=self.home,
                        env=child_env(self.home, self.device),
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                except OSError as err:
                    raise MissingArtifactError(f"{self.name}: cannot start {argv[0]} ({err.strerror})") from None
            launched = time.perf_counter()
            try:
                if videos:
                    self._wait(
                        proc,
                        out,
                        videos[0].name,
                        videos[0].name,
                        log,
                        doing=f"while starting, before any output (weights {self.weights})",
                    )
                    self.startup_s = time.perf_counter() - launched
                for i, video in enumerate(videos):
                    following = videos[i + 1].name if i + 1 < len(videos) else None
                    self._wait(proc, out, video.name, following, log)
                    yield video, convert_outputs(self.program, out, video, self.scores)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()

    def _wait(
        self,
        proc: subprocess.Popen[bytes],
        out: Path,
        video: str,
        following: str | None,
        log: Path,
        doing: str = "while on this video",
    ) -> None:
        """Return once the program has started on video `following` (then it has finished every video before:
        it writes one video's files before it starts the next) or has exited cleanly; `video` is the one it is
        on, named in errors."""
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while True:
            if following is not None and self.program.masks_dir(out, following, self.scores).is_dir():
                return
            code = proc.poll()
            if code == 0:
                return
            if code is not None:
                raise BackendError(f"video {video}: {self.name} program exited with code {code} {doing} ({_tail(log)})")
            if deadline is not None and time.monotonic() > deadline:
                raise BackendError(
                    f"video {video}: {self.name} program ran past {self.timeout_s} s {doing} ({_tail(log)})"
                )
            time.sleep(_POLL_S)


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
    batch_frames: int = 4000


def build_upstream(name: str, **overrides: Any) -> UpstreamModel:
    """Check the program is installed (`home`, default `$STSEG_<NAME>_HOME` or `/opt/<Repo>`), resolve the
    checkpoint URI to a local file, and return the model.

    Options: checkpoint (URI of the upstream weights file, required), home, python (default
    `$STSEG_<NAME>_PYTHON` or this interpreter), size (short side the program resizes to), scores
    (ask for probability files), scratch (where the layout goes; default the system temp dir),
    extra_args (appended to the command, shell-split), timeout_s (per video), device ("cuda"/"auto": the
    program as it is; "cpu": through the CPU shim), batch_frames (most frames per launch, default 4000:
    a MOSE shard of ~34 videos is one launch; bounds the scratch space of a batch).
    """
    from stseg_core.models.options import parse_options

    program = PROGRAMS[name]
    opts = parse_options(UpstreamOptions, overrides, model=name)
    home = Path(opts.home or os.environ.get(f"{program.env_prefix}_HOME") or program.default_home)
    script = home / program.script
    if not script.is_file():
        raise MissingArtifactError(
            f"{name}: upstream program {script} not found; the real {program.repo} runs in the {name} image "
            f"(elsewhere set {program.env_prefix}_HOME or home= to a checkout, e.g. from `make upstream`)"
        )
    device = (opts.device or "auto").lower()
    if device not in ("auto", "cuda", "cpu"):
        raise BadInputError(f"{name} option device={opts.device!r}: use cuda, cpu or auto")
    if opts.batch_frames < 1:
        raise BadInputError(f"{name} option batch_frames={opts.batch_frames}: must be at least 1")
    if opts.scores and program.writes_scores(True):
        check_patched(program, home)
    if not opts.checkpoint:
        raise BadInputError(f"{name} needs checkpoint=URI (the upstream weights file, copied into the store)")
    from stseg_core.models.checkpoint import resolve_checkpoint

    weights = resolve_checkpoint(opts.checkpoint)
    python = opts.python or os.environ.get(f"{program.env_prefix}_PYTHON") or sys.executable
    return UpstreamModel(
        program,
        weights=weights,
        home=home,
        python=python,
        size=program.default_size if opts.size is None else opts.size,
        scores=opts.scores,
        scratch=opts.scratch or None,
        extra=tuple(shlex.split(opts.extra_args)),
        timeout_s=opts.timeout_s,
        device=None if device == "auto" else device,
        batch_frames=opts.batch_frames,
    )


def build_cutie(**overrides: Any) -> UpstreamModel:
    return build_upstream("cutie", **overrides)


def build_xmem(**overrides: Any) -> UpstreamModel:
    return build_upstream("xmem", **overrides)


def build_livos(**overrides: Any) -> UpstreamModel:
    return build_upstream("livos", **overrides)
