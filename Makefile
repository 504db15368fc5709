# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2

.PHONY: install run test typecheck test-sqlite test-postgres chromium bench clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's Chromium; Playwright never downloads a browser of its own.
chromium:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk)

run: install
	$(BIN)/timebank init-db
	$(BIN)/timebank demo --if-empty
	$(BIN)/timebank serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

test: install chromium
	$(MAKE) typecheck
	$(MAKE) test-sqlite
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('postgresql://postgres@127.0.0.1:5432/test', connect_timeout=3).close()" 2>/dev/null; then \
	  $(MAKE) test-postgres; \
	else echo "PostgreSQL does not answer at 127.0.0.1:5432: PostgreSQL run skipped"; fi

# The ledger core is fully annotated (setup.cfg, [mypy-ledger.*]).
typecheck: install
	$(BIN)/mypy ledger/

test-sqlite: install
	$(BIN)/pytest -q -p no:cacheprovider

test-postgres: install
	TIMEBANK_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest -q -p no:cacheprovider

# Each benchmark prints its figures and, last, whether it met its target (docs/performance.md).
bench: install
	$(BIN)/python bench/ledger_bench.py
	$(BIN)/python bench/http_redemption_bench.py
	$(BIN)/python bench/checkin_burst_bench.py
	$(BIN)/python bench/redemption_day_bench.py
	$(BIN)/python bench/proof_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
