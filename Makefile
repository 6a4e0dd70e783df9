# The single entry point for humans and CI. `make demo` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-output

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lint install clean node

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m detector.demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# examples/node's dependencies (onnxruntime-node, pngjs, jpeg-js). `make test` does not need this first:
# tests/test_node_example.py runs `npm ci` itself when they are missing.
node:
	npm ci --prefix examples/node --no-audit --no-fund

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache build *.egg-info
