# The two commands of the README: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
DATA ?= data
ARTIFACTS ?= artifacts
SCALE ?= small
CODE := bookrec server trainer clients bench tests

.PHONY: run serve train demo-data test lint generate venv clean bench web

venv: $(STAMP)

# uv (a pinned wheel from PyPI) installs the pinned dependencies in seconds where pip
# took minutes, from the sources pip is configured with (scripts/install_deps.py; pip
# when uv cannot be had).
$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating the virtual environment in $(VENV)..."; $(PYTHON) -m venv $(VENV); }
	@echo "installing Python dependencies into $(VENV) with uv (once per change of pyproject.toml)..."
	@$(PY) scripts/install_deps.py -e '.[dev]'
	@echo "dependencies installed"
	@rm -f $(VENV)/.installed-* && touch $@

# `make test` also needs the extras only tests use (pyspark, for tests/test_spark_als.py
# and mypy's view of trainer/models/spark_als.py): installed beside the pinned set.
TEST_STAMP := $(VENV)/.installed-tests-$(shell sha256sum pyproject.toml | cut -c1-12)
$(TEST_STAMP): $(STAMP)
	@echo "installing the test extras (pyspark) into $(VENV)..."
	@$(PY) scripts/install_deps.py -e '.[dev,spark]'
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	@touch $@

# The web page (clients/web): its npm packages, then the Vite build into clients/web/dist,
# which the server's --web-port serves (docs/web.md).
WEB := clients/web
$(WEB)/node_modules/.installed: $(WEB)/package.json $(WEB)/package-lock.json
	@echo "installing the web page's npm packages into $(WEB)/node_modules..."
	npm ci --prefix $(WEB) --silent --no-audit --no-fund
	@touch $@

web: $(WEB)/node_modules/.installed
	npm run --prefix $(WEB) --silent build

# Demo data if data/ has none, a model if artifacts/ has no valid one, then serve.
# The first model runs a short settings study (RUN_STUDY, starting from RUN_GRID, a
# point that does well on the demo data) so that a fresh clone answers within two
# minutes; `make train` runs the full study (30 trials, 210 s), and the run's summary
# line says so. On the small demo set it serves the same quality as the 8-trial, 90 s
# study it replaced (NDCG@10 0.2593 [0.249, 0.2704] both): the first point of each
# study (RUN_GRID for ALS, the defaults for item-item) was the best one either way.
# bench/first_run.py times a fresh clone's make run.
RUN_GRID ?= factors=256;alpha=10;regularization=1.0;scheme=log
RUN_STUDY ?= --study-trials 1 --study-seconds 12
# The demo server checks API keys: a local key with every scope is made once (its hash
# in KEYS, the key itself in LOCAL_KEY for the CLI client).
KEYS ?= $(DATA)/keys.jsonl
LOCAL_KEY ?= $(DATA)/local-api-key
WEB_PORT ?= $(or $(BOOKREC_WEB_PORT),8080)
# The key is shown once: in the web link printed when it is made; after that, the link
# without it and the file it is in.
run: $(STAMP) web
	@test -f $(DATA)/BX-Book-Ratings.csv || $(PY) -m trainer demo-data --scale $(SCALE) --out $(DATA)
	$(PY) -m trainer run --if-missing --data $(DATA) --artifacts $(ARTIFACTS) --als-grid '$(RUN_GRID)' $(RUN_STUDY)
	@$(PY) -m server keys --keys-file $(KEYS) create --id local --scopes read,write,admin --out $(LOCAL_KEY) --if-missing --web-url http://127.0.0.1:$(WEB_PORT)/
	$(PY) -m server --artifacts $(ARTIFACTS) --keys-file $(KEYS) --web-port $(WEB_PORT)

serve: $(STAMP)
	$(PY) -m server --artifacts $(ARTIFACTS)

train: $(STAMP)
	$(PY) -m trainer run --data $(DATA) --artifacts $(ARTIFACTS)

demo-data: $(STAMP)
	$(PY) -m trainer demo-data --scale $(SCALE) --out $(DATA)

generate: $(STAMP)
	scripts/gen_proto.sh

lint: $(TEST_STAMP) node_modules/.installed $(WEB)/node_modules/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(CODE)
	node_modules/.bin/buf lint
	@# The contract only grows: no breaking change against the previous commit.
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
	  node_modules/.bin/buf breaking --against '.git#ref=HEAD~1'; fi
	scripts/check_generated.sh
	npm run --prefix $(WEB) --silent typecheck

test: lint
	$(PY) -m pytest

# Load benchmarks (figures, never timed tests): trains the bookcrossing demo artifact once
# into bench/data/ (one ALS study trial at RUN_GRID), runs every scenario of `python -m bench.load`
# and prints their markdown; JSON, markdown and plots go to bench/results/.
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) -m bench.load all --scale bookcrossing --als-grid '$(RUN_GRID)' $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules $(WEB)/node_modules $(WEB)/dist .mypy_cache .ruff_cache .pytest_cache
