# Everything needs only python3, make and git: the first target run builds .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NB     := notebooks

.PHONY: quickstart test lint format bench lab clean

## Run notebooks/quickstart.ipynb headless against a fresh store; print its run table.
## Widget state is not stored, so the HTML shows each panel's static form (no CDN scripts).
quickstart: $(STAMP)
	rm -rf $(NB)/.nbtrack
	JPY_SESSION_NAME=$(CURDIR)/$(NB)/quickstart.ipynb $(BIN)/jupyter nbconvert --to notebook \
	  --execute $(NB)/quickstart.ipynb --output quickstart.executed.ipynb \
	  --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.store_widget_state=False
	$(BIN)/jupyter nbconvert --to html $(NB)/quickstart.executed.ipynb --output quickstart.executed
	@echo "executed notebook: $(NB)/quickstart.executed.ipynb (HTML: $(NB)/quickstart.executed.html)"
	$(BIN)/nbtrack --store $(NB)/.nbtrack runs

## Run the whole test suite (kernels, notebooks, MLflow differential, crash tests).
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks: the core side by side with MLflow (sqlite), the panels, provenance, and a
## store of 100,000 runs.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_panels.py
	$(BIN)/python benchmarks/bench_provenance.py
	$(BIN)/python benchmarks/bench_scale.py

## Open the notebooks in JupyterLab.
lab: $(STAMP)
	cd $(NB) && ../$(BIN)/jupyter lab

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) $(NB)/.nbtrack $(NB)/*.executed.* .pytest_cache
