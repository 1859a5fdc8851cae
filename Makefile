# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# llama-cpp-python compiles from source (~7 min on 2 cores, then pip's wheel cache has it).
# A portable AVX2 build: the native one enables AMX, which faults inside some VMs.
export CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF

.PHONY: venv run test test-fast lint format bench dashboards constraints clean

$(STAMP): pyproject.toml constraints.txt $(wildcard packaging/en_core_web_sm/*.toml packaging/en_core_web_sm/*/*.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip==25.2"
	# CPU torch first, from the wheel on disk: anything else pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,traces]" ./packaging/en_core_web_sm
	# unstructured imports unstructured-inference even for fast PDF parsing; its own timm
	# dependency drags in a torchvision that cannot load beside the CPU torch, so install it
	# alone. Only the `hi_res` strategy (hub models, unusable offline) needs what is skipped.
	$(BIN)/pip install -q --no-deps "unstructured-inference==1.6.14"
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/ragctl ingest sample_corpus
	$(BIN)/ragctl warehouse load-sample
	$(BIN)/ragctl warehouse build
	$(BIN)/ragctl dev

test: venv
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -m "not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m rag_ops --check
	@! grep -rnE "^\s*(from|import) dagster\._" rag_core rag_assets rag_serving || \
		{ echo "private dagster._ imports (above): use the public API"; exit 1; }

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/freshness.py
	$(BIN)/python bench/cache.py
	$(BIN)/python bench/load.py

dashboards: venv  ## regenerate dashboards/ (rules, alerts, Grafana) from dashboards/slos.yaml
	$(BIN)/python -m rag_ops

constraints: venv
	{ head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -viE '^(en_core_web_sm|unstructured-inference)[= @]' | sed 's/+cpu$$//'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .rag
