# Two commands on a fresh machine:  make demo  |  make test
# The venv takes the registry's CUDA builds of torch/torchvision (they also run on CPU); the
# machine's local CPU-only torch 2.13.0 wheel does not match the registry's torchvision.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH := "torch>=2.14" "torchvision>=0.29"
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: venv test demo clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq $(TORCH)
	$(PY) -m pip install -qq -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" MLFLOW_TRACKING_URI="sqlite:///$(CURDIR)/mlflow.db" \
		$(VENV)/bin/mlflow run . --env-manager local --experiment-name seaice-demo
	@echo "charts: $(CURDIR)/outputs/main/charts"
	@echo "MLflow UI: $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db  (http://127.0.0.1:5000)"

# pytest-xdist: one worker per core of the 2-core CI machine, a test file per worker (its module
# fixtures made once); tests/conftest.py gives each worker one thread
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -q -n 2 --dist loadfile --durations=25

clean:
	rm -rf $(VENV) .pytest_cache outputs mlruns mlartifacts mlflow.db
