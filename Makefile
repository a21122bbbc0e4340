# Two commands (see README):  make labs   — install, build the pack, run every lab at its quick budget, report
#                             make test   — install (with Ray), run the test suite
# make labs BUDGET=full SEEDS=3 runs each lab as a sweep of seeds 0..2 (nnlabs sweep: runs/<lab>/seed-<s>/);
# SEEDS=1 (the default) runs each lab once at its own default seed, into runs/<lab>/.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUNS   ?= runs
BUDGET ?= quick
# an interrupted lab continues (--resume), a finished one is kept; LABFLAGS=--force reruns every lab
LABFLAGS ?=
SEEDS  ?= 1
# Set TORCH_INDEX to a CPU wheel index on machines where plain PyPI would pull a CUDA build of torch.
TORCH_INDEX ?=
# The lab list comes from the registry (nnlabs/labs/__init__.py); read lazily, after install.
LABS = $(shell $(BIN)/python -c "from nnlabs.labs import LABS; print(*LABS)")

# Tests read a local names.txt when one sits in ../shared/data (CI); users download it once, checksummed.
ifneq ($(wildcard ../shared/data/names.txt),)
export NNLABS_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install labs test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

labs: install
	$(BIN)/nnlabs pack build --out $(RUNS)/pack-v1
	for lab in $(LABS); do \
	  if [ $(SEEDS) -gt 1 ]; then $(BIN)/nnlabs sweep $$lab --seeds $(SEEDS) --budget $(BUDGET) --out $(RUNS)/$$lab; \
	  elif [ -e $(RUNS)/$$lab/.running ]; then $(BIN)/nnlabs lab $$lab --budget $(BUDGET) --out $(RUNS)/$$lab --resume; \
	  elif [ -d $(RUNS)/$$lab ] && [ -z "$(LABFLAGS)" ]; then echo "$$lab: done (make labs LABFLAGS=--force reruns it)"; \
	  else $(BIN)/nnlabs lab $$lab --budget $(BUDGET) --out $(RUNS)/$$lab $(LABFLAGS); fi || exit 1; done
	$(BIN)/nnlabs report --runs $(RUNS)
	@echo "open $(RUNS)/site/index.html"

# Ray (the sweep's cluster executor, ~80 MB wheel) only for the tests: make labs runs without it.
$(VENV)/.installed-ray: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[ray]'
	touch $@

test: install $(VENV)/.installed-ray
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check nnlabs tests benchmarks

bench: install
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) $(RUNS) pack-v1
