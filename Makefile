# sparkdeck: one command each for a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .state/demo
DEMO_PORT ?= 8611
SIMULATE ?= gb10

.PHONY: venv test test-fast test-service demo bench bench-client bench-fsync faults soak clean docker-image

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the unit layer only (no process, no engine): seconds
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# install-service and `sparkdeck setup` (over sshd) on a booted Debian 12 systemd (systemd-nspawn); root, 2.5-4 min with warm caches (plus ~1.5 min for a cold rootfs)
# in /var/cache/sparkdeck-test (rootfs tar, wheelhouse), which it builds when missing.
test-service: $(STAMP)
	SPARKDECK_BOOTED=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/booted

demo: $(STAMP)
	@bash scripts/demo.sh "$(BIN)" "$(DEMO_DIR)" "$(DEMO_PORT)" "$(SIMULATE)"

docker-image:
	bash scripts/docker-test-image.sh

clean:
	rm -rf $(VENV) .state .pytest_cache

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
