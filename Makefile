# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the package's requirements change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/nwbridge demo --output demo_output

test: $(VENV)/.installed
	$(BIN)/python -m pytest -n 2 -q

docs: $(VENV)/.installed
	$(BIN)/python -m nwbridge.schemas.docs > docs/representation.md

clean:
	rm -rf $(VENV) demo_output .pytest_cache
