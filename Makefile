# coatcheck: `make demo` and `make test` do all their own set-up on a new machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
LATEST := .venv-latest
LOCK := requirements.lock
STAMPS := .stamps
SOURCES := core proxy sandbox runner vault images examples tests

.PHONY: clients demo test test-fast test-latest bench bench-serve lint images images-claude-code browser docker venv lock clean

demo: venv images ## vault a demo secret and run a sandboxed curl through the proxy
	$(PY) -I examples/demo.py

test: venv images browser clients lint ## lint, then every test; fails if the Docker or browser tier could not run
	COATCHECK_REQUIRE_DOCKER=1 COATCHECK_REQUIRE_BROWSER=1 $(PY) -m pytest -q
	@echo "the attacks again, against shared proxies of two worker processes:"
	COATCHECK_TEST_WORKERS=2 COATCHECK_REQUIRE_DOCKER=1 $(PY) -m pytest -q tests/security

test-fast: venv ## the pure, vault and proxy tiers only (no Docker engine needed)
	$(PY) -m pytest -q -m "not docker"

# Drift check: the newest versions pyproject.toml allows, not the lock (CI runs it after `test`).
test-latest: images
	@test -x $(LATEST)/bin/python || $$(images/find-python.sh) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST)/bin/python -m pip freeze --exclude-editable | grep -iE '^(mitmproxy|docker|cryptography|keyring|structlog|click|idna|brotli|backports.zstd|certifi|requests)==' | tr '\n' ' '; echo
	COATCHECK_REQUIRE_DOCKER=1 $(LATEST)/bin/python -m pytest -q

# `make bench BENCH_ARGS=--quick` for a smoke run; writes artifacts/bench.md and bench.json.
bench: venv images ## start-up, CLI CPU, keep-alive (1 and 4 runs), SSE, bulk, proxy memory: ratios vs targets
	$(PY) tests/bench/bench.py $(BENCH_ARGS)

bench-serve: venv ## scheduler CPU and fire lateness at 10,000 deployments; history queries on 1,000,000 runs
	$(PY) tests/bench/bench_serve.py

lint: venv
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy

venv: $(STAMPS)/venv

# Installs exactly the versions in requirements.lock (refresh it with `make lock`).
$(STAMPS)/venv: pyproject.toml $(LOCK)
	@mkdir -p $(STAMPS)
	@test -x $(PY) || { py=$$(images/find-python.sh) && echo "creating $(VENV) with $$py" && $$py -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev]'
	@touch $@

lock: venv ## re-resolve requirements.lock from pyproject.toml (newest allowed versions)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.12 \
	    --no-header --quiet -o $(LOCK)
	@echo "updated $(LOCK); run 'make test' before committing it"

docker:
	@images/ensure-docker.sh

images: venv docker
	@command -v debootstrap >/dev/null || { echo "installing debootstrap..."; apt-get install -y -qq debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }; }
	$(VENV)/bin/coatcheck images build

browser: ## Debian's chromium and chromedriver, for the web console's browser tests
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { echo "installing chromium and chromium-driver..."; apt-get install -y -qq chromium chromium-driver >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }; }

clients: ## Node and Go, for the test image of clients that ignore proxy variables
	@command -v node >/dev/null && command -v go >/dev/null || { echo "installing nodejs and golang-go..."; apt-get install -y -qq nodejs golang-go >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs golang-go >/dev/null; }; }

images-claude-code: images ## the Claude Code image (about 400 MB; built only on request)
	$(VENV)/bin/coatcheck images build claude-code

clean:
	rm -rf $(VENV) $(LATEST) $(STAMPS)
	-docker rm -f $$(docker ps -aq --filter label=org.coatcheck.run) 2>/dev/null
