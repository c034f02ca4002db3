# Two entry points for a fresh machine: `make demo` and `make test`. Each creates or refreshes
# the virtualenv in .venv (re-installing when pyproject.toml changes) and runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# Tests run on every core (at most 4: each worker holds torch and may build a design). Builds are
# shared safely between workers through the build cache's per-design lock.
PYTEST_JOBS ?= -n auto --maxprocesses 4

.PHONY: demo test test-slow lint verilog synth clean venv mutate

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else f"aoncim needs Python 3.11 (torch==2.13.0 wheel); {sys.executable} is {v[0]}.{v[1]}: run make PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aoncim demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_JOBS) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_JOBS) $(PYTEST_ARGS)

# Mutation analysis: every mutant of sim/mutants.py against the default suite's fast checks; ends
# with `mutants killed: K/N` (exit 1 on a survivor). MUTATE_ARGS="--only NAME" for one.
MUTATE_ARGS ?=
mutate: $(STAMP)
	$(BIN)/python benchmarks/mutation.py $(MUTATE_ARGS)

lint: $(STAMP)
	$(BIN)/python -m aoncim.hw.lint

verilog: $(STAMP)
	$(BIN)/aoncim verilog -o out

# Generic Yosys synthesis of every synthesisable block (the behavioural array is a black box):
# cell counts, memories, latch check. CONFIG=file.toml for another config.
synth: $(STAMP)
	$(BIN)/python -m aoncim.hw.synth -o out/synth $(if $(CONFIG),--config $(CONFIG))

clean:
	rm -rf sim_build out .pytest_cache
