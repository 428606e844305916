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

.PHONY: helm
helm: ## build helm from its pinned Go module (hack/helm/go.mod; cached)
	@bash hack/helm/build.sh

.PHONY: health
health: ## build ecsrole-health (kstatus, Flux's CEL health checks, gopher-lua) from hack/health/go.mod (cached)
	@bash hack/health/build.sh >/dev/null

.PHONY: manifests
manifests: install ## regenerate the chart's copies of the CRD and monitoring files, and the kustomize PrometheusRule
	.venv/bin/python -m tests.stack.manifests write

.PHONY: manifests-check
manifests-check: install helm ## fail when a derived manifest is stale; hadolint, helm lint
	.venv/bin/python -m tests.stack.manifests check
	.venv/bin/hadolint --failure-threshold=style Dockerfile
	@for values in charts/ecsrole/ci/*-values.yaml; do \
	  "$$(bash hack/helm/build.sh)/helm" lint --strict charts/ecsrole --values "$$values" || exit 1; \
	done

.PHONY: dev
dev: install controlplane helm ## run control plane + moto + operator in the foreground; Ctrl-C stops all
	.venv/bin/python -m tests.stack.dev run

.PHONY: dev-up
dev-up: install controlplane helm ## the same, detached; returns when the operator is ready
	.venv/bin/python -m tests.stack.dev up

.PHONY: dev-down
dev-down: ## stop everything dev/dev-up started
	@if [ -x .venv/bin/python ]; then .venv/bin/python -m tests.stack.dev down; fi

.PHONY: lint
lint: install ## ruff, mypy and the import contracts (pyproject.toml [tool.importlinter])
	.venv/bin/ruff check operator tests bench
	.venv/bin/ruff format --check operator tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache

.PHONY: test-unit
test-unit: install ## pure unit tests only
	.venv/bin/pytest -m unit $(PYTEST_ARGS)

.PHONY: test
test: install controlplane helm health lint ## lint, unit and e2e tests against a real API server and moto
	.venv/bin/pytest $(PYTEST_ARGS)

.PHONY: node
node: ## build kubelet, kube-controller-manager, kube-scheduler from the control plane's pin (cached)
	@bash hack/node/build.sh

.PHONY: image
image: ## build the operator image from the Dockerfile with buildah on local Debian bases (root; cached)
	@bash hack/image/build.sh

.PHONY: test-cluster
test-cluster: install controlplane helm node image ## root: the image on a real single-node cluster (containerd, kubelet), installed with Helm and kustomize
	.venv/bin/pytest -m cluster tests/cluster $(PYTEST_ARGS)

.PHONY: chaos
chaos: install controlplane helm ## reliability scenarios under faults (at most 15 min): bench/results/chaos-*.json, docs/reliability.md
	.venv/bin/pytest -m chaos tests/chaos $(PYTEST_ARGS)

.PHONY: bench
bench: install controlplane ## benchmarks (about 35 min; BENCH_PEER=0 skips the ACK side-by-side, about 30 min more): bench/results/*.json, docs/performance.md and .png
	$(UV) sync --frozen --group bench
	.venv/bin/python -m bench.run
	.venv/bin/python -m bench.fleet
	@if [ "$${BENCH_PEER:-1}" != "0" ]; then .venv/bin/python -m bench.peer; fi
	.venv/bin/python -m bench.report
