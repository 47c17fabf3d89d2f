# Two entry points (see README):
#   make run    set everything up, then run the main job (a short continual Atari run on CPU)
#   make test   set everything up, then run the tests (make test-fast: all but the slow ones)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
# e.g. https://download.pytorch.org/whl/cpu: where PyPI would give a multi-GB CUDA build
TORCH_INDEX ?=
ARGS ?=

.PHONY: setup run test test-fast bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e ".[test,study]"
	touch $@

run: setup
	$(BIN)/python train.py atari $(ARGS)

test: setup
	$(BIN)/python -m pytest -p no:cacheprovider

# everything but the end-to-end runs (about a minute on 2 cores)
test-fast: setup
	$(BIN)/python -m pytest -p no:cacheprovider -m "not slow"

bench: setup
	$(BIN)/python bench/agscl_after_step.py
	$(BIN)/python bench/atari_sps.py

clean:
	rm -rf $(VENV) runs
