# The verbs a newcomer needs. Everything runs inside .venv, which `make venv` builds.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run venv test lint format migrations-check bench bench-compression bench-cache bench-prompt-cache clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip check
	touch $(STAMP)

venv: $(STAMP)

# Development server with the embedded defaults: SQLite, memory cache, eager Celery and
# the offline `fake` provider. Prints the demo credentials the first time.
run: $(STAMP)
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(PY) manage.py bootstrap_demo
	DEBUG=$${DEBUG:-true} HOST=$${HOST:-127.0.0.1} $(PY) -m synthlang_site

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrations-check: $(STAMP)
	DEBUG=true $(PY) manage.py makemigrations --check --dry-run

bench: bench-compression bench-cache bench-proxy

bench-compression: $(STAMP)
	$(PY) bench/compression_bench.py

bench-cache: $(STAMP)
	$(PY) bench/semantic_cache_bench.py

bench-proxy: $(STAMP)
	$(PY) bench/proxy_bench.py

bench-prompt-cache: $(STAMP)
	$(PY) bench/prompt_cache_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis staticfiles
