# CareInbox — `make run` for the demo, `make test` for the whole suite.
# With DATABASE_URL / REDIS_URL set, both use PostgreSQL / Redis; otherwise SQLite and
# Celery's filesystem transport under var/.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
SANDBOX_PORT ?= 8765
FACEBOOK_SANDBOX_PORT ?= 8766

export X_SANDBOX_URL ?= http://127.0.0.1:$(SANDBOX_PORT)
export FACEBOOK_SANDBOX_URL ?= http://127.0.0.1:$(FACEBOOK_SANDBOX_PORT)
# The demo's Meta app secret: the Facebook emulator signs its webhooks with it, the app checks.
export FACEBOOK_APP_SECRET ?= careinbox-dev-facebook-app-secret

.PHONY: run test lint bench bench-polling bench-sla bench-scale bench-storm soak clean chromium

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DEBUG=1 $(BIN)/python manage.py seed_demo --url http://127.0.0.1:$(PORT)/
	PATH="$(CURDIR)/$(BIN):$$PATH" DEBUG=1 POLL_INTERVAL_SECONDS=$${POLL_INTERVAL_SECONDS:-4} WEB_PORT=$(PORT) SANDBOX_PORT=$(SANDBOX_PORT) FACEBOOK_SANDBOX_PORT=$(FACEBOOK_SANDBOX_PORT) \
	  $(BIN)/honcho -f Procfile.dev start

# Browser tests drive Debian's Chromium through Playwright; install it when we may.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)) ; \
	  else echo "chromium is not installed (apt-get install chromium): browser tests will be skipped"; fi; \
	fi

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CAREINBOX_TESTING=1 $(BIN)/mypy careinbox tickets channels_social monitoring
	CAREINBOX_TESTING=1 $(BIN)/python manage.py makemigrations --check --dry-run

test: $(VENV)/.test-deps chromium lint
	$(BIN)/pytest $(PYTEST_ARGS)

# The ingest benchmark, then beat's poll fairness at a small size (20 handles, 30 s; ~50 s),
# then arrival latency (X poll and Facebook webhook, 20 posts each on real processes; < 60 s).
# With DATABASE_URL on PostgreSQL, also the read paths over 20,000 generated tickets (~1 min).
bench: $(VENV)/.test-deps
	$(BIN)/python bench/ingest_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/poll_fairness.py --small
	$(BIN)/python bench/arrival_latency.py --small
	@case "$$DATABASE_URL" in postgres*) \
	  $(BIN)/python bench/scale_data.py --tickets 20000 --database careinbox_bench_small && \
	  $(BIN)/python bench/read_paths.py --database careinbox_bench_small --requests 10 ;; \
	  *) echo "bench/read_paths.py: PostgreSQL only (set DATABASE_URL), skipped" ;; esac

# Read paths at scale (PostgreSQL; DATABASE_URL names the server): generate SCALE_DB, then
# measure it. SCALE_ARGS="--tickets 100000" for a smaller set; READ_ARGS="--explain".
SCALE_DB ?= careinbox_bench
bench-scale: $(VENV)/.test-deps
	$(BIN)/python bench/scale_data.py --database $(SCALE_DB) $(SCALE_ARGS)
	$(BIN)/python bench/read_paths.py --database $(SCALE_DB) $(READ_ARGS)

bench-polling: $(VENV)/.test-deps
	$(BIN)/python bench/poll_fairness.py $(POLLING_ARGS)

# The soak, then faults (the Celery worker SIGKILLed during a storm: 20 times, 3 with --small),
# restarts (our own Redis and PostgreSQL restarted under it) and load (50 agents on gunicorn
# while a storm is ingested; 10 with --small).
SOAK_SMALL = $(filter --small,$(SOAK_ARGS))
soak: $(VENV)/.test-deps
	$(BIN)/python bench/soak.py $(SOAK_ARGS)
	$(BIN)/python bench/faults.py kills $(if $(SOAK_SMALL),--kills 3 --drain 180)
	$(BIN)/python bench/restarts.py $(SOAK_SMALL)
	$(BIN)/python bench/load.py $(SOAK_SMALL)

# The SLA sweep at 10,000 and 100,000 open tickets (SLA_BENCH_ARGS="--small": 2,000, seconds).
bench-sla: $(VENV)/.test-deps
	$(BIN)/python bench/sla_sweep_bench.py $(SLA_BENCH_ARGS)

# The ingest storm (PostgreSQL and Redis: DATABASE_URL, REDIS_URL): 100,000 mentions drained by
# real workers against a raw COPY of the same rows (STORM_ARGS="--small": 400; "--workers 2").
bench-storm: $(VENV)/.test-deps
	$(BIN)/python bench/ingest_storm.py $(STORM_ARGS)

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
