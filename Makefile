# Two commands on a fresh machine: `make run` and `make test`.
# Both install into .venv first; the install is skipped when pyproject.toml is unchanged.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
EXTRA   ?= cpu
RECIPE  ?= flows/recipes/e2e.yaml

.PHONY: run test unit install clean

$(STAMP): pyproject.toml scripts/install.sh
	EXTRA=$(EXTRA) PY=$(PY) VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/llmflow run $(RECIPE)

test: $(STAMP)
	$(BIN)/python -m pytest tests

unit: $(STAMP)
	$(BIN)/python -m pytest tests -m "not integration and not gpu"

clean:
	rm -rf $(VENV) .llmflow mlruns mlflow.db
