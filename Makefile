# sparkdeck: one command each for a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .state/demo
DEMO_PORT ?= 8611
SIMULATE ?= gb10

.PHONY: venv test test-fast lint test-service demo bench bench-client bench-fsync faults soak clean docker-image constraints check-latest

# the tested set: constraints.txt pins every dependency to the versions CI ran (`make constraints` updates it)
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# regenerate constraints.txt: the newest versions pyproject.toml allows, resolved in a fresh venv
constraints:
	rm -rf .venv-constraints
	$(PY) -m venv .venv-constraints
	.venv-constraints/bin/pip install -q --upgrade pip
	.venv-constraints/bin/pip install -q -e '.[test]'
	{ echo "# The tested set: make venv and .ci/run install with -c constraints.txt. Regenerate with make constraints"; \
	  echo "# (a fresh venv, pip install -e '.[test]', pip freeze minus sparkdeck), then run the tests."; \
	  .venv-constraints/bin/pip freeze --exclude-editable | grep -vi '^sparkdeck'; } > constraints.txt
	rm -rf .venv-constraints

# the newest versions pyproject.toml allows, without constraints.txt, on the tests a new uvicorn/websockets breaks first
check-latest:
	PY=$(PY) bash scripts/check-latest.sh .venv-latest

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the unit layer only (no process, no engine): seconds
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# ruff (lint rules and format, chosen in pyproject.toml) and mypy (check_untyped_defs) over agent/, tui/, tests/, bench/;
# all three run even when one fails, and the target fails if any did
lint: $(STAMP)
	@rc=0; \
	$(BIN)/ruff check . || rc=1; \
	$(BIN)/ruff format --check . || rc=1; \
	$(BIN)/mypy || rc=1; \
	exit $$rc

# install-service and `sparkdeck setup` (over sshd) on a booted Debian 12 systemd (systemd-nspawn); root, 2.5-4 min with warm caches (plus ~1.5 min for a cold rootfs)
# in /var/cache/sparkdeck-test (rootfs tar, wheelhouse), which it builds when missing.
test-service: $(STAMP)
	SPARKDECK_BOOTED=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/booted

demo: $(STAMP)
	@bash scripts/demo.sh "$(BIN)" "$(DEMO_DIR)" "$(DEMO_PORT)" "$(SIMULATE)"

docker-image:
	bash scripts/docker-test-image.sh

clean:
	rm -rf $(VENV) .venv-latest .venv-constraints .state .pytest_cache .mypy_cache .ruff_cache

bench: $(STAMP)
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/client_bench.py

# the TUI's CPU per screen in a 160x48 tmux, btop beside it (needs tmux and btop); BENCH_CLIENT_SECONDS=15 for a quick run
bench-client: $(STAMP)
	$(BIN)/python bench/client_bench.py

bench-fsync: $(STAMP)
	$(BIN)/python bench/bench.py --fsync

faults: $(STAMP)
	$(BIN)/python -m pytest -q tests/faults

soak: $(STAMP)
	$(BIN)/python bench/soak.py
