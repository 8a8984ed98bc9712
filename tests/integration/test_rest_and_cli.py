"""REST answers, the admin CLI and process lifecycle, against a real agent process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agent.protocol import Info, Snapshot
from tests.helpers.agent import ROOT, free_port


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_health_needs_no_token_and_says_nothing_else(start_agent):
    agent = start_agent("--simulate", "gb10")
    r = httpx.get(agent.url + "/api/v1/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in r.headers


def test_no_cors_headers_even_when_a_page_asks(start_agent):
    """A browser sends Origin (and a preflight OPTIONS for a bearer token); no Access-Control-* answer may let it read."""
    agent = start_agent("--simulate", "gb10")
    origin = {"Origin": "https://evil.example"}
    answers = [
        httpx.get(agent.url + "/api/v1/health", headers=origin),
        httpx.get(agent.url + "/api/v1/snapshot", headers={**origin, **agent.headers(agent.read_token)}),
        httpx.options(
            agent.url + "/api/v1/snapshot",
            headers={**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
        ),
        httpx.options(agent.url + "/api/v1/containers/x/stop", headers={**origin, "Access-Control-Request-Method": "POST"}),
    ]
    assert [r.status_code for r in answers[:2]] == [200, 200]
    for r in answers:
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], (r.request.method, r.request.url, dict(r.headers))
    assert all(r.status_code >= 400 and "error" in r.json() for r in answers[2:])  # a preflight is not served either


def test_snapshot_and_info(start_agent):
    agent = start_agent("--simulate", "h100", "--interval", "0.2")
    h = agent.headers(agent.read_token)
    snap = httpx.get(agent.url + "/api/v1/snapshot", headers=h)
    assert snap.status_code == 200
    Snapshot.model_validate(snap.json())
    info = httpx.get(agent.url + "/api/v1/info", headers=h).json()
    Info.model_validate(info)
    assert info["protocol_version"] == 1 and info["simulated"] is True
    assert info["gpu_status"]["state"] == "ok" and info["latest_seq"] >= 1


@pytest.mark.parametrize("path", ["/api/v1/snapshot", "/api/v1/info"])
@pytest.mark.parametrize("token,status", [(None, 401), ("sdk_nope", 401), ("", 401)])
def test_read_routes_need_a_valid_token(start_agent, path, token, status):
    agent = start_agent("--simulate", "gb10")
    r = httpx.get(agent.url + path, headers=agent.headers(token))
    assert r.status_code == status
    assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"


def test_unknown_route_and_method_are_json(start_agent):
    agent = start_agent("--simulate", "gb10")
    r = httpx.get(agent.url + "/api/v1/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = httpx.post(agent.url + "/api/v1/health")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize("host", ["evil.example", "attacker.com:8611", "spark.rebind.network"])
def test_dns_rebinding_host_headers_are_refused(start_agent, host):
    agent = start_agent("--simulate", "gb10")
    r = httpx.get(agent.url + "/api/v1/snapshot", headers={**agent.headers(agent.read_token), "Host": host})
    assert r.status_code == 400 and r.json()["error"] == "bad_host"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]:8611", "spark.lan"])
def test_expected_host_headers_are_served(start_agent, host):
    agent = start_agent("--simulate", "gb10", env={"SPARKDECK_ALLOWED_HOSTS": '["spark.lan"]'})
    r = httpx.get(agent.url + "/api/v1/health", headers={"Host": host})
    assert r.status_code == 200


def test_openapi_docs_served(start_agent):
    agent = start_agent("--simulate", "gb10")
    spec = httpx.get(agent.url + "/openapi.json").json()
    assert "/api/v1/snapshot" in spec["paths"] and "HTTPBearer" in json.dumps(spec)
    assert httpx.get(agent.url + "/docs").status_code == 200


def test_token_add_prints_token_last_and_list_never_shows_it(tmp_path):
    state = str(tmp_path)
    out = cli("token", "add", "laptop", "--scope", "control", "--state-dir", state)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("sdk_")
    listing = cli("token", "list", "--state-dir", state, "--json")
    assert json.loads(listing.stdout)[0]["name"] == "laptop" and token not in listing.stdout
    dup = cli("token", "add", "laptop", "--state-dir", state)
    assert dup.returncode == 2 and "exists" in dup.stderr and "Traceback" not in dup.stderr
    assert cli("token", "revoke", "laptop", "--state-dir", state).returncode == 0
    assert cli("token", "revoke", "laptop", "--state-dir", state).returncode == 2


def test_non_loopback_bind_is_refused_without_tls_or_insecure(tmp_path):
    out = cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), "--state-dir", str(tmp_path), "--simulate", "gb10", timeout=30)
    assert out.returncode == 2
    assert "refusing to listen on 0.0.0.0 without TLS" in out.stderr and "--insecure" in out.stderr


def test_insecure_flag_allows_non_loopback_bind(start_agent):
    agent = start_agent("--simulate", "gb10", "--host", "0.0.0.0", "--insecure")
    assert agent.listening_addresses() == {"0.0.0.0"}  # bound to every address, not loopback (which 127.0.0.1 reaches either way)
    assert httpx.get(f"http://127.0.0.1:{agent.port}/api/v1/health").status_code == 200


def test_bad_config_is_a_clear_error(tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text("interval_s = 0\n")
    out = cli("serve", "--config", str(cfg), "--state-dir", str(tmp_path))
    assert out.returncode == 2 and "interval_s" in out.stderr and "Traceback" not in out.stderr
    out = cli("serve", "--simulate", "rtx9090", "--state-dir", str(tmp_path))
    assert out.returncode == 2 and "unknown scenario" in out.stderr


def test_port_in_use_is_a_clear_error(start_agent, tmp_path):
    agent = start_agent("--simulate", "gb10")
    out = cli("serve", "--port", str(agent.port), "--state-dir", str(tmp_path), "--simulate", "gb10", timeout=30)
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{agent.port}" in out.stderr


@pytest.mark.parametrize("scenario,expect", [("gb10", "unified memory"), ("no-driver", "libnvidia-ml.so.1 not found")])
def test_doctor_reports_what_it_sees(tmp_path, scenario, expect):
    out = cli("doctor", "--simulate", scenario, "--state-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert expect in out.stdout
    assert "fix: create one: sparkdeck-agent token add" in out.stdout
    js = json.loads(cli("doctor", "--json", "--simulate", scenario, "--state-dir", str(tmp_path)).stdout)
    names = {c["name"] for c in js}
    assert {"nvml", "meminfo", "memory", "sensors", "docker", "state_dir", "tokens", "bind"} <= names
    assert "for models" in next(c["detail"] for c in js if c["name"] == "memory")


def test_sigterm_closes_streams_with_a_close_frame_and_exits_cleanly(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")

    async def watch() -> int | None:
        async with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token)) as conn:
            await conn.recv()
            agent.proc.send_signal(signal.SIGTERM)
            try:
                while True:
                    await asyncio.wait_for(conn.recv(), 10)
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None

    code = asyncio.run(watch())
    assert code in (1001, 1012)  # going away / service restart: a real close frame, not a dropped socket
    try:
        rc = agent.proc.wait(20)
    except subprocess.TimeoutExpired:
        raise AssertionError("agent did not exit after SIGTERM:\n" + agent.log()[-4000:]) from None
    assert rc == 0, agent.log()[-4000:]
    assert "Traceback" not in agent.log()


def test_log_never_contains_tokens(start_agent):
    agent = start_agent("--simulate", "gb10", "--log-level", "debug")
    httpx.get(agent.url + "/api/v1/snapshot", headers=agent.headers(agent.read_token))
    httpx.get(agent.url + "/api/v1/snapshot", headers=agent.headers(agent.control_token + "x"))
    time.sleep(0.5)
    agent.stop()
    assert agent.read_token not in agent.log() and agent.control_token not in agent.log()


def test_failed_auth_is_rate_limited_per_address(start_agent):
    agent = start_agent("--simulate", "gb10", env={"SPARKDECK_AUTH_FAIL_LIMIT": "5"})
    codes = [httpx.get(agent.url + "/api/v1/info", headers=agent.headers(f"sdk_guess{i}")).status_code for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    r = httpx.get(agent.url + "/api/v1/info", headers=agent.headers("sdk_guess7"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and r.json()["error"] == "rate_limited"
    # a valid token is always served: only failures are slowed (issue 12)
    assert httpx.get(agent.url + "/api/v1/info", headers=agent.headers(agent.read_token)).status_code == 200

    async def ws_status(token: str) -> int:
        from websockets.exceptions import InvalidStatus

        try:
            async with connect(agent.ws_url, additional_headers=agent.headers(token)):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(ws_status("sdk_guess8")) == 429  # the stream is behind the same limit
    assert asyncio.run(ws_status(agent.read_token)) == 101
    assert httpx.get(agent.url + "/api/v1/health").status_code == 200  # health stays open


def test_request_body_limit(start_agent):
    agent = start_agent("--simulate", "gb10", env={"SPARKDECK_MAX_BODY_BYTES": "2048"})
    r = httpx.post(agent.url + "/api/v1/health", content=b"x" * 4096)
    assert r.status_code == 413 and r.json()["error"] == "too_large"

    def chunks():
        for _ in range(10):
            yield b"y" * 1024

    # chunked (no Content-Length) to a route that reads its body: only counting the received bytes can refuse it
    h = {**agent.headers(agent.control_token), "Content-Type": "application/json"}
    r = httpx.post(agent.url + "/api/v1/models/vllm/start", headers=h, content=chunks())
    assert r.status_code == 413 and r.json()["error"] == "too_large", r.text


def test_the_agent_lifts_a_low_open_files_limit(start_agent):
    # systemd gives services a soft limit of 1,024; 500 stream clients and 100 containers'
    # kept stats files would run out of it
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= 4096, "this check needs a hard limit above the lowered soft one"
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        agent = start_agent("--simulate", "gb10")  # inherits the 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    limits = Path(f"/proc/{agent.proc.pid}/limits").read_text()
    line = next(ln for ln in limits.splitlines() if ln.startswith("Max open files"))
    assert int(line.split()[3]) == min(65536, hard)
