# mmz: two commands for a newcomer — `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

RUST_SRC := $(shell find rust -name '*.rs' -o -name Cargo.toml 2>/dev/null) Cargo.toml pyproject.toml
DEPS_STAMP := $(VENV)/.stamp-deps
BUILD_STAMP := $(VENV)/.stamp-build

# Runtime + test dependencies (no torch: training deps come with `make train-deps`).
PY_DEPS := "maturin>=1.5,<2" "numpy>=1.24" "pillow>=10" "pyarrow>=14" "sentencepiece>=0.2" "ray[default]>=2.9" \
	"onnxruntime>=1.17" "onnx>=1.15" "matplotlib>=3.7" "constriction>=0.4" "jsonschema>=4" \
	"pytest>=7" "hypothesis>=6" "ruff>=0.4"

.PHONY: run test build deps lint clean bench roundtrip-all train-deps cargo-test pytest

$(DEPS_STAMP):
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(PY_DEPS)
	touch $@

deps: $(DEPS_STAMP)

$(BUILD_STAMP): $(DEPS_STAMP) $(RUST_SRC)
	$(VENV)/bin/maturin develop --release -q
	touch $@

build: $(BUILD_STAMP)

## run: set up, then compress the bundled sample corpus with a Ray job on a local head node,
## verify it with the verify job, print the table, stop the head (jobs/run_sample.sh).
run: build
	VENV=$(abspath $(VENV)) jobs/run_sample.sh

## test: set up, then cargo tests and pytest.
test: build cargo-test pytest

cargo-test:
	cargo test -p mmz-core --release -q

pytest: build
	$(PY) -m pytest -q tests

lint: build
	$(VENV)/bin/ruff check pipeline tests jobs bench
	cargo clippy --workspace --all-targets -- -D warnings

train-deps: $(DEPS_STAMP)
	$(PIP) install -q "torch>=2.2" "sentencepiece>=0.2"

roundtrip-all: build
	$(PY) -m mmz.demo ../shared/corpus/dev --json out/roundtrip-all.json

## bench: install the classical tools (Debian) if missing, then regenerate docs/BENCHMARKS.md and plots.
bench: build
	@missing=""; for t in xz zstd brotli flac cjxl cwebp optipng bzip2; do command -v $$t >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then apt-get update -q && apt-get install -y -q xz-utils zstd brotli flac libjxl-tools webp optipng bzip2; fi
	bench/run_all.sh ../shared/corpus/dev $(BENCH_ARGS)

clean:
	rm -rf target $(VENV) out
