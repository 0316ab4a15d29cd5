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

# Installed at the versions the tests passed with (constraints.txt pins everything).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

$(DEV_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP) $@

install: $(STAMP)

install-dev: $(DEV_STAMP)

# Every documented command works after `make run`: case summaries (huizhen queue export)
# need the fonts.
run: $(STAMP) fonts
	$(BIN)/huizhen run

# Everything, one test at a time (as CI runs it).
test: $(DEV_STAMP) fonts browser orthanc
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The same checks without the tests marked slow (crash recovery, resilience, several workers,
# fuzzing, the long property runs): minutes instead of most of an hour, for while you work.
test-fast: $(DEV_STAMP) fonts browser orthanc
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "not slow"

# Debian's packages, installed where missing (as root, or through sudo).
APT_INSTALL = SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends

# The case summary PDF (huizhen queue export, and the coordinators' cards) is set in the Noto
# fonts: Chinese, and the scripts of every supported language.
.PHONY: fonts
fonts:
	@if [ ! -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || \
		[ ! -f /usr/share/fonts/truetype/noto/NotoNaskhArabic-Regular.ttf ]; then \
		$(APT_INSTALL) fonts-noto-cjk fonts-noto-core; \
	fi

# The upload page's tests drive Debian's headless Chromium, and the summary PDF's tests read
# its pages back with poppler-utils.
.PHONY: browser
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || \
		[ ! -x /usr/bin/pdftoppm ]; then \
		$(APT_INSTALL) chromium chromium-driver poppler-utils; \
	fi

# The imaging tests start their own Orthanc (loopback, free ports, a folder in tmp) with the
# DICOMweb and web viewer plugins; the system service the package may set up is never used.
.PHONY: orthanc
orthanc:
	@if [ ! -x /usr/sbin/Orthanc ] || [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || \
		[ ! -e /usr/share/orthanc/plugins/libOrthancWebViewer.so ]; then \
		$(APT_INSTALL) orthanc orthanc-dicomweb orthanc-webviewer; \
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

bench: $(DEV_STAMP) orthanc
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/telegram.py
	$(BIN)/python benchmarks/dicom.py
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/pacs.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
