# mirror-vip: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
export PYTHONPATH := $(CURDIR)/python:$(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv sysdeps lint typecheck pytest test demo bench clean

help:
	@echo "make demo   - the failover drill on a simulated VPC (falls back to in-process moto)"
	@echo "make test   - ruff, mypy, cfn-lint and pytest"
	@echo "make bench  - route-switch benchmarks into docs/benchmarks.md"

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# Debian packages the tests use: iproute2 (`ip netns`, the simulated VPC), netplan.io,
# network-manager and shellcheck (the host snippets in docs/host are checked with them).
# Installed when missing and we are root; without them those tests skip and say why.
SYSDEPS := iproute2 netplan.io network-manager shellcheck
sysdeps:
	@missing=""; for p in $(SYSDEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "note: could not install$$missing; the tests that need them will skip"; \
	  else echo "note:$$missing missing and not root: the tests that need them will skip"; fi; \
	fi

lint: venv
	$(VENV)/bin/ruff check python tests sim $(wildcard bench)
	$(VENV)/bin/ruff format --check python tests sim $(wildcard bench)

typecheck: venv
	$(VENV)/bin/mypy

pytest: venv sysdeps
	$(PY) -m pytest

test: lint typecheck pytest

demo: venv sysdeps
	$(PY) -m sim.drill

bench: venv sysdeps
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
