# AutoSRE: `make run` and `make test` do all the set-up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBIAN_TEST_PACKAGES := prometheus prometheus-node-exporter prometheus-alertmanager nginx stress-ng \
	chromium chromium-driver openssh-server vagrant
DEBIAN_RUN_PACKAGES := nginx

.PHONY: setup run test test-parallel lint unit bench system-packages clean lab-up lab-down

# Compiled modules and pytest's rewritten tests are cached in __pycache__ (git-ignored):
# without the cache every process (each test worker, each CLI call, the engine) would
# compile what it imports again.
unexport PYTHONDONTWRITEBYTECODE
# The chaos scenarios, which read the whole machine's CPU, all live here (marked serial).
SERIAL_TESTS := tests/integration

# A current pip: it installs the pinned wheels faster than Python 3.11's own (23.2).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip

# --no-compile: modules are compiled when first imported and cached then (see the
# unexport above), so only what runs is compiled, not every module of every package.
$(VENV)/.setup-stamp: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile --no-deps -e .
	touch $@

# One pip call for both sets (requirements-dev.txt includes requirements.txt): a fresh
# clone resolves once.
$(VENV)/.dev-stamp: $(BIN)/python requirements.txt requirements-dev.txt pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-compile --no-deps -e .
	touch $(VENV)/.setup-stamp $@

# The pinned packages as wheels, for tests/deploy/test_image.py: it runs the Dockerfile's
# pip installs for real, offline (a test sends traffic to 127.0.0.1 only).
$(VENV)/wheelhouse/.stamp: $(BIN)/python requirements.txt pyproject.toml
	$(BIN)/pip wheel --quiet --disable-pip-version-check -r requirements.txt "setuptools>=68" wheel \
		-w $(VENV)/wheelhouse
	touch $@

## setup: create .venv and install the project (editable) with pinned dependencies
setup: $(VENV)/.setup-stamp

# More workers than cores: the tests spend much of their time waiting on Ansible,
# Chromium and servers.
TEST_WORKERS ?= 3
WEB_HOST ?= 127.0.0.1
WEB_PORT ?= 8080

## run: engine + web UI on embedded defaults (SQLite, this host via psutil, rules planner)
run: setup
	@if [ "$$(id -u)" = 0 ] && ! command -v nginx >/dev/null; then \
		$(MAKE) --no-print-directory system-packages PACKAGES="$(DEBIAN_RUN_PACKAGES)"; fi
	@$(BIN)/autosre db upgrade
	@if ! $(BIN)/autosre users list --json | grep -q '"name"'; then \
		echo "no users yet: create one with  $(BIN)/autosre users add admin --role admin"; fi
	@$(BIN)/autosre web --host $(WEB_HOST) --port $(WEB_PORT) & web=$$!; \
	trap 'kill $$web 2>/dev/null; wait $$web 2>/dev/null' EXIT; \
	$(BIN)/autosre run

## system-packages: install Debian packages (root only; skipped when all are present)
system-packages:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "Debian packages present:$(PACKAGES)"; \
	elif [ "$$(id -u)" != 0 ]; then echo "not root: cannot install$$missing (tests needing them skip)"; \
	else echo "installing$$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

## lint: ruff, ruff format, mypy (strict for engine/ and webui/), ansible-lint
lint: $(VENV)/.dev-stamp
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/ansible-lint --offline -q playbooks/

## test: install what the tests need, lint, and run the whole suite
test: $(VENV)/.dev-stamp $(VENV)/wheelhouse/.stamp
	@$(MAKE) --no-print-directory system-packages PACKAGES="$(DEBIAN_TEST_PACKAGES)"
	@# The linters and the parallel tests share the machine; the chaos scenarios then run
	@# alone: they read the whole host's CPU, and anything beside them would make it lie.
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint test-parallel
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10 -m serial $(SERIAL_TESTS)

test-parallel: $(VENV)/.dev-stamp
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=25 -n $(TEST_WORKERS) --dist loadscope -m "not serial"

## bench: MTTR vs its floor, time to act beside Monit, planner overhead, web server times, fleet batching, inventory waves, 10,000-host ticks
bench: $(VENV)/.dev-stamp
	@$(MAKE) --no-print-directory system-packages PACKAGES="$(DEBIAN_TEST_PACKAGES)"
	$(BIN)/python -m bench.mttr
	$(BIN)/python -m bench.peers
	$(BIN)/python -m bench.planner
	$(BIN)/python -m bench.web
	$(BIN)/python -m bench.fleet
	$(BIN)/python -m bench.waves
	$(BIN)/python -m bench.scale

## lab-up: a lab of LAB_HOSTS hosts (own namespace, cgroup, nginx, sshd) with Prometheus, in .lab/
LAB_HOSTS ?= 4
LAB_DIR ?= .lab
lab-up: $(VENV)/.dev-stamp
	@$(MAKE) --no-print-directory system-packages PACKAGES="prometheus nginx openssh-server stress-ng"
	$(BIN)/python -m tests.lab up --hosts $(LAB_HOSTS) --dir $(LAB_DIR)

## lab-down: stop every lab process, remove its cgroups and the files in .lab/
lab-down: $(VENV)/.dev-stamp
	$(BIN)/python -m tests.lab down --dir $(LAB_DIR)

clean:
	rm -rf $(VENV) data test-output .mypy_cache .ruff_cache
