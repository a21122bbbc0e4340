# Two commands (see README):  make labs   — install, build the pack, run every lab at its quick budget, report
#                             make test   — install (with Ray), run the test suite
# make labs is one `nnlabs sweep` over every lab: two labs at a time with one thread each on 2 cores, seed s
# of a lab in runs/<lab>/seed-<s>/; SEEDS=3 runs seeds 0..2 (BUDGET=full for the posts' figures). Rerunning
# it runs only what is missing or unfinished; delete runs/<lab> to run a lab again.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUNS   ?= runs
BUDGET ?= quick
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
	$(BIN)/pip install -q -e .
	touch $@

# the test and lint tools (pytest, ruff, playwright): make labs runs without them (~20 s less to install)
$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

labs: install
	$(BIN)/nnlabs pack build --out $(RUNS)/pack-v1
	$(BIN)/nnlabs sweep $(LABS) --seeds $(SEEDS) --budget $(BUDGET) --runs $(RUNS)
	$(BIN)/nnlabs report --runs $(RUNS) --site-only
	@echo "open $(RUNS)/site/index.html"

# Ray (the sweep's cluster executor, ~80 MB wheel) only for the tests: make labs runs without it.
$(VENV)/.installed-ray: $(VENV)/.installed-dev
	$(BIN)/pip install -q -e '.[ray]'
	touch $@

# two workers, one test file each at a time: a file's module-scoped fixtures (the sweep's, the labs' tiny
# runs) are built once, not once per worker
test: $(VENV)/.installed-dev $(VENV)/.installed-ray
	$(BIN)/pytest -q -n 2 --dist loadfile

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check nnlabs tests benchmarks

bench: install
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) $(RUNS) pack-v1
