"""Prometheus' own lint over a /metrics answer: `promtool check metrics` (apt `prometheus`)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def promtool_check(text: str) -> None:
    """Fails on what promtool reports; skips LOUDLY without promtool, fails instead under CI (.ci/run installs it)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "PROMTOOL CHECK NOT RUN: promtool is not installed (apt-get install prometheus)"
        if os.environ.get("SPARKDECK_REQUIRE_PROMTOOL") == "1":
            pytest.fail(message + "; SPARKDECK_REQUIRE_PROMTOOL=1 makes this a failure", pytrace=False)
        pytest.skip(message)
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    print("promtool check metrics: ok")
