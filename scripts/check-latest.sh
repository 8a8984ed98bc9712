#!/usr/bin/env bash
# `make check-latest`: install the newest versions pyproject.toml allows (no constraints.txt) into a
# second venv and run the tests that exercise what a new release breaks first: agent/api/wsfast.py
# subclasses uvicorn's websockets protocol, the stream and the client ride on websockets.
# Fails with the versions that differ from constraints.txt, so a break reads as "bump or bound X".
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
VENV=${1:-.venv-latest}

rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
if ! "$VENV/bin/pip" install -q -U --upgrade-strategy eager -e '.[test]'; then
  echo "check-latest: FAILED: the newest allowed versions do not install (pip above says which)" >&2
  exit 1
fi

# what differs from the tested set, as "name: pinned -> newest"
newer=$("$VENV/bin/pip" freeze --exclude-editable | "$PY" -c '
import sys
pins = dict(l.strip().split("==", 1) for l in open("constraints.txt") if "==" in l and not l.startswith("#"))
now = dict(l.strip().split("==", 1) for l in sys.stdin if "==" in l)
key = lambda n: n.lower().replace("_", "-")
pinned = {key(n): v for n, v in pins.items()}
for name, v in sorted(now.items(), key=lambda kv: key(kv[0])):
    if pinned.get(key(name)) != v:
        print("  %s: %s -> %s" % (name, pinned.get(key(name), "(not pinned)"), v))
')
echo "check-latest: versions newer than constraints.txt:"
echo "${newer:-  (none)}"

"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/unit tests/integration/test_stream.py tests/integration/test_bench_reader.py tests/integration/test_client.py
rc=$?
if [ $rc -ne 0 ]; then
  echo "check-latest: FAILED with the newest versions pyproject.toml allows; the tested set (constraints.txt) differs in:" >&2
  echo "${newer:-  (nothing: the failure is not a version change)}" >&2
  echo "check-latest: fix the code for them, or bound the dependency in pyproject.toml below the breaking release" >&2
  exit $rc
fi
echo "check-latest: ok"
