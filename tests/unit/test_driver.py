"""The terminal driver (tui/driver.py): its input thread reads keys from a real pseudo-terminal, still turns a
lone Escape into the escape key, stops at once when told to, and sleeps between keys — where Textual's own
wakes ten times a second."""

from __future__ import annotations

import asyncio
import os
import pty
import queue
import select
import threading
import time
import tty

import pytest
from textual import constants, events
from textual.drivers.linux_driver import LinuxDriver

from tests.helpers.terminal import thread_wakeups
from tui.app import SparkdeckApp
from tui.driver import QuietLinuxDriver, WakingEvent


def wakeups(thread: threading.Thread) -> int:
    assert thread.native_id is not None
    return thread_wakeups(os.getpid(), thread.native_id)


class InputThread:
    """A driver's input thread (as ``start_application_mode`` runs it) reading the slave end of a new pty;
    what it would post to the app is collected instead."""

    def __init__(self, driver_class: type[LinuxDriver]):
        self.master, slave = pty.openpty()
        tty.setraw(slave)  # as the driver's start_application_mode leaves the terminal: keys, not lines
        self.events: queue.Queue = queue.Queue()
        got = self.events

        class Recording(driver_class):  # type: ignore[valid-type,misc]
            def process_message(self, message) -> None:
                got.put(message)

        async def build() -> LinuxDriver:  # a driver wants a running loop
            return Recording(app=None)

        self.driver = asyncio.run(build())
        self.slave = slave
        self.driver.fileno = slave
        self.thread = threading.Thread(target=self.driver.run_input_thread, daemon=True)
        self.thread.start()

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def next_key(self, timeout: float = 5.0) -> str:
        while True:
            event = self.events.get(timeout=timeout)
            if isinstance(event, events.Key):
                return event.key

    def stop(self) -> None:
        self.driver.exit_event.set()
        self.thread.join(5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def quiet():
    it = InputThread(QuietLinuxDriver)
    yield it
    if it.thread.is_alive():
        it.stop()


def test_keys_typed_into_the_terminal_arrive(quiet):
    quiet.type(b"a")
    assert quiet.next_key() == "a"
    quiet.type(b"\x1b[A")  # an arrow key: a whole escape sequence
    assert quiet.next_key() == "up"


def test_a_character_split_across_reads_arrives_and_reading_goes_on(quiet):
    """The decoder holds the first byte of "é" and gives "" for it: that is not the end of input."""
    quiet.type("é".encode()[:1])
    time.sleep(0.2)  # read on its own
    quiet.type("é".encode()[1:])
    assert quiet.next_key() == "é"
    quiet.type(b"a")
    assert quiet.next_key() == "a"


def test_a_lone_escape_becomes_the_escape_key(quiet):
    """Only the parser's deadline tells Escape from the start of a sequence: the thread must wake for it."""
    quiet.type(b"\x1b")
    assert quiet.next_key() == "escape"
    quiet.type(b"q")
    assert quiet.next_key() == "q"


def test_setting_the_exit_event_stops_the_thread_at_once_and_a_new_thread_reads_on(quiet):
    time.sleep(0.2)  # asleep in select, with nothing to read and no deadline
    quiet.driver.exit_event.set()
    quiet.thread.join(2)
    assert not quiet.thread.is_alive()
    quiet.driver.exit_event.clear()  # as disable_input does; a resume (after ctrl+z) starts a new thread
    assert select.select([quiet.driver.exit_event.fileno()], [], [], 0)[0] == []  # the stop's wake-up drained: no spin
    quiet.thread = threading.Thread(target=quiet.driver.run_input_thread, daemon=True)
    quiet.thread.start()
    quiet.type(b"r")
    assert quiet.next_key() == "r"


def test_the_thread_sleeps_between_keys(quiet):
    time.sleep(0.3)
    before = wakeups(quiet.thread)
    time.sleep(1.5)
    assert wakeups(quiet.thread) - before <= 1
    quiet.type(b"x")  # and still wakes for a key
    assert quiet.next_key() == "x"


def test_textuals_own_input_thread_wakes_ten_times_a_second():
    """The premise: should a Textual release stop polling, this fails and tui/driver.py can go."""
    it = InputThread(LinuxDriver)
    try:
        time.sleep(0.3)
        before = wakeups(it.thread)
        time.sleep(1.5)
        assert wakeups(it.thread) - before >= 8
    finally:
        it.stop()


def test_the_exit_events_pipe_never_blocks_the_setter():
    event = WakingEvent()
    try:
        for _ in range(70_000):  # more wake-ups than a pipe holds: the extra ones are dropped, not waited on
            event.set()
        event.clear()
        assert not event.is_set()
        with pytest.raises(BlockingIOError):
            os.read(event.fileno(), 1)  # drained
    finally:
        event.close()
    event.close()  # twice: the second closes nothing (the numbers may belong to another file by then)
    event.set()  # and a stop after the driver closed wakes nothing, quietly


def test_the_app_runs_on_the_quiet_driver_unless_textual_driver_says_otherwise(monkeypatch):
    app = SparkdeckApp(connect=False)
    assert app.get_driver_class() is QuietLinuxDriver
    monkeypatch.setattr(constants, "DRIVER", "textual.drivers.linux_driver:LinuxDriver")
    assert app.get_driver_class() is LinuxDriver
