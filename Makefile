# Two commands a newcomer needs: `make demo` and `make test`. Both set everything up themselves.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stseg-installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: venv system-deps upstream demo test test-slow lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c requirements/constraints.txt $(TORCH_PINS) setuptools wheel 2>&1 | sed "/is ignored/d"
	# sam2 ships only an sdist whose build needs torch: build it against the torch just installed.
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --no-build-isolation --no-deps -c requirements/constraints.txt sam2 2>&1 | sed "/is ignored/d"
	$(PY) -m pip install -q -c requirements/constraints.txt -e '.[ml,upstream,kube,report,dev]' 2>&1 | sed "/is ignored/d"
	$(PY) -c "import torch, sam2, stseg_core, stseg_cli, stseg_jobs"
	touch $(STAMP)

# Debian packages the tests use as real servers (Prometheus, Pushgateway, Chromium).
system-deps:
	@bash scripts/system-deps.sh

# The upstream programs the tests run for real (Cutie, XMem, LiVOS), at the commits that
# stseg_core/models/upstream/programs.py pins: the workspace's ../shared/upstream when it is there, else cloned
# with git into build/upstream/ (tests/conftest.py looks in both, in that order).
UPSTREAM_DIR ?= build/upstream
upstream: $(STAMP)
	if [ -d ../shared/upstream/Cutie ]; then exit 0; fi; \
	$(PY) -c 'from stseg_core.models.upstream.programs import PROGRAMS as P; [print(p.folder, p.url, p.commit) for p in P.values()]' \
	| while read -r folder url commit; do \
	  dest="$(UPSTREAM_DIR)/$$folder"; \
	  [ "$$(cat "$$dest/.upstream-commit" 2>/dev/null)" != "$$commit" ] || continue; \
	  rm -rf "$$dest" && git clone -q --filter=blob:none "$$url" "$$dest"; \
	  git -C "$$dest" checkout -q --detach "$$commit" && echo "$$commit" > "$$dest/.upstream-commit"; \
	done

demo: venv
	$(VENV)/bin/stseg demo --out demo-run

test: lint system-deps upstream
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

test-slow: venv system-deps
	$(PY) -m pytest -n 2 -q -m slow -o addopts="--import-mode=importlib" $(PYTEST_ARGS)

lint: venv  # CI runs it through `make test`; mypy's settings are in pyproject.toml ([tool.mypy])
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: venv
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-run .pytest_cache

# Container images (images/<name>/Dockerfile) built from the committed tree (a `git archive` of HEAD, so the
# image holds exactly the commit it is tagged with), tagged <REGISTRY>/stseg-<name>:<TAG> and :<git sha>.
REGISTRY ?= ghcr.io/stseg
TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGES ?= sam2 tmo cutie xmem livos fusion
# BUILDER: docker or buildah (default: docker when its daemon answers, else buildah; buildah builds in docker
# format, which keeps SHELL). BUILD_ARGS: extra flags, e.g. --pull=never --build-arg PYTHON_BASE=….
BUILDER ?=
BUILD_ARGS ?=
.PHONY: images
images:
	builder="$(BUILDER)"; [ -n "$$builder" ] || { docker info >/dev/null 2>&1 && builder=docker; } \
	  || builder=$$(command -v buildah) || { echo "make images needs a running docker or buildah" >&2; exit 1; }; \
	git diff --quiet HEAD || echo "note: uncommitted changes are not in the images (they build HEAD)" >&2; \
	sha=$$(git rev-parse --short=12 HEAD); ctx=$$(mktemp -d); trap 'rm -rf "$$ctx"' EXIT; \
	git archive HEAD | tar -x -C "$$ctx"; \
	fmt=$$([ "$${builder##*/}" = buildah ] && echo "--format docker"); \
	for name in $(IMAGES); do \
	  $$builder build $$fmt $(BUILD_ARGS) -f "$$ctx/images/$$name/Dockerfile" -t "$(REGISTRY)/stseg-$$name:$(TAG)" \
	    -t "$(REGISTRY)/stseg-$$name:$$sha" "$$ctx"; \
	done

# Security scan (checkov, in its own venv: it pins an old boto3) of what goes into a cluster: every k8s/ tree
# as kustomize renders it, and the Jobs the CLI renders (pipeline on GKE + Kueue, 8-GPU finetune on EKS).
# Skips live next to the object as `checkov.io/skipN: CKV_…=reason` annotations (the CLI's Jobs carry theirs
# from cli/backends/kubernetes.py CHECKOV_SKIPS).
SCAN_VENV ?= .venv-scan
SCAN_OUT ?= build/scan
SCAN_WEIGHTS := sam2=s3://bucket/weights/sam2.pt,cutie=s3://bucket/weights/cutie.pth,xmem=s3://bucket/weights/xmem.pth,livos=s3://bucket/weights/livos.pth
SCAN_SITE := --store s3://bucket/stseg --backend kubernetes --run scan --s3-secret stseg-s3 --dry-run -o yaml
# ---- the GPU check (bench/gpu_check.py; see README "GPU check") --------------------------------------------
GPU_WHEELS ?= gpu-wheels
.PHONY: gpu-wheels gpu-check
gpu-wheels: venv  # here, with network: every wheel the GPU machine lacks (it has Python 3.12 and PyTorch)
	$(PY) scripts/gpu_wheels.py $(GPU_WHEELS)
gpu-check:  # on the GPU machine, offline: install from $(GPU_WHEELS) (if present), measure, run -m gpu tests
	if [ -d $(GPU_WHEELS) ]; then python3 -m pip install -q --no-index --find-links $(GPU_WHEELS) "stseg[ml]" pytest; fi
	python3 bench/gpu_check.py

.PHONY: scan
$(SCAN_VENV)/.installed:
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install -q checkov==3.3.30 2>&1 | sed "/is ignored/d"
	touch $@
scan: $(SCAN_VENV)/.installed | $(STAMP)  # order-only: never reinstalls an existing venv
	rm -rf $(SCAN_OUT) && mkdir -p $(SCAN_OUT)/k8s $(SCAN_OUT)/jobs
	for tree in base monitoring overlays/gke-a100 overlays/eks-a100 overlays/kueue; do \
	  $(VENV)/bin/kubectl kustomize k8s/$$tree > $(SCAN_OUT)/k8s/$${tree//\//-}.yaml; done
	STSEG_CONFIG= $(VENV)/bin/stseg submit pipeline $(SCAN_SITE) --models sam2,tmo,cutie,xmem,livos,flowprop \
	  --shards 4 --data-root s3://bucket/mose/valid --node-pool gke --kueue-queue stseg-a100 \
	  --checkpoints $(SCAN_WEIGHTS) > $(SCAN_OUT)/jobs/pipeline.yaml
	STSEG_CONFIG= $(VENV)/bin/stseg submit finetune $(SCAN_SITE) --model sam2 --gpus 8 \
	  --data-root s3://bucket/mose/train --node-pool eks --option init=s3://bucket/weights/sam2.pt \
	  > $(SCAN_OUT)/jobs/finetune.yaml
	cp $(SCAN_OUT)/k8s/base.yaml $(SCAN_OUT)/jobs/  # the NetworkPolicy that covers the Jobs' pods (CKV2_K8S_6)
	BC_SKIP_MAPPING=TRUE $(SCAN_VENV)/bin/checkov --skip-download --quiet --compact --framework kubernetes \
	  -d $(SCAN_OUT)/k8s
	BC_SKIP_MAPPING=TRUE $(SCAN_VENV)/bin/checkov --skip-download --quiet --compact --framework kubernetes \
	  -d $(SCAN_OUT)/jobs
