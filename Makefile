# The two quick-start commands: `make demo` (the main job) and `make test`.
# Each creates .venv and installs what it needs on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch/torchvision first and pinned: the versions this project is tested with (override
# TORCH_SPEC for another CUDA/CPU build, e.g. TORCH_SPEC="torch torchvision").
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) tools/pipeline.py recipes/demo.yaml

test: $(VENV)/.installed
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) bench/random_walk.py
	$(PY) bench/cam_export.py

clean:
	rm -rf runs/demo
