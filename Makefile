# Set-up for a fresh machine is two commands (see README.md):
#   make lab    install the course and start JupyterLab on the learner's copies of the notebooks
#   make test   install the course with its test tools, lint, type-check and run the test suite
# DEVELOPERS.md explains the virtual environment and the torch step.

PYTHON ?= python3
# Installed only when `import torch` fails. The pinned version is a CPU build that this machine
# has on local disk; a bare `torch` requirement would pull a multi-GB CUDA build instead.
# Elsewhere pick your own, e.g. `make lab TORCH=torch`.
TORCH ?= torch==2.13.0
# Used when $(PYTHON) is not already in a virtualenv or conda environment: Debian, Ubuntu and
# Homebrew pythons refuse `pip install` outside one (PEP 668, "externally-managed-environment").
VENV ?= .venv

# True inside a venv/virtualenv (a prefix of its own) or a conda environment (conda-meta/).
IN_ENV := $(shell $(PYTHON) -c "import os, sys; print(sys.prefix != sys.base_prefix \
    or hasattr(sys, 'real_prefix') or os.path.isdir(os.path.join(sys.prefix, 'conda-meta')))" \
    2>/dev/null)
ifeq ($(IN_ENV),)
$(error Cannot run $(PYTHON). Install Python 3.10 to 3.13, or name yours: PYTHON=python3.12)
endif
ifeq ($(IN_ENV),True)
PY := $(PYTHON)
ENV_PYTHON :=
RUN :=
else
ifeq ($(OS),Windows_NT)
PY := $(VENV)/Scripts/python.exe
else
PY := $(VENV)/bin/python
endif
ENV_PYTHON := $(PY)
# The tests and the lab run as if the venv were activated: nbgrader runs `alembic` by name, and
# a terminal opened in the lab finds `course` and `python`.
RUN := PATH="$(abspath $(dir $(PY))):$$PATH" VIRTUAL_ENV="$(abspath $(VENV))"
endif
RUN_PY = $(strip $(RUN) $(PY))

# e.g. VENV_FLAGS=--system-site-packages to reuse what $(PYTHON) has (a GPU torch on Colab)
VENV_FLAGS ?=
VENV_CMD = $(strip $(PYTHON) -m venv $(VENV_FLAGS) $(VENV))
# Without ensurepip (Debian or Ubuntu without python3-venv) the venv gets pip from $(PYTHON)'s.
VENV_WITHOUT_ENSUREPIP = rm -rf $(VENV) && $(PYTHON) -m venv --without-pip $(VENV_FLAGS) $(VENV) \
    && $(PYTHON) -m pip --python $(PY) install --quiet pip
VENV_FAILED := make: could not create a virtual environment with '$(PYTHON) -m venv' (on Debian \
    or Ubuntu: sudo apt install python3-venv); or activate one of your own and run make again.
VENV_GIVE_UP = { rm -rf $(VENV); echo "$(VENV_FAILED)" >&2; exit 1; }

.PHONY: torch install install-test lab test

$(VENV)/bin/python $(VENV)/Scripts/python.exe:
	@echo "$(VENV_CMD)"
	@$(VENV_CMD) 2>/dev/null || ($(VENV_WITHOUT_ENSUREPIP)) || $(VENV_GIVE_UP)

torch: $(ENV_PYTHON)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "$(TORCH)"

# What a learner needs: the course and JupyterLab, no test or instructor tools.
install: torch
	$(PY) -m pip install -e .

# The test tools too (pytest, nbval, ruff, mypy, selenium, and nbgrader, which the tests drive).
install-test: torch
	$(PY) -m pip install -e ".[test]"

lab: install
	$(RUN_PY) -m course lab

test: install-test
	$(RUN_PY) -m ruff check .
	$(RUN_PY) -m mypy course
	$(RUN_PY) -m pytest
