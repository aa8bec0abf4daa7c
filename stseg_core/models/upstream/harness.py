"""Running the real upstream programs away from their images and released weights (tests, benchmarks, debugging
an adapter on a laptop with `device=cpu`): a patched copy of a pristine checkout, and random weights in each
program's own checkpoint format."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from stseg_core.errors import BackendError
from stseg_core.models.upstream.programs import CPU_SHIM, PROGRAMS, child_env


def write_random_weights(
    name: str, home: Path, dest: Path, *, torch_home: Path, python: str = sys.executable, timeout_s: float = 300
) -> Path:
    """Build `name`'s network class from the checkout at `home`, save its randomly initialised state dict to
    `dest`; the ImageNet ResNets it asks for are written (random too) under `torch_home`, where later runs of
    the program with `TORCH_HOME=torch_home` find them."""
    program = PROGRAMS[name]
    env = child_env(home, "cpu")
    env["TORCH_HOME"] = str(torch_home)
    dest.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [python, str(CPU_SHIM / "random_weights.py"), program.name, str(dest)],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise BackendError(
            f"{name}: building random weights in {home} failed with code {proc.returncode} ({tail[-300:]})"
        )
    return dest


def find_trees(repo_root: Path) -> Path | None:
    """The folder holding pristine checkouts `<Repo>/` of the pinned programs: the workspace's
    `../shared/upstream` beside the repository, else `build/upstream` (what `make upstream` clones)."""
    for folder in (repo_root.parent / "shared" / "upstream", repo_root / "build" / "upstream"):
        if all((folder / p.folder).is_dir() for p in PROGRAMS.values()):
            return folder
    return None


def prepare_checkout(name: str, pristine: Path, dest: Path) -> Path:
    """Copy the checkout at `pristine` (e.g. `../shared/upstream/Cutie`, read-only) to `dest` and apply the
    patches the program needs (the same files its image applies); returns `dest`."""
    program = PROGRAMS[name]
    shutil.copytree(pristine, dest, ignore=shutil.ignore_patterns(".git"))
    for patch in program.score_patches:
        proc = subprocess.run(
            ["patch", "-p1", "--forward", "--quiet", "-d", str(dest), "-i", str(patch)],
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise BackendError(f"{name}: {patch.name} does not apply to {pristine} ({proc.stdout.strip()[-200:]})")
    return dest
