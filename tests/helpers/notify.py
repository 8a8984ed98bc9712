"""A real local HTTP receiver for Apprise's json:// URLs, and the agent.toml alert sections the alert tests write."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.helpers.agent import free_port


class Receiver:
    def __init__(self) -> None:
        self.mode = "ok"  # ok | 500 | hang
        self.got: list[tuple[str, dict]] = []
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits += 1
                if outer.mode == "hang":
                    time.sleep(8)
                    return
                if outer.mode == "500":
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.got.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alerts_toml(rules: list[dict], url: str, min_severity: str = "warning", extra: str = "") -> str:
    """agent.toml text: only these rules (no built-ins), notified to url."""

    def value(v: object) -> str:
        return json.dumps(v) if isinstance(v, str) else str(v)

    body = "".join("[[alerts.rule]]\n" + "".join(f"{k} = {value(v)}\n" for k, v in r.items()) for r in rules)
    return f'[alerts]\ndefaults = false\n{body}[notify]\nurls = [{json.dumps(url)}]\nmin_severity = "{min_severity}"\n{extra}\n'
