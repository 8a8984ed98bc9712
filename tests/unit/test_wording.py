"""The client's words: state lines said once, names never repeated, socket errors in plain words."""

from __future__ import annotations

from tui import client as c
from tui.format import ago, state_words


def test_state_words_never_double_a_phrase() -> None:
    assert state_words("stopped", "stopped on request") == "stopped on request"
    assert state_words("failed", "the container exited with code 1", 1) == "failed: the container exited with code 1"
    assert state_words("failed", "container exited", 1) == "failed: container exited (exit code 1)"
    assert state_words("idle", None) == "idle"


def test_repeated_target_names_are_numbered() -> None:
    assert c.unique_labels(["spark", "h200", "h200", "h200"]) == ["spark", "h200", "h200 #2", "h200 #3"]


def test_socket_errors_read_as_words() -> None:
    url = "http://10.0.0.7:8611"
    assert c._short_error(ConnectionRefusedError(111, "Connect call failed"), url).startswith("connection refused: nothing listens on 10.0.0.7:8611")
    joined = OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 1), [Errno 99] Cannot assign")
    assert "Errno" not in c._short_error(joined, url)
    assert c._short_error(TimeoutError(), url) == "timed out: no answer from 10.0.0.7:8611"
    assert ago(190) == "3m ago" and ago(5) == "5s ago"
