# ThreatLens: `make run` serves the embedded default, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Where `make run` receives syslog, UDP and TCP (SYSLOG_PORT=0 turns it off).
SYSLOG_PORT ?= 5514
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
# Two workers: the suite is mostly waiting on sockets and databases.
PYTEST_ARGS ?= -n 2

.PHONY: run test install lint check pytest pytest-services pytest-plain migrate bench test-ui clean constraints

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py ensure_admin
	@echo "ThreatLens is starting on http://$(HOST):$(PORT)/ (admin: http://$(HOST):$(PORT)/admin/)"
	@if [ "$(SYSLOG_PORT)" != 0 ]; then \
		echo "Syslog in: UDP and TCP on $${SYSLOG_BIND:-127.0.0.1}:$(SYSLOG_PORT) (README: Sending logs)"; fi
	SERVE_HOST=$(HOST) SYSLOG_UDP_PORT=$${SYSLOG_UDP_PORT:-$(SYSLOG_PORT)} SYSLOG_TCP_PORT=$${SYSLOG_TCP_PORT:-$(SYSLOG_PORT)} \
		$(BIN)/uvicorn --host $(HOST) --port $(PORT) --no-access-log --ws-per-message-deflate false threatlens.asgi:application

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: install
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

# First pass: the embedded default (SQLite, in-memory channel layer, local cache).
pytest: install
	env -u DATABASE_URL -u REDIS_URL $(BIN)/pytest -q $(PYTEST_ARGS)

# Second pass: real PostgreSQL and Redis. Each test runs in an event loop of its own, so
# worker threads that touched the database end with every test; psycopg's pool counts a
# connection whose thread ended without giving it back as in use for good. A server reuses
# its threads; a test process does not, hence a larger pool here. Skipped (with a line
# saying so) when they are not reachable, except under CI=true, where that is a failure.
pytest-services: install
	@if $(BIN)/python -m tests.services_reachable "$(TEST_DATABASE_URL)" "$(TEST_REDIS_URL)"; then \
		DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" DATABASE_POOL_SIZE=60 \
			$(BIN)/pytest -q $(PYTEST_ARGS); \
	elif [ "$$CI" = "true" ]; then \
		echo "PostgreSQL or Redis is not reachable, and CI=true: failing."; exit 1; \
	else \
		echo "SKIPPED: the PostgreSQL and Redis pass (not reachable at $(TEST_DATABASE_URL) and $(TEST_REDIS_URL))."; \
	fi

# Third pass: the whole suite with every fast path off (the server fast paths of
# realtime/servers/, docs/servers.md, and the publish fast path), embedded default: how
# the server works when a library is not at its pinned version or a fast path is off.
pytest-plain: install
	env -u DATABASE_URL -u REDIS_URL REALTIME_FAST_PATHS=none PUBLISH_FAST_PATH=false \
		$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint check pytest pytest-services pytest-plain

bench: install
	$(BIN)/python -m bench.run

test-ui: install
	$(BIN)/pytest tests/ui -q $(PYTEST_ARGS)

# Re-pin every installed package at its current version (after adding a dependency).
constraints: install
	{ sed -n '/^#/p' constraints.txt; \
		$(BIN)/pip freeze --exclude-editable | grep -vi '^threatlens'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* staticfiles
