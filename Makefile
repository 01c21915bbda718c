# Two commands on a fresh machine: `make run` and `make test`.
# Both install into .venv first; the install is skipped when pyproject.toml is unchanged.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
EXTRA   ?= cpu
RECIPE  ?= flows/recipes/e2e.yaml

.PHONY: run test test-all unit install clean

$(STAMP): pyproject.toml scripts/install.sh
	EXTRA=$(EXTRA) PY=$(PY) VENV=$(VENV) bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/llmflow run $(RECIPE)

# CI's command: everything but the slow tier (CI's budget is 40 minutes on 2 cores, install included).
test: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow" --durations=25

# Before resolving an issue: the slow tier too (about 25 minutes more on 2 cores).
test-all: $(STAMP)
	$(BIN)/python -m pytest tests --durations=25

unit: $(STAMP)
	$(BIN)/python -m pytest tests -m "not integration and not gpu"

clean:
	rm -rf $(VENV) .llmflow mlruns mlflow.db
