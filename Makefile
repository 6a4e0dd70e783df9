# The single entry point for humans and CI. `make demo` and `make test` set everything up on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-output

export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-stages test-deps lint install clean node bench bench-quick

# System packages the tests need beyond the venv: Debian's Chromium drives the page test
# (tests/test_serve.py). Installed through apt when run as root; otherwise the recipe says what to run.
TEST_APT_PACKAGES := chromium
CHROMIUM ?= $(or $(DETECT_CHROMIUM),chromium)
APT_GET  ?= apt-get

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m detector.demo --out $(DEMO)

# Two pytest-xdist workers, a test file per worker at a time (its module fixtures and servers stay
# together); the session model is trained once for both (tests/conftest.py build_once), while the other
# worker runs the files that need no model: tests/conftest.py orders the files, so xdist's reordering is
# off. On 2 cores (AMD EPYC family 25 model 17) the suite took 10.0 min (12.0 min in xdist's order
# before the tests were cut down; 20 min on the slower family 25 model 1).
TEST_WORKERS ?= 2

test: $(STAMP) test-deps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20

# The stage unit tests (tests/test_stage_*.py): no trained model, no TensorFlow; they run in seconds.
test-stages: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_stage_*.py

test-deps:
	@if ! command -v $(CHROMIUM) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null 2>&1; then \
	    echo "installing $(TEST_APT_PACKAGES) for the page test (apt-get)"; \
	    DEBIAN_FRONTEND=noninteractive $(APT_GET) update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $(TEST_APT_PACKAGES) >/dev/null; \
	  else \
	    echo "make test needs Chromium for tests/test_serve.py: run 'sudo apt-get install -y $(TEST_APT_PACKAGES)'" \
	      "(or set DETECT_CHROMIUM=/path/to/chromium), then make test again" >&2; \
	    exit 1; \
	  fi; \
	fi

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
	$(BIN)/python benchmarks/photo_speed.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/speed.py --quick
	$(BIN)/python benchmarks/photo_speed.py --photos 5

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache build *.egg-info
