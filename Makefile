# On a fresh machine with python3, pip and make: `make demo`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Node.js checks of the contract: the docs' JavaScript snippets, the AsyncAPI parser.
NODE_DIR   := scripts/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: install node demo test unit lint bench clean faults

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

node: $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/agora demo

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .agora .pytest_cache .mypy_cache .ruff_cache

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench.run

# Every fault scenario at full scale, with the checker's verdict and counts at the end.
faults: $(STAMP)
	$(BIN)/pytest tests/faults -m "faults or not faults"
