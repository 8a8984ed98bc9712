"""The forward key: in the Models screen of an agent reached over SSH, `f` forwards the model's
port through the user's ssh and copies a local URL that answers (real sshd, real agent)."""

from __future__ import annotations

import http.server
import threading

import httpx
from textual.widgets import DataTable

from tests.helpers.agent import free_port
from tests.helpers.tui import until
from tui.app import SparkdeckApp
from tui.client import Target
from tui.screens.models import ModelsScreen
from tui.transport import prepare


async def test_forward_key_over_ssh(sshd, start_agent, tmp_path, monkeypatch):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "health").write_text("ready\n")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "www"), **k)  # noqa: E731
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    catalog = tmp_path / "models.toml"
    catalog.write_text(f'[[model]]\nname = "web"\nimage = "x/y:1"\nports = {{ "80/tcp" = {port} }}\n')
    agent = start_agent("--simulate", "gb10", "--models", str(catalog))
    prepared = prepare(Target("spark", f"ssh://spark?agent_port={agent.port}", agent.read_token))
    copied: list[str] = []
    try:
        app = SparkdeckApp([prepared.target])
        monkeypatch.setattr(app, "copy_to_clipboard", copied.append)  # no terminal clipboard under the test runner
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: app.clients[0].latest is not None, what="first frame")
            await pilot.press("m")
            assert isinstance(app.screen, ModelsScreen)
            screen = app.screen
            await until(pilot, lambda: any(e["name"] == "web" for e in screen.catalog), what="catalog")
            table = screen.query_one(DataTable)
            table.move_cursor(row=table.get_row_index("web"))
            await pilot.press("f")
            await until(pilot, lambda: copied, timeout=20, what="forwarded URL")
            assert copied[0].startswith("http://127.0.0.1:") and not copied[0].endswith(f":{port}")
            assert httpx.get(copied[0] + "/health").text == "ready\n"  # through the SSH forward
            client = app.clients[0]
        assert client._forwards == {}  # closed with the app
    finally:
        prepared.close()
        server.shutdown()
