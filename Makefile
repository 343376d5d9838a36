# Two commands do everything on a fresh machine (Python >= 3.10):
#   make lab    set up .venv and run the whole lab
#   make test   set up .venv and run the linters and the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed only when $(PYTHON) lacks it, so a CUDA build you already have is kept: then, and only
# then, the venv sees the system's packages. Otherwise it is isolated: a system package that is merely present
# costs time (torchmetrics imports SciPy whenever it can, 1.4 s of every run here). A CPU-only machine may want
# TORCH_INDEX=https://download.pytorch.org/whl/cpu to avoid PyPI's multi-GB CUDA build.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
ARGS ?=

.PHONY: lab test lint format tensorboard benchmark clean

$(VENV)/.ready: pyproject.toml
	if $(PYTHON) -c "import torch" 2>/dev/null; then \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV) && \
		$(BIN)/python -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"; \
	fi
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

lab: $(VENV)/.ready
	$(BIN)/python scripts/train.py $(ARGS)

test: $(VENV)/.ready lint
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.ready
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.ready
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

benchmark: $(VENV)/.ready
	$(BIN)/python scripts/benchmark.py $(ARGS)

tensorboard: $(VENV)/.ready
	$(BIN)/tensorboard --logdir lightning_logs

clean:
	rm -rf $(VENV) lightning_logs reports benchmark.json .pytest_cache .ruff_cache *.egg-info
