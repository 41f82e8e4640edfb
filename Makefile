# The two commands of the README:
#   make demo   the main job on the embedded local runtime: events in, invoices out
#   make test   linters, type checks and the whole test suite
# Each one sets up everything it needs first (a virtualenv with the pinned dependencies).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20

.PHONY: demo test lint typecheck unit synth bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# A month of 20,000 events for 20 accounts: 67 s measured on two cores (load average ~1;
# 100,000 events for 100 accounts: 237 s), docs/benchmarks.md, section 4.
# Other sizes: make demo DEMO_EVENTS=100000 DEMO_ACCOUNTS=100
DEMO_EVENTS ?= 20000
DEMO_ACCOUNTS ?= 20

demo: $(STAMP)
	$(BIN)/billing demo --events $(DEMO_EVENTS) --accounts $(DEMO_ACCOUNTS)

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy billing functions infra app.py benchmarks

unit: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

synth: $(STAMP)
	$(BIN)/python app.py

bench: $(STAMP)
	$(BIN)/python benchmarks/classify.py --events 100000
	$(BIN)/python benchmarks/ingest.py --events 100000
	$(BIN)/python benchmarks/close.py

clean:
	rm -rf cdk.out build out .billing-local .pytest_cache .mypy_cache .ruff_cache
