"""Run the app under uvicorn, with a log line and sd_notify READY=1 (agent/notify.py) once listening.

uvicorn owns the signals: SIGTERM/SIGINT stop accepting, close open streams with a
close frame, then the app's lifespan stops the sampler.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal
import socket
from collections.abc import Callable

import uvicorn

from agent.api.app import create_app
from agent.api.httpguard import KEEPALIVE_S, GuardedH11Protocol
from agent.api.wsfast import FanoutWebSocketProtocol
from agent.runtime import Agent

log = logging.getLogger("sparkdeck.server")


class AgentServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, agent: Agent, on_ready: list[Callable[[str], None]]):
        super().__init__(config)
        self.agent = agent
        self.on_ready = on_ready

    async def main_loop(self) -> None:
        # uvicorn polls every 0.1 s for a signal; an agent that idles between 1 Hz samples
        # wakes once a second instead (the Date header's own period) and at once on a signal
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0  # uvicorn refreshes the Date header when counter % 10 == 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame) -> None:
        if not self.should_exit:
            # a shutdown that hangs (a stuck driver call, a wedged engine socket) must not outlive
            # systemd's TimeoutStopSec: dump every thread's stack to the log and leave
            faulthandler.dump_traceback_later(SHUTDOWN_DEADLINE_S, exit=True)
        super().handle_exit(sig, frame)
        loop, wake = getattr(self, "_loop", None), getattr(self, "_wake", None)
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)  # a signal handler may not touch the loop directly
        # uvicorn re-raises the signal after its graceful shutdown; a SIGTERM that
        # shut down cleanly is a clean exit (status 0) for systemd and scripts.
        self.agent.notifier.stopping()
        if sig == signal.SIGTERM:
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        sock = self.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        scheme = "https" if self.config.is_ssl else "http"
        url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
        log.info("sparkdeck-agent listening on %s", url)
        self.agent.notifier.ready(f"listening on {url}")
        for hook in self.on_ready:
            hook(url)


# Kernel send buffer per connection. Linux autotunes it up to megabytes, which would
# let a stalled stream client sit minutes behind before the hub's latest-wins queue
# ever drops a frame; a fixed small buffer keeps a slow client's view fresh and the
# memory it can pin small. Accepted sockets inherit it from the listening socket.
SEND_BUFFER_BYTES = 64 * 1024
SHUTDOWN_DEADLINE_S = 12.0  # below the unit's TimeoutStopSec=15s


def raise_open_files_limit(want: int = 65536) -> int:
    """Lift the soft RLIMIT_NOFILE towards the hard one, as Go and nginx do; returns the soft limit.

    Every stream client is a socket and every running container keeps four stats files open,
    so the 1,024 a systemd service gets by default would run out near 500 clients and 100
    containers; the hard limit (524,288 under systemd) is the real bound.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft


def bind(config: uvicorn.Config) -> socket.socket:
    sock = config.bind_socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    return sock


def build_server(agent: Agent, *, on_ready: list[Callable[[str], None]] | None = None) -> AgentServer:
    s = agent.settings
    # `kill -USR1 PID` writes every thread's stack to the log (the journal under systemd) and the
    # agent goes on: the way to see where a hung agent is stuck (without it, USR1 would kill it)
    with contextlib.suppress(ValueError, AttributeError, RuntimeError):
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
    config = uvicorn.Config(
        create_app(agent),
        host=s.host,
        port=s.port,
        ws=FanoutWebSocketProtocol,  # websockets-sansio, plus one-write fan-out of snapshot frames
        # h11 with a header deadline (slowloris) and the max_connections cap, whatever else is installed
        http=type("AgentHttpProtocol", (GuardedH11Protocol,), {"max_connections": s.max_connections}),
        timeout_keep_alive=KEEPALIVE_S,
        ws_max_size=s.max_message_bytes,
        # permessage-deflate compresses every frame once per client: profiling showed it at 45 %
        # of the agent's CPU with 100 clients, undoing "encode once". Frames are ~4 KB.
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(s.tls_files[0]) if s.tls_enabled else None,
        ssl_keyfile=str(s.tls_files[1]) if s.tls_enabled else None,
    )
    return AgentServer(config, agent, on_ready or [])
