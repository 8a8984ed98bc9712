# sparkdeck: one command each for a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .state/demo
DEMO_PORT ?= 8611
SIMULATE ?= gb10

.PHONY: venv test demo bench bench-fsync faults soak clean docker-image

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	@bash scripts/demo.sh "$(BIN)" "$(DEMO_DIR)" "$(DEMO_PORT)" "$(SIMULATE)"

docker-image:
	bash scripts/docker-test-image.sh

clean:
	rm -rf $(VENV) .state .pytest_cache

bench: $(STAMP)
	$(BIN)/python bench/bench.py

bench-fsync: $(STAMP)
	$(BIN)/python bench/bench.py --fsync

faults: $(STAMP)
	$(BIN)/python -m pytest -q tests/faults

soak: $(STAMP)
	$(BIN)/python bench/soak.py
