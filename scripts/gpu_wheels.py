"""Download what `make gpu-check` needs on a bare CUDA machine that has Python 3.12 and PyTorch but no network.

Resolves stseg[ml] + pytest for CPython 3.12 on manylinux x86_64 with pip's own resolver (a dry run that writes
a report), drops what the PyTorch install already brings (torch, triton, nvidia-*, and their pure-Python
dependencies are left in: harmless), downloads the rest without dependencies, and builds wheels of this
checkout and of the source-only packages (sam2 without its optional CUDA extension, antlr4's runtime, iopath).
On the GPU machine: `pip install --no-index --find-links <dir> stseg[ml] pytest`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET = ["--python-version", "3.12", "--platform", "manylinux2014_x86_64", "--implementation", "cp"]
PREINSTALLED = ("torch", "triton", "nvidia-", "cuda-")  # what the PyTorch install on the GPU machine has


def main(out: str) -> None:
    root = Path(__file__).resolve().parents[1]
    dest = Path(out).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    env = {**os.environ, "SAM2_BUILD_CUDA": "0"}
    # this checkout and the sdist-only packages, as wheels (pure Python)
    subprocess.run(
        [
            *pip,
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(dest),
            str(root),
            "sam2==1.1.0",
            "antlr4-python3-runtime==4.9.3",
            "iopath==0.1.10",
        ],
        check=True,
        env=env,
    )
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [
                *pip,
                "install",
                "-q",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                "--target",
                tmp,
                *TARGET,
                "--only-binary=:all:",
                "--find-links",
                str(dest),
                f"stseg[ml] @ file://{root}",
                "pytest",
            ],
            check=True,
            env=env,
        )
        names = [
            item["metadata"]["name"] + "==" + item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]
        ]
    wanted = [
        n
        for n in names
        if not n.lower().startswith(PREINSTALLED)
        and not n.lower().startswith(("stseg==", "sam2==", "antlr4-python3-runtime==", "iopath=="))
    ]
    subprocess.run(
        [*pip, "download", "-q", "--no-deps", "-d", str(dest), *TARGET, "--only-binary=:all:", *wanted], check=True
    )
    print(f"gpu-wheels: {len(list(dest.glob('*.whl')))} wheels in {dest}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu-wheels")
