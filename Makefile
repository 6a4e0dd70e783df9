# The single entry point for humans and CI. `make demo` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-output

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lint install clean node bench bench-quick

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
	cd examples/node && npm ci --no-audit --no-fund

# Speed suite (benchmarks/speed.py): engines, precisions, scan modes, start-up, accuracy beside speed, targets.
# Needs the demo model (`make demo`). Full: ~25 min on 2 free cores (31 with another job on one of them)
# -> benchmarks/results/speed.{json,md};
# quick: a few minutes (first run longer: it exports the ONNX files it needs) -> speed.quick.{json,md}.
bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/speed.py --quick

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache build *.egg-info
