# On a fresh machine with python3, pip and make: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Node.js checks of the contract: the docs' JavaScript snippets, the AsyncAPI parser.
NODE_DIR   := scripts/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

# The OTLP receiver the trace tests export to: Arize Phoenix, in a venv of its own (it is an
# application with dependencies of its own, run beside agora as a user would run it).
PHOENIX       := .venv-phoenix
PHOENIX_STAMP := $(PHOENIX)/.installed

# The dashboard's browser tests and screenshots drive Chromium from the distribution's packages
# (scripts/install-browser.sh; Playwright's own browser builds are never downloaded).
BROWSER_STAMP := $(VENV)/.browser-installed

.PHONY: install node phoenix browser demo test unit lint bench clean faults screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,traces]"
	touch $(STAMP)

install: $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

node: $(NODE_STAMP)

$(PHOENIX_STAMP):
	$(PYTHON) -m venv $(PHOENIX)
	$(PHOENIX)/bin/python -m pip install --quiet "arize-phoenix>=12"
	touch $(PHOENIX_STAMP)

phoenix: $(PHOENIX_STAMP)

$(BROWSER_STAMP): scripts/install-browser.sh | $(STAMP)
	bash scripts/install-browser.sh
	touch $(BROWSER_STAMP)

browser: $(BROWSER_STAMP)

demo: $(STAMP)
	$(BIN)/agora demo

test: $(STAMP) $(NODE_STAMP) $(PHOENIX_STAMP) $(BROWSER_STAMP)
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(PHOENIX) $(NODE_DIR)/node_modules .agora .pytest_cache .mypy_cache .ruff_cache

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench.run

# PNGs of the dashboard's main pages (goals, a goal, approvals, analytics, dead letters) into
# docs/images/, from a real agora up in a temporary data dir and headless Chromium.
screenshots: $(STAMP) $(BROWSER_STAMP)
	PYTHONPATH=. $(BIN)/python scripts/screenshots.py

# Every fault scenario at full scale, with the checker's verdict and counts at the end.
faults: $(STAMP)
	$(BIN)/pytest tests/faults -m "faults or not faults"
