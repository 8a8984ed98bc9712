"""Image pulls on a real engine from a tiny local registry: progress frames, then ready; and a
registry that wants a login. Docker treats 127.0.0.0/8 registries as plain-HTTP by default."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.protocol import PullProgress
from tests.helpers.agent import free_port
from tests.helpers.calls import call, model_state, next_frame, open_stream, wait_for

pytestmark = pytest.mark.docker


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """Registry API v2, read-only, one image under any name; or 401 for everything (needs_login)."""

    def __init__(self, image_tar: bytes, needs_login: bool = False):
        with tarfile.open(fileobj=io.BytesIO(image_tar)) as tar:

            def member(name: str) -> bytes:
                f = tar.extractfile(name)
                assert f is not None, f"{name} is not a file in the image tar"
                return f.read()

            manifest = json.loads(member("manifest.json"))[0]
            config = json.loads(member(manifest["Config"]))
            base = member(manifest["Layers"][0])
        # a second layer the engine cannot have yet (random bytes), so it is really downloaded
        extra = io.BytesIO()
        with tarfile.open(fileobj=extra, mode="w") as t:
            payload = os.urandom(1_500_000)
            info = tarfile.TarInfo(f"sdtest-{uuid.uuid4().hex}")
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
        layers = [base, extra.getvalue()]
        config["rootfs"]["diff_ids"] = [_digest(x) for x in layers]
        config["history"] = (config.get("history") or [{"created": config["created"]}])[:1] + [
            {"created": config["created"], "created_by": "sparkdeck test layer"}
        ]
        config_bytes = json.dumps(config).encode()
        gz = [gzip.compress(x, compresslevel=1) for x in layers]
        self.blobs = {_digest(config_bytes): config_bytes, **{_digest(x): x for x in gz}}
        self.layer_bytes = sum(len(x) for x in gz)
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config_bytes), "digest": _digest(config_bytes)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(x), "digest": _digest(x)} for x in gz],
            }
        ).encode()
        self.needs_login = needs_login
        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        reg = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str, digest: str | None = None, slow: bool = False) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                if code == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="sparkdeck-test"')
                self.end_headers()
                if self.command == "HEAD":
                    return
                step = max(1, len(body) // 12) if slow else len(body) or 1
                for i in range(0, len(body), step):  # slow enough for the engine to report progress
                    self.wfile.write(body[i : i + step])
                    self.wfile.flush()
                    if slow:
                        time.sleep(0.1)

            def do_GET(self) -> None:
                if reg.needs_login:
                    return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', "application/json")
                path = self.path.split("?")[0]
                if path == "/v2/":
                    return self._send(200, b"{}", "application/json")
                if "/manifests/" in path:
                    return self._send(200, reg.manifest, "application/vnd.docker.distribution.manifest.v2+json", _digest(reg.manifest))
                if "/blobs/" in path:
                    digest = path.rsplit("/", 1)[1]
                    if digest in reg.blobs:
                        blob = reg.blobs[digest]
                        return self._send(200, blob, "application/octet-stream", digest, slow=len(blob) > 100_000)
                self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}', "application/json")

            do_HEAD = do_GET

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def image_tar(docker_engine) -> bytes:
    import subprocess

    return subprocess.run(["docker", "save", docker_engine.image], capture_output=True, check=True, timeout=120).stdout


@pytest.fixture
def registry(image_tar) -> Iterator[FakeRegistry]:
    reg = FakeRegistry(image_tar)
    yield reg
    reg.close()


def _catalog(tmp_path: Path, image: str, port: int) -> Path:
    f = tmp_path / "models.toml"
    f.write_text(f'''
[[model]]
name = "sdtest-pulled"
image = "{image}"
command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
ports = {{ "8080/tcp" = {port} }}
health = {{ port = "8080/tcp", path = "/health" }}
startup_timeout_s = 60
''')
    return f


async def test_missing_image_is_pulled_with_progress_then_ready(docker_engine, registry, start_agent, tmp_path: Path) -> None:
    image = f"{registry.host}/sdtest/pulled-{uuid.uuid4().hex[:8]}:1"
    agent = start_agent("--simulate", "gb10", "--models", str(_catalog(tmp_path, image, free_port())))
    frames: list[dict] = []
    try:
        async with open_stream(agent) as ws:
            await next_frame(ws, lambda f: f["type"] == "hello", 10, "hello")  # read: the stream is in the hub, the first broadcast reaches it
            r = call(agent, "POST", "/api/v1/models/sdtest-pulled/start", agent.control_token)
            assert r.status_code == 202 and r.json()["state"] == "pulling", r.text
            await next_frame(ws, lambda f: frames.append(f) or (f.get("type") == "model_state" and f["state"] in ("ready", "failed")), 120, "ready")
        states = [f["state"] for f in frames if f.get("type") == "model_state"]
        assert states == ["pulling", "starting", "ready"], frames[-1]
        progress = [f for f in frames if f.get("type") == "pull_progress"]
        for f in progress:
            PullProgress.model_validate(f)
            assert f["model"] == "sdtest-pulled" and f["image"] == image
        moving = [f for f in progress if f["current_bytes"] and f["total_bytes"]]
        assert moving, progress
        assert all(f["current_bytes"] <= f["total_bytes"] for f in moving)
        assert progress[-1]["status"] == "pulled"
        assert progress[-1]["current_bytes"] == progress[-1]["total_bytes"] == registry.layer_bytes
        assert model_state(agent, "sdtest-pulled")["state"] == "ready"
    finally:
        docker_engine.cli("rm", "-f", "sparkdeck-sdtest-pulled", check=False)
        docker_engine.cli("rmi", image, check=False)


async def test_registry_that_wants_a_login_says_so(docker_engine, image_tar, start_agent, tmp_path: Path) -> None:
    reg = FakeRegistry(image_tar, needs_login=True)
    try:
        image = f"{reg.host}/private/model:1"
        agent = start_agent("--simulate", "gb10", "--models", str(_catalog(tmp_path, image, free_port())))
        r = call(agent, "POST", "/api/v1/models/sdtest-pulled/start", agent.control_token)
        assert r.status_code == 202 and r.json()["state"] == "pulling"
        failed = wait_for(lambda: (s := model_state(agent, "sdtest-pulled"))["state"] == "failed" and s, 60, "pull failure")
        assert f"the registry {reg.host} needs a login" in failed["message"]
        assert f"docker login {reg.host}" in failed["message"]
        assert docker_engine.cli("ps", "-aq", "--filter", "name=^/sparkdeck-sdtest-pulled$") == ""
    finally:
        reg.close()
