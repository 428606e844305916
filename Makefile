# ecsrole: `make dev` runs the whole stack locally; `make test` runs every test on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --user --quiet 'uv==0.13.9'

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

.PHONY: install
install: .venv/.synced ## create .venv with the operator and the test tools (from uv.lock)

.PHONY: controlplane
controlplane: ## build etcd, kube-apiserver and kubectl from the pinned Go modules (cached)
	@bash hack/controlplane/build.sh

.PHONY: dev
dev: install controlplane ## run control plane + moto + operator in the foreground; Ctrl-C stops all
	.venv/bin/python -m tests.stack.dev run

.PHONY: dev-up
dev-up: install controlplane ## the same, detached; returns when the operator is ready
	.venv/bin/python -m tests.stack.dev up

.PHONY: dev-down
dev-down: ## stop everything dev/dev-up started
	@if [ -x .venv/bin/python ]; then .venv/bin/python -m tests.stack.dev down; fi

.PHONY: lint
lint: install ## ruff and mypy
	.venv/bin/ruff check operator tests bench
	.venv/bin/ruff format --check operator tests bench
	.venv/bin/mypy

.PHONY: test-unit
test-unit: install ## pure unit tests only
	.venv/bin/pytest -m unit $(PYTEST_ARGS)

.PHONY: test
test: install controlplane lint ## lint, unit and e2e tests against a real API server and moto
	.venv/bin/pytest $(PYTEST_ARGS)
