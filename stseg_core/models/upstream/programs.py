"""The three upstream programs: where they come from (the one place that names the pinned commits), how each is
started, and where each writes its files.

Facts read from the programs at these commits:

- Cutie  (hkchengrex/Cutie @ ec5cdd4): `cutie/eval_vos.py` (hydra). Masks in `<out>/Annotations/<video>/`,
  with `save_scores=True` also `<out>/Scores/<video>/<stem>.hkl` (uint8 (K+1)×H×W, channel 0 background,
  channel k = temporary id k, given in ascending object-id order) and, on the last frame, `backward.hkl`.
  At this commit that last line unpacks each (temporary id, object) pair the wrong way round, raises in the
  saver thread and the program then waits forever: `cutie-save-scores.patch` (beside this file) fixes it, and
  both the cutie image and the test harness apply that one file; then `backward.hkl` = {object id: channel}.
- XMem   (hkchengrex/XMem @ f3b841d): `eval.py` (argparse). Masks in `<out>/<video>/`, but in
  `<out>/Annotations/<video>/` with `--save_scores`; scores in `<out>/Scores/<video>/` with `backward.hkl` =
  {object id: channel} (its channel order follows a Python set, not always ascending ids).
- LiVOS  (uncbiag/LiVOS @ 8c26cb0): `livos/eval.py` (hydra). Masks only, in `<out>/Annotations/<video>/`.

All three glob `<images>/<video>/` for frames (sorted file names, decoded with PIL), read the first mask of
`<masks>/<video>/`, process the videos in sorted name order and write each frame's mask as
`<frame file name minus its 4-character extension>.png`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stseg_core.errors import BadInputError

HERE = Path(__file__).resolve().parent
CPU_SHIM = HERE / "cpu"
"""Holds the `sitecustomize.py` that gives the programs a CPU mode (first on the child's PYTHONPATH)."""
CUTIE_SCORES_PATCH = HERE / "cutie-save-scores.patch"


@dataclass(frozen=True)
class UpstreamProgram:
    """What differs between the three upstream programs."""

    name: str
    repo: str
    """GitHub owner/name."""
    commit: str
    """The pinned commit: the images, `make upstream` and the tests use exactly this one."""
    folder: str
    """Checkout folder name (`/opt/<folder>` in the image, `../shared/upstream/<folder>` beside the repo)."""
    script: str
    score_format: str | None
    """"cutie", "xmem" or None (masks only)."""
    default_size: int
    score_patches: tuple[Path, ...] = ()
    """Patch files (`patch -p1` in the checkout) the program needs to write scores; its image applies them."""

    @property
    def env_prefix(self) -> str:
        return f"STSEG_{self.name.upper()}"

    @property
    def default_home(self) -> str:
        return f"/opt/{self.folder}"

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}.git"

    def masks_dir(self, out: Path, video: str, scores: bool) -> Path:
        """Where the program writes `video`'s masks under its output folder `out`."""
        if self.name == "xmem" and not scores:  # eval.py: Annotations/ only with --save_scores (or YouTube-VOS)
            return out / video
        return out / "Annotations" / video

    def writes_scores(self, scores: bool) -> bool:
        return scores and self.score_format is not None


PROGRAMS = {
    "cutie": UpstreamProgram(
        "cutie",
        "hkchengrex/Cutie",
        "ec5cdd4cf16f75c73ad785a2f96fb97dbad4125a",
        "Cutie",
        "cutie/eval_vos.py",
        "cutie",
        480,
        score_patches=(CUTIE_SCORES_PATCH,),
    ),
    "xmem": UpstreamProgram(
        "xmem", "hkchengrex/XMem", "f3b841d50df058910bbf690229ddc15fb1aef7d6", "XMem", "eval.py", "xmem", 480
    ),
    "livos": UpstreamProgram(
        "livos", "uncbiag/LiVOS", "8c26cb03f570942a0c9a26f5bf7a8d378fc9ac60", "LiVOS", "livos/eval.py", None, 480
    ),
}


def command(
    program: UpstreamProgram,
    *,
    python: str,
    home: Path,
    data: Path,
    out: Path,
    weights: str,
    size: int,
    scores: bool,
    work: Path,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """The argv that runs `program` on the generic layout at `data` (JPEGImages/, Annotations/), writing to `out`."""
    script = str(home / program.script)
    if program.name == "xmem":
        argv = [
            python,
            script,
            "--model",
            weights,
            "--dataset",
            "G",
            "--generic_path",
            str(data),
            "--output",
            str(out),
            "--size",
            str(size),
        ]
        if scores:
            argv.append("--save_scores")
    else:
        argv = [
            python,
            script,
            "dataset=generic",
            f"image_directory={data / 'JPEGImages'}",
            f"mask_directory={data / 'Annotations'}",
            f"output_dir={out}",
            f"weights={weights}",
            f"size={size}",
            "exp_id=stseg",
            f"hydra.run.dir={work / 'hydra'}",
        ]
        if program.name == "cutie":
            argv.append(f"save_scores={scores}")
    return argv + list(extra)


def child_env(home: Path, device: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The program's environment: its checkout importable (`cutie.…`, `livos.…`), and with device=cpu the CPU
    shim's `sitecustomize` ahead of everything, for this child process only."""
    env = dict(os.environ if base is None else base)
    paths = [str(home)] + ([p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if device == "cpu":
        paths.insert(0, str(CPU_SHIM))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def removed_lines(patch: Path) -> dict[str, list[str]]:
    """{file: lines the patch removes} of a unified diff (paths without their `a/` prefix)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in patch.read_text().splitlines():
        if line.startswith("--- "):
            current = line[4:].split("\t")[0].removeprefix("a/")
            out[current] = []
        elif line.startswith("-") and current is not None:
            out[current].append(line[1:])
    return out


def check_patched(program: UpstreamProgram, home: Path) -> None:
    """Fail before launching when a patch the program needs for scores is not applied to the checkout at `home`
    (a line the patch removes is still there)."""
    for patch in program.score_patches:
        for rel, lines in removed_lines(patch).items():
            target = home / rel
            text = target.read_text(errors="replace") if target.is_file() else ""
            if not target.is_file() or any(ln.strip() and ln in text for ln in lines):
                raise BadInputError(
                    f"{program.name}: {target} lacks the fix in {patch.name} (apply it with "
                    f"`patch -p1 -d {home} < {patch}`, as the {program.name} image does)"
                )
