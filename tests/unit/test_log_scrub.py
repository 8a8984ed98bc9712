"""Secrets are masked in every log line, and masking stays linear in the line's length: a
container's 100 KB line of letters once held the agent's event loop for 8 minutes (the regex
retried an unbounded name prefix at every position), which hung every client."""

from __future__ import annotations

import time

import pytest

from agent.logs import scrub


@pytest.mark.parametrize(
    "line, shown, hidden",
    [
        ("HF_TOKEN=hf_abcdefghijk", "HF_TOKEN=***", "abcdefghijk"),
        ("export GITHUB_TOKEN=ghp_0123456789", "GITHUB_TOKEN=***", "ghp_0123456789"),
        ("NGC_API_KEY: nvapi-abcdefghijkl", "NGC_API_KEY: ***", "abcdefghijkl"),
        ("Authorization: Bearer sdk_0123456789abcdef", "Bearer ***", "0123456789abcdef"),
        ("my_password = hunter22", "my_password = ***", "hunter22"),
        ("token sdk_0123456789abcdef in a sentence", "sdk_***", "0123456789abcdef"),
    ],
)
def test_secrets_are_masked(line: str, shown: str, hidden: str) -> None:
    out = scrub(line)
    assert shown in out and hidden not in out


@pytest.mark.parametrize("line", ["a" * 1_000_000, "A_" * 500_000, ("x" * 60 + "TOKEN") * 15_000, " " * 1_000_000 + "x"])
def test_a_megabyte_line_is_scrubbed_in_linear_time(line: str) -> None:
    # a generous bound, not a speed check: the quadratic regex took ~500 s for a tenth of this
    started = time.monotonic()
    scrub(line)
    assert time.monotonic() - started < 5
