# Set-up for a fresh machine is two commands (see README.md):
#   make lab    install the course and start JupyterLab on notebooks/
#   make test   install the course with its test extras and run the whole test suite
# DEVELOPERS.md explains the torch step.

PYTHON ?= python3
# Installed only when `import torch` fails. The pinned version is a CPU build that this machine
# has on local disk; a bare `torch` requirement would pull a multi-GB CUDA build instead.
# Elsewhere pick your own, e.g. `make lab TORCH=torch`.
TORCH ?= torch==2.13.0

.PHONY: install lab test

install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "$(TORCH)"
	$(PYTHON) -m pip install -e ".[test]"

lab: install
	$(PYTHON) -m course lab

test: install
	$(PYTHON) -m pytest
