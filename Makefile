# Two commands a newcomer needs: `make demo` and `make test`. Both set everything up themselves.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stseg-installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: venv system-deps demo test test-slow lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c requirements/constraints.txt $(TORCH_PINS) setuptools wheel 2>&1 | sed "/is ignored/d"
	# sam2 ships only an sdist whose build needs torch: build it against the torch just installed.
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --no-build-isolation --no-deps -c requirements/constraints.txt sam2 2>&1 | sed "/is ignored/d"
	$(PY) -m pip install -q -c requirements/constraints.txt -e '.[ml,kube,report,dev]' 2>&1 | sed "/is ignored/d"
	$(PY) -c "import torch, sam2, stseg_core, stseg_cli, stseg_jobs"
	touch $(STAMP)

# Debian packages the tests use as real servers (Prometheus, Pushgateway, Chromium).
system-deps:
	@bash scripts/system-deps.sh

demo: venv
	$(VENV)/bin/stseg demo --out demo-run

test: venv system-deps
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

test-slow: venv system-deps
	$(PY) -m pytest -n 2 -q -m slow -o addopts="--import-mode=importlib" $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .

bench: venv
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) demo-run .pytest_cache

# Container images (images/<name>/Dockerfile) built from the committed tree (a `git archive` of HEAD, so the
# image holds exactly the commit it is tagged with), tagged <REGISTRY>/stseg-<name>:<TAG> and :<git sha>.
REGISTRY ?= ghcr.io/stseg
TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGES ?= sam2 tmo cutie xmem livos fusion
.PHONY: images
images:
	builder=$$(command -v docker || command -v buildah) || { echo "make images needs docker or buildah" >&2; exit 1; }; \
	git diff --quiet HEAD || echo "note: uncommitted changes are not in the images (they build HEAD)" >&2; \
	sha=$$(git rev-parse --short=12 HEAD); ctx=$$(mktemp -d); trap 'rm -rf "$$ctx"' EXIT; \
	git archive HEAD | tar -x -C "$$ctx"; \
	for name in $(IMAGES); do \
	  $$builder build -f "$$ctx/images/$$name/Dockerfile" -t "$(REGISTRY)/stseg-$$name:$(TAG)" \
	    -t "$(REGISTRY)/stseg-$$name:$$sha" "$$ctx"; \
	done
