# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PACKAGES := bot handlers conversations records storage

.PHONY: run install install-dev test test-fast lint typecheck i18n bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

install: $(STAMP)

install-dev: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/huizhen run

# Everything, one test at a time (as CI runs it).
test: $(DEV_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The same checks without the tests marked slow (crash recovery, resilience, several workers,
# fuzzing, the long property runs): minutes instead of most of an hour, for while you work.
test-fast: $(DEV_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "not slow"

# The upload page's tests drive Debian's headless Chromium, and the case summary PDF needs the
# Noto fonts (its tests read pages back with poppler-utils); install them where missing.
.PHONY: browser
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || \
		[ ! -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || \
		[ ! -f /usr/share/fonts/truetype/noto/NotoNaskhArabic-Regular.ttf ] || \
		[ ! -x /usr/bin/pdftoppm ]; then \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update && \
		$$SUDO apt-get install -y --no-install-recommends chromium chromium-driver \
			fonts-noto-cjk fonts-noto-core poppler-utils; \
	fi

lint: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# Extract every marked string, merge into each catalog, keep English complete, and compile
# (the bot reads the .po files directly; compiling checks them and serves other tools).
i18n: $(DEV_STAMP)
	$(BIN)/pybabel extract --no-location --sort-output --omit-header -F babel.cfg \
		-k N_ -k t -k plural:1,2 -k bilingual -o locales/messages.pot $(PACKAGES)
	$(BIN)/pybabel update --no-fuzzy-matching --ignore-obsolete -i locales/messages.pot -d locales
	$(BIN)/python -m conversations.catalogs fill-source locales/en/LC_MESSAGES/messages.po
	$(BIN)/pybabel compile --statistics -d locales

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/telegram.py
	$(BIN)/python benchmarks/dicom.py
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
