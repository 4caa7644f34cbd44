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

.PHONY: help setup run test lint fmt bench up down clean

help:
	@echo "make run    - backend :8080 + plugin servers + harness gateway :8000 (Ctrl-C stops all)"
	@echo "make test   - the whole test suite (Postgres/Redis tests need the real services)"
	@echo "make lint   - ruff"
	@echo "make bench  - benchmarks (ratios side by side in one run)"
	@echo "make up / make down - the docker compose stack with real Kong"

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'

$(VENV)/.synced: $(UV) uv.lock pyproject.toml kong/harness/pyproject.toml kong-plugins/pyproject.toml backend/pyproject.toml
	$(UV) sync --locked --all-packages
	@touch $@

setup: $(VENV)/.synced

run: setup
	@scripts/run-local

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

fmt: setup
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(VENV)/bin/python -m tests.bench.harness_overhead
	$(VENV)/bin/python -m tests.bench.backend_latency
	$(VENV)/bin/python -m tests.bench.edge_jwt_cpu
	$(VENV)/bin/python -m tests.bench.rate_limit
	$(VENV)/bin/python -m tests.bench.edge_trace_cpu

up: setup
	@test -f docker-compose.yml || { echo "docker-compose.yml arrives with the compose issue"; exit 1; }
	@! grep -qs 'placeholder-not-a-secret' .env || { echo "make up: .env still holds .env.example's placeholder secrets; set real ones"; exit 1; }
	scripts/dev-certs   # TLS between Kong and the backend (var/certs, kept when valid)
	mkdir -p var/prometheus   # Prometheus's data, owned by you like the keys it reads
	scripts/gateway-keys  # Kong's assertion key (var/keys) + its JWKS for the backend, when missing
	HOST_UID=$$(id -u) HOST_GID=$$(id -g) docker compose up -d --build

down:
	@test -f docker-compose.yml || { echo "docker-compose.yml arrives with the compose issue"; exit 1; }
	docker compose down

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .ruff_cache
