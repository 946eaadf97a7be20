# mirror-vip: `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
export PYTHONPATH := $(CURDIR)/python:$(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1

# --- the Pythons: 3.11 is the main one; 3.9 (the package's floor) and 3.13 (the newest) run the
# tests too. Found among pyenv's installed versions; a missing one is skipped and said so.
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
pyenv_python = $(lastword $(shell ls -d $(PYENV_ROOT)/versions/$(1).[0-9]*/bin/python$(1) 2>/dev/null | sort -V))
PYTHON ?= $(or $(call pyenv_python,3.11),python3)
PYTHON39 ?= $(call pyenv_python,3.9)
PYTHON313 ?= $(call pyenv_python,3.13)
PYTHON := $(PYTHON)
PYTHON39 := $(PYTHON39)
PYTHON313 := $(PYTHON313)

# --- the locked toolchain: requirements-dev.txt (and requirements.txt) are the inputs, one lock
# per Python holds exact versions and hashes, and every venv is installed from its lock alone.
# The stamp names the lock's hash: a changed lock rebuilds the venv from scratch.
LOCK_INPUTS := requirements.txt requirements-dev.txt requirements-floor.in
INPUTS_SHA := $(shell cat $(LOCK_INPUTS) | sha1sum | cut -c1-12)
VENV := .venv
VENV39 := .venv39
VENV313 := .venv313
LOCK := requirements-dev.py311.lock
LOCK39 := requirements-dev.py39.lock
LOCK313 := requirements-dev.py313.lock
stamp = $(1)/.installed-$(shell sha1sum $(2) 2>/dev/null | cut -c1-12)
STAMP := $(call stamp,$(VENV),$(LOCK))
STAMP39 := $(call stamp,$(VENV39),$(LOCK39))
STAMP313 := $(call stamp,$(VENV313),$(LOCK313))
PY := $(VENV)/bin/python

# pytest-xdist workers per suite. The three suites run side by side, so 2 each keeps the
# 2-core machine busy (measured: 2 and 3 each finish in the same time; README says more).
WORKERS ?= 2
PYTEST_ARGS ?=

.PHONY: help venv venvs lockcheck lock sysdeps lint typecheck pytest pytest39 pytest313 test demo bench clean

help:
	@echo "make demo   - the failover drill on a simulated VPC (falls back to in-process moto)"
	@echo "make test   - ruff, mypy, cfn-lint and pytest on 3.11; pytest on 3.9 and 3.13"
	@echo "make lock   - re-resolve requirements-dev.txt into the three lock files"
	@echo "make bench  - route-switch benchmarks into docs/benchmarks.md"

lockcheck:
	@for f in $(LOCK) $(LOCK39) $(LOCK313); do \
	  grep -qx "# inputs-sha1: $(INPUTS_SHA)" $$f || { \
	    echo "$$f was not made from the current $(LOCK_INPUTS): run 'make lock' and commit the locks"; exit 1; }; \
	done

# $(1) venv, $(2) interpreter, $(3) lock, $(4) stamp. rm -rf of a symlinked venv removes the link.
define venv_rule
$(4): $(3) | lockcheck
	rm -rf $(1)
	$(2) -m venv $(1)
	$(1)/bin/python -m pip install -qq --disable-pip-version-check --require-hashes -r $(3)
	touch $$@
endef
$(eval $(call venv_rule,$(VENV),$(PYTHON),$(LOCK),$(STAMP)))
$(if $(PYTHON39),$(eval $(call venv_rule,$(VENV39),$(PYTHON39),$(LOCK39),$(STAMP39))))
$(if $(PYTHON313),$(eval $(call venv_rule,$(VENV313),$(PYTHON313),$(LOCK313),$(STAMP313))))

venv: $(STAMP)
venvs: $(STAMP) $(if $(PYTHON39),$(STAMP39)) $(if $(PYTHON313),$(STAMP313))

# uv resolves for a Python version and platform without that interpreter; the hashes cover every
# file of each pinned release. uv itself is pinned here and installed into .venv-uv.
UV_VERSION := 0.13.9
UV := .venv-uv/bin/uv
# `make lock` takes the newest releases the inputs admit; `make lock UPGRADE=` keeps the locked
# versions wherever the inputs still admit them (e.g. after a one-line edit of a range).
UPGRADE ?= --upgrade
COMPILE = $(UV) pip compile -q $(UPGRADE) --generate-hashes --python-platform x86_64-unknown-linux-gnu \
  --custom-compile-command "make lock"
lock:
	@test -x $(UV) && $(UV) --version | grep -qw $(UV_VERSION) || { rm -rf .venv-uv; \
	  $(or $(PYTHON),python3) -m venv .venv-uv && .venv-uv/bin/pip install -q "uv==$(UV_VERSION)"; }
	$(COMPILE) --python-version 3.11 requirements-dev.txt -o $(LOCK)
	$(COMPILE) --python-version 3.13 requirements-dev.txt -o $(LOCK313)
	{ echo "# made by 'make lock' from requirements-floor.in: the floor the Python 3.9 lock pins"; \
	  $(UV) pip compile -q --no-header --no-annotate --python-version 3.9 \
	    --python-platform x86_64-unknown-linux-gnu --resolution lowest-direct requirements-floor.in \
	  | grep -E '^(boto3|botocore)=='; } > requirements-floor.txt
	$(COMPILE) --python-version 3.9 -c requirements-floor.txt requirements-dev.txt -o $(LOCK39)
	@for f in $(LOCK) $(LOCK39) $(LOCK313); do echo "# inputs-sha1: $(INPUTS_SHA)" >> $$f; done
	@grep -E '^(boto3|botocore|moto)==' $(LOCK39) | tr '\n' ' ' | sed 's/ \\//g; s/^/py39: /'; echo

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

PYTEST = -m pytest -p no:cacheprovider -n $(WORKERS) $(PYTEST_ARGS)

pytest: venv sysdeps
	$(PY) $(PYTEST)

ifeq ($(PYTHON39),)
pytest39:
	@echo "pytest39: skipped: no Python 3.9 under $(PYENV_ROOT)/versions (pyenv install 3.9)"
else
pytest39: $(STAMP39) sysdeps
	$(VENV39)/bin/python $(PYTEST)
endif

ifeq ($(PYTHON313),)
pytest313:
	@echo "pytest313: skipped: no Python 3.13 under $(PYENV_ROOT)/versions (pyenv install 3.13)"
else
pytest313: $(STAMP313) sysdeps
	$(VENV313)/bin/python $(PYTEST)
endif

# Everything at once, each target's output printed whole when it ends; -k: every suite reports.
test:
	@echo "lint, typecheck and the 3.11, 3.9 and 3.13 suites run side by side; each prints when it ends"
	@$(MAKE) --no-print-directory -k -j5 --output-sync=target lint typecheck pytest pytest39 pytest313

demo: venv sysdeps
	$(PY) -m sim.drill

bench: venv sysdeps
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(VENV39) $(VENV313) .venv-uv .pytest_cache .mypy_cache .ruff_cache
