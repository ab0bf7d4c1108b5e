# Bastion — the two commands a new user needs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= var
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
PIP_INSTALL := $(PIP) install --quiet --require-hashes --no-deps
# `make run` as root (a throw-away VM or container) passes --allow-root to
# `bastion serve`, which then says so on every start.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: run init test test-postgres lint audit lock clean help bench

help:
	@echo "make run    set up .venv, initialise ./$(DATA_DIR) on first run, serve https://127.0.0.1:8443"
	@echo "make test   run the whole test suite (what CI runs)"
	@echo "make lint   ruff;  make audit  bandit + pip-audit;  make lock  re-pin dependencies"

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Bastion needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	@touch $@

# Installs exactly the pinned, hash-checked versions (T39), then Bastion itself.
$(VENV)/.base-installed: $(VENV)/.python-ok requirements/base.lock pyproject.toml
	$(PIP_INSTALL) -r requirements/base.lock
	$(PIP) install --quiet --no-deps --no-build-isolation --editable .
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.base-installed requirements/dev.lock
	$(PIP_INSTALL) -r requirements/dev.lock
	@touch $@

# Idempotent: creates what is missing (first run), applies new migrations
# after an upgrade, and otherwise changes nothing.
init: $(VENV)/.base-installed
	$(BIN)/bastion --data-dir "$(DATA_DIR)" init

run: init
	$(BIN)/bastion --data-dir "$(DATA_DIR)" serve $(ALLOW_ROOT)

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory test-postgres

# The audit chain, its triggers, accounts, access, the explorer's change history
# (JSON lookups in audit events) and the console's drafts, history and saved queries
# again, and the sign-in tests (MFA, sessions, e-mail links, legacy hashes), with PostgreSQL as the metadata database
# (the production setup). Skips with a reason when no
# server is reachable, except under CI where that is a failure.
test-postgres: $(VENV)/.dev-installed
	@if $(BIN)/python -m tests.services postgresql; then \
	  BASTION_TEST_METADATA_DB=postgresql $(BIN)/python -m pytest -m "not live" tests/test_audit.py \
	    tests/test_accounts.py tests/test_access_policy.py tests/test_access_roles.py \
	    tests/test_explorer_changes.py tests/test_explorer_edit_pages.py tests/test_console_pages.py tests/test_jobs.py \
	    tests/test_T16_mfa.py tests/test_T10_sessions.py tests/test_T17_email_links.py tests/test_T12_legacy_hashes.py; \
	else echo "SKIPPED PostgreSQL metadata tests: no PostgreSQL server on 127.0.0.1:5432"; \
	  test -z "$$CI"; fi

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check bastion tests

# T39: static security analysis and known-vulnerability check of the lock file.
audit: $(VENV)/.dev-installed
	$(BIN)/bandit --quiet -c pyproject.toml -r bastion --severity-level medium
	@$(BIN)/python -m tests.services pypi-audit || { echo "dependency audit skipped: no vulnerability service reachable"; exit 0; }; \
	$(BIN)/pip-audit --strict --disable-pip --no-deps -r requirements/base.lock

# Bastion against Datasette and sqlite-web on one 5,000,000-row SQLite file; writes bench/RESULTS.md.
# Takes minutes and measures this machine, so it is not part of `make test` or CI. See bench/README.md;
# `make bench BENCH_ARGS=--quick` for the 200,000-row variant.
bench: $(VENV)/.base-installed
	PYTHON=$(PYTHON) bench/run $(BENCH_ARGS)

lock:
	$(PIP) install --quiet pip-tools
	cd requirements && CUSTOM_COMPILE_COMMAND="make lock" ../$(BIN)/pip-compile --quiet --generate-hashes \
	  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o base.lock base.in
	cd requirements && CUSTOM_COMPILE_COMMAND="make lock" ../$(BIN)/pip-compile --quiet --generate-hashes \
	  --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links -o dev.lock dev.in

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
