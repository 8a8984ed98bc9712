"""The terminal driver: Textual's Linux driver, with an input thread that sleeps until there is something to read.

Textual's input thread wakes every 0.1 s (``select(0.1)``) to see whether it should stop and whether a lone
Escape has waited long enough to be a key. Ten wake-ups a second, each taking the GIL, cost 0.13 % of a
core on the fleet overview (measured per thread from /proc) — as much as a tenth of the client's whole CPU
there, and two thirds of what an idle Textual app costs. Here the thread waits on the terminal, on a pipe
that stopping writes to, and on the parser's own deadline when an escape sequence is half read: it wakes
for a key, for a stop, or for an Escape, and otherwise not at all.

Everything else (terminal modes, the writer thread, resize, suspend and resume) is Textual's own.
"""

from __future__ import annotations

import os
import selectors
import threading
from codecs import getincrementaldecoder

from textual._parser import ParseError
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver


class WakingEvent(threading.Event):
    """The driver's ``exit_event``: setting it also wakes a thread asleep in ``select`` on ``fileno()``.

    Textual's driver stops its input thread by setting this event and joining the thread; the write makes
    that join immediate instead of waiting for a timeout. The pipe is non-blocking: if it is full, the
    thread already has a wake-up waiting."""

    def __init__(self) -> None:
        super().__init__()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    def fileno(self) -> int:
        return self._read_fd

    def set(self) -> None:
        super().set()
        try:
            os.write(self._write_fd, b"\0")
        except BlockingIOError:  # full: a wake-up is already pending
            pass
        except OSError:  # closed with the driver: nothing left to wake
            pass

    def clear(self) -> None:
        super().clear()
        self.drain()

    def drain(self) -> None:
        try:
            while os.read(self._read_fd, 512):
                pass
        except OSError:  # empty (BlockingIOError), or closed
            pass

    def close(self) -> None:
        fds, self._read_fd, self._write_fd = (self._read_fd, self._write_fd), -1, -1  # once: a number may be reused
        for fd in fds:
            if fd >= 0:
                os.close(fd)


def parse_timeout(parser: XTermParser) -> float | None:
    """How long the input thread may sleep: until the parser's deadline for a half-read escape sequence (a lone
    Escape becomes the escape key when it passes), or for ever when nothing is pending."""
    deadline = parser._timeout_time  # Textual 8.2.8's Parser: set while an escape sequence awaits its next byte
    return None if deadline is None else max(0.0, deadline - get_time())


class QuietLinuxDriver(LinuxDriver):
    """``LinuxDriver`` whose input thread sleeps until a key, a stop, or the parser's escape deadline."""

    exit_event: WakingEvent

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exit_event = WakingEvent()

    def close(self) -> None:
        super().close()
        self.exit_event.close()

    def run_input_thread(self) -> None:
        """Textual's ``run_input_thread`` (8.2.8), with ``select(0.1)`` replaced by a select that also watches
        the exit event's pipe and times out only at the parser's deadline."""
        exit_event = self.exit_event
        selector = selectors.SelectSelector()
        fileno = self.fileno
        selector.register(fileno, selectors.EVENT_READ)
        selector.register(exit_event.fileno(), selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode
        reading = True
        try:
            while not exit_event.is_set():
                for key, _mask in selector.select(parse_timeout(parser)):
                    if key.fd != fileno:
                        continue  # the exit event's pipe: the loop's test sees it
                    raw = os.read(fileno, 1024 * 4)
                    if not raw:  # end of input (stdin not a terminal): stop reading it rather than spin on it
                        selector.unregister(fileno)
                        reading = False
                        break
                    data = decode(raw)  # "" for the first bytes of a character split across reads: the rest follows
                    for event in parser.feed(data) if data else ():
                        self.process_message(event)
                for event in parser.tick():
                    self.process_message(event)
            if reading:
                selector.unregister(fileno)
            for event in parser.tick():
                self.process_message(event)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass
