# coatcheck: `make demo` and `make test` do all their own set-up on a new machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps

.PHONY: demo test bench lint images docker venv clean

demo: venv images ## vault a demo secret and run a sandboxed curl through the proxy
	$(PY) -m runner.demo

test: venv images lint ## lint, then every test, the Docker ones included
	$(PY) -m pytest -q

bench: venv images ## proxy throughput/latency and run start-up ratios
	$(PY) tests/bench/bench.py

lint: venv
	$(VENV)/bin/ruff check proxy sandbox runner vault tests
	$(VENV)/bin/ruff format --check proxy sandbox runner vault tests
	$(VENV)/bin/mypy

venv: $(STAMPS)/venv

$(STAMPS)/venv: pyproject.toml
	@mkdir -p $(STAMPS)
	@test -x $(PY) || { py=$$(images/find-python.sh) && echo "creating $(VENV) with $$py" && $$py -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

docker:
	@images/ensure-docker.sh

images: docker
	@command -v debootstrap >/dev/null || { echo "installing debootstrap..."; apt-get install -y -qq debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }; }
	@images/sandbox/build.sh

clean:
	rm -rf $(VENV) $(STAMPS)
	-docker rm -f $$(docker ps -aq --filter label=org.coatcheck.run) 2>/dev/null
