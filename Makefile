# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
# The same database for psycopg's own connect (no SQLAlchemy driver name).
PG_DSN = $(subst +psycopg,,$(PG_TEST_URL))
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2

.PHONY: install run lint test test-fast test-sqlite test-postgres test-postgres-if-up chromium tools axe wrk bench bench-1m bench-roster bench-postgres clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The durability tests watch a writer's system calls with strace (tests/test_database_locking.py).
tools:
	@command -v strace >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace)

# Browser tests drive Debian's Chromium; Playwright never downloads a browser of its own.
chromium:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk)

# The accessibility test runs axe-core, from the npm registry, inside Chromium (tools/axe, pinned by its
# package-lock.json).
AXE := tools/axe/node_modules/axe-core/axe.min.js
axe: $(AXE)
$(AXE): tools/axe/package.json tools/axe/package-lock.json
	@command -v npm >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)
	cd tools/axe && npm ci --no-audit --no-fund --loglevel=error
	touch $(AXE)

# The HTTP benchmarks drive their load with wrk, Debian's package (a C event loop: the Python client
# it replaced could not drive /healthz past ~2,500 requests per second).
wrk:
	@command -v wrk >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)

run: install
	$(BIN)/timebank init-db
	$(BIN)/timebank demo --if-empty
	$(BIN)/timebank serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

# The gates: style and bugs (ruff), types (mypy), the packages' dependency direction (lint-imports).
# All three run, then the target fails if any did.
lint: install
	@status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/mypy ledger timebank/core || status=1; \
	$(BIN)/lint-imports || status=1; \
	exit $$status

# Everything, as CI runs it: the gates, then every test on SQLite, then every test on PostgreSQL.
test: install chromium tools axe
	$(MAKE) lint
	$(MAKE) test-sqlite
	$(MAKE) test-postgres-if-up

# A quick local loop: SQLite only, without the slow tests and the browser tests.
test-fast: install tools
	$(BIN)/pytest -q -p no:cacheprovider -m "not slow and not browser"

test-sqlite: install tools axe
	$(BIN)/pytest -q -p no:cacheprovider

# The replica tests read from a streaming replica of the local server on port 5433 (tools/pg-replica).
test-postgres: install tools axe
	tools/pg-replica up
	TIMEBANK_TEST_DATABASE_URL=$(PG_TEST_URL) TIMEBANK_TEST_REPLICA_URL=$$(tools/pg-replica url) \
	  $(BIN)/pytest -q -p no:cacheprovider

# Under CI (CI=true) the PostgreSQL run is required: a server that does not answer fails the build.
# Elsewhere the run is skipped with a message.
test-postgres-if-up: install
	@if reason=$$($(BIN)/python -c "import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=3).close()" \
	    '$(PG_DSN)' 2>&1); then \
	  $(MAKE) test-postgres; \
	elif [ "$(CI)" = "true" ]; then \
	  echo "No answer from the PostgreSQL test database $(PG_DSN): $$(echo "$$reason" | grep -m 1 'Error:')" >&2; \
	  echo "CI=true: the PostgreSQL run is required; start PostgreSQL or set PG_TEST_URL." >&2; \
	  exit 1; \
	else \
	  echo "No answer from the PostgreSQL test database $(PG_DSN): PostgreSQL run skipped (under CI=true this fails)."; \
	fi

# Each benchmark prints its figures and, last, whether it met its target (docs/performance.md).
# SQLite by default; TIMEBANK_DATABASE_URL=postgresql+psycopg://.../<a database named *bench*> for
# PostgreSQL (the benchmarks wipe it). `make bench FULL=1` adds the 1M-transaction run (bench-1m).
bench: install wrk
	$(BIN)/python bench/ledger_bench.py
	$(BIN)/python bench/http_redemption_bench.py
	$(BIN)/python bench/checkin_burst_bench.py
	$(BIN)/python bench/redemption_day_bench.py
	$(BIN)/python bench/proof_bench.py
	$(BIN)/python bench/import_bench.py
	$(MAKE) bench-roster
	$(MAKE) bench-postgres
	$(if $(FULL),$(MAKE) bench-1m)

bench-roster: install wrk
	$(BIN)/python bench/roster_bench.py

# The same sale on PostgreSQL, in a database of the benchmark's own (made when missing, then wiped).
PG_BENCH_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/tb_bench
bench-postgres: install wrk
	TIMEBANK_DATABASE_URL=$(PG_BENCH_URL) $(BIN)/python bench/http_redemption_bench.py

# A ledger of 1,000,000 transactions (built in a few minutes): the monthly report, the whole CSV
# export over HTTP, the whole XLSX made in the background (a few minutes more), verify and backup
# (scale_bench), then inclusion proofs and balance reads (proof_bench).
bench-1m: install
	$(BIN)/python bench/scale_bench.py --full --background xlsx
	TIMEBANK_DATABASE_URL=$(PG_BENCH_URL) $(BIN)/python bench/scale_bench.py --full --background xlsx
	$(BIN)/python bench/proof_bench.py --full

clean:
	rm -rf $(VENV) build *.egg-info
