# penguin-serve: `make run` serves the API, `make test` runs the whole suite. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SERVE_VENV := .venv-serve
PEERS_VENV := .venv-peers
BIN := $(VENV)/bin
PORT ?= 3000
export PORT

.PHONY: install run train test test-fast test-fresh mutate timings style image deploy loadtest bench profile clean

# The virtual environment is rebuilt whenever a lock file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13) and "penguin-serve needs Python 3.11, 3.12 or 3.13 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Trains only when the model store (BENTOML_HOME, default ~/bentoml) has no penguin model yet.
run: install
	$(BIN)/python train.py --if-missing
	$(BIN)/bentoml serve service:PenguinClassifier --host 127.0.0.1 --port $(PORT)

train: install
	$(BIN)/python train.py

# Builds the OCI image (starts a Docker engine and builds a Debian base image where needed).
image: install
	scripts/image/image.sh

# From a trained model to a serving URL: the image, pushed to Artifact Registry, deployed by digest to Cloud Run,
# smoke-tested, then given all traffic (docs/cloud-run.md). DEPLOY_ARGS: e.g. --public or --no-traffic.
deploy: install
	image=$$(scripts/image/image.sh) && digest=$$(scripts/image/push-image.sh "$$image") && \
	$(BIN)/python -m scripts.deploy.cloudrun deploy "$$digest" $(DEPLOY_ARGS)

# Locust scenarios against URL (default: starts the local container; a private Cloud Run URL gets an identity
# token from gcloud), with a report under load_results/<timestamp>/. E.g. make loadtest URL=https://...
# LOADTEST_ARGS="--scenarios normal,step"
loadtest: install
	$(BIN)/python -m scripts.load.loadtest $(if $(URL),--url $(URL)) $(LOADTEST_ARGS)

# The service alone with the image's dependencies (no pandas or scikit-learn, which xgboost imports when
# present): what make bench measures.
$(SERVE_VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The HTTP ceiling and the FastAPI + numpy peer, with only their own dependencies.
$(PEERS_VENV)/.installed: benchmarks/requirements-peers.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --disable-pip-version-check -r benchmarks/requirements-peers.txt
	touch $@

# This service against the usual FastAPI + pandas approach and the in-process floor (docs/PERFORMANCE.md).
bench: install $(SERVE_VENV)/.installed $(PEERS_VENV)/.installed
	$(BIN)/python -m benchmarks.bench --service-venv $(SERVE_VENV) --peers-venv $(PEERS_VENV) --out docs/performance.json --page

# Where a worker's CPU goes under load, per layer a request crosses (py-spy); writes docs/profile.json.
profile: install $(SERVE_VENV)/.installed
	$(BIN)/python -m benchmarks.profile --service-venv $(SERVE_VENV) --out docs/profile.json --page

# Everything: style, then every test (Docker, browser, Prometheus, benchmark and fuzzing included), with coverage,
# in random order (the seed is printed; `--randomly-seed=N` repeats an order), one test file per
# process on every core, the longest files first (by docs/test-timings.json).
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n auto --dist loadfile --no-loadscope-reorder

# The inner loop: code, data and model tests, no servers, containers, browsers or benchmarks.
test-fast: install
	$(BIN)/python -m pytest -m "not slow" --no-cov -q -n auto

# `make test` on a clean clone of HEAD in a fresh Debian container with only what the README's set-up installs.
test-fresh:
	scripts/dev/test-fresh.sh

# Mutation testing of the serving core ([tool.mutmut] in pyproject.toml) into docs/mutation-report.md: every
# mutant no test kills is listed there, with its reason or as unexplained. Not part of `make test`.
$(VENV)/.mutate-installed: requirements-mutate.txt $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-mutate.txt
	touch $@

mutate: $(VENV)/.mutate-installed
	rm -rf mutants .mutate-model
	# Compiled modules are kept (PYTHONDONTWRITEBYTECODE off): each of the thousands of runs imports them.
	started=$$(date +%s) && env -u PYTHONDONTWRITEBYTECODE PENGUIN_TEST_MODEL_CACHE=$(CURDIR)/.mutate-model $(BIN)/mutmut run && \
	MUTATE_STARTED=$$started $(BIN)/python -m scripts.dev.mutation_report > docs/mutation-report.md
	@grep "mutants of the serving core" docs/mutation-report.md

# Times both tiers on this machine into docs/test-timings.json, the durations the README quotes. Each tier is
# recorded in a scratch copy first: `make test`'s figure checks compare the docs with the committed timings, which
# the first tier would otherwise have rewritten under it. Once moved, those checks name the prose to update.
timings: install
	cp docs/test-timings.json .test-timings.json
	PENGUIN_TEST_TIMINGS=$(CURDIR)/.test-timings.json $(MAKE) test-fast test
	mv .test-timings.json docs/test-timings.json

# Formats the tree and fixes what ruff can.
style: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(SERVE_VENV) $(PEERS_VENV) .pytest_cache .coverage htmlcov
