# Veil: `make demo` to try it, `make test` to run the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
INSTALLED_DEV := $(VENV)/.installed-dev
# The PostgreSQL and Redis servers the scaled-mode pass of the suite runs against.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/veil
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: install install-dev demo serve test test-embedded test-services lint bench clean

# What running Veil needs (the demo included); the dev extras come on top for the tests.
$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -e .
	touch $(INSTALLED)

$(INSTALLED_DEV): $(INSTALLED)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(INSTALLED_DEV)

install: $(INSTALLED)

install-dev: $(INSTALLED_DEV)

demo: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py serve --demo 127.0.0.1:8000

serve: install
	$(BIN)/python manage.py serve 127.0.0.1:8000

# The whole suite, against the embedded default (SQLite, file broker).
test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The whole suite again, against the PostgreSQL and Redis servers.
test-services: install-dev
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf var/test-* .pytest_cache
