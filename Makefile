# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
# python3.12 from PATH, else from pyenv's versions folder
PYTHON ?= $(shell for p in python3.12 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12; do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { echo $$p; break; }; done)
STAMP := $(VENV)/.installed

.PHONY: demo test lint format clean constraints docs wheel-check

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "python3.12 not found: install Python 3.12 or pass PYTHON=/path/to/python3.12"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -c constraints.txt uv
	# --compile-bytecode: pip compiles at install, uv does not, and with PYTHONDONTWRITEBYTECODE
	# set (as on CI) every process would compile torch's modules again (5 s per import)
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(VENV)/bin/python -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pyrocompress demo --out demo-out

# ruff (lint, then format), pyright (basic mode, [tool.pyright]), the documentation site
# (warnings are errors), then pytest: the tests and the docstring examples of the package
# (--doctest-modules, [tool.pytest.ini_options]) on TEST_WORKERS processes (pytest-xdist;
# the tests of one file share a process, so module fixtures are built once; each test
# runs torch on one thread).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(VENV)/bin/ruff check pyrocompress tests benchmarks docs/conf.py docs/_api.py
	$(VENV)/bin/ruff format --check pyrocompress tests benchmarks docs/conf.py docs/_api.py
	$(VENV)/bin/pyright
	$(MAKE) docs
	$(VENV)/bin/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# the documentation site in docs/_build/html; a warning (a broken reference to a
# pyrocompress name, a bad docstring section, a missing page) fails the build
docs: $(STAMP)
	rm -rf docs/_build docs/api/generated
	$(VENV)/bin/python -m sphinx -b html -W --keep-going -q docs docs/_build/html

# build the wheel and sdist, install the wheel into a fresh venv, run the demo and the
# README's quickstart from it (.ci/wheel-check; CI runs it after `make test`)
wheel-check: $(STAMP)
	bash .ci/wheel-check

lint: $(STAMP)
	$(VENV)/bin/ruff check pyrocompress tests benchmarks docs/conf.py docs/_api.py
	$(VENV)/bin/ruff format --check pyrocompress tests benchmarks docs/conf.py docs/_api.py
	$(VENV)/bin/pyright

format: $(STAMP)
	$(VENV)/bin/ruff format pyrocompress tests benchmarks docs/conf.py docs/_api.py
	$(VENV)/bin/ruff check --fix pyrocompress tests benchmarks docs/conf.py docs/_api.py

# pin the versions installed now (after an upgrade; then rerun the measured figures)
constraints: $(STAMP)
	{ sed -n '/^[^#]/q;p' constraints.txt; \
	  $(VENV)/bin/python -m pip freeze | grep -v '^#\|^-e\|^pyrocompress'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache docs/_build docs/api docs/notebooks
