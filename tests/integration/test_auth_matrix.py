"""Every route and both WebSockets x {no token, bad token, revoked, read, control}."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agent.auth import TokenStore

# The scope each route needs. A route missing here fails test_every_route_has_a_declared_scope,
# so a new route cannot ship without an auth decision.
ROUTES = {
    ("GET", "/api/v1/snapshot"): "read",
    ("GET", "/api/v1/info"): "read",
    ("GET", "/api/v1/containers"): "read",
    ("GET", "/api/v1/models"): "read",
    ("GET", "/api/v1/history"): "read",
    ("GET", "/api/v1/incidents"): "read",
    ("GET", "/api/v1/processes"): "read",
    ("POST", "/api/v1/processes/{pid}/signal"): "control",
    ("GET", "/metrics"): "read",
    ("POST", "/api/v1/containers/{id_or_name}/start"): "control",
    ("POST", "/api/v1/containers/{id_or_name}/restart"): "control",
    ("POST", "/api/v1/containers/{id_or_name}/stop"): "control",
    ("POST", "/api/v1/containers/{id_or_name}/remove"): "control",
    ("GET", "/api/v1/containers/{id_or_name}/logs"): "control",
    ("GET", "/api/v1/audit"): "control",
    ("POST", "/api/v1/models/{name}/start"): "control",
    ("POST", "/api/v1/models/{name}/stop"): "control",
    ("GET", "/api/v1/alerts"): "read",
    ("GET", "/api/v1/events"): "read",
    ("POST", "/api/v1/containers/{id_or_name}/watch"): "control",
    ("DELETE", "/api/v1/containers/{id_or_name}/watch"): "control",
}
# What an allowed token gets from each route with the test's inputs (a container and model that do not
# exist, an empty body): the route's own answer, so a 500 or a wrong code behind the auth check fails.
ALLOWED = (
    {route: 200 for route in ROUTES if route[0] == "GET"}
    | {route: 404 for route in ROUTES if "{id_or_name}" in route[1] or "{name}" in route[1]}
    | {("POST", "/api/v1/processes/{pid}/signal"): 422}
)  # {} lacks "signal": validated only after auth
PUBLIC = {("GET", "/api/v1/health")}
WEBSOCKETS = {"/api/v1/stream": "read", "/api/v1/containers/no-such-container/logs/stream": "control"}
WS_ALLOWED = {"/api/v1/stream": 101, "/api/v1/containers/no-such-container/logs/stream": 404}  # the handshake's answer past auth
KINDS = ("none", "bad", "revoked", "read", "control")


@pytest.fixture(scope="module")
def matrix_agent(tmp_path_factory):
    from tests.helpers.agent import launch_agent

    state = tmp_path_factory.mktemp("matrix")
    revoked = TokenStore(state / "tokens.json").add("gone", "control")
    agent = launch_agent(state, "--simulate", "gb10", env={"SPARKDECK_AUTH_FAIL_LIMIT": "0"})
    TokenStore(state / "tokens.json").revoke("gone")
    tokens = {"none": None, "bad": "sdk_" + "x" * 43, "revoked": revoked, "read": agent.read_token, "control": agent.control_token}
    yield agent, tokens
    agent.stop()


def expected(scope: str, kind: str, allowed: int) -> int:
    if kind in ("none", "bad", "revoked"):
        return 401
    if scope == "control" and kind == "read":
        return 403
    return allowed


def test_every_route_has_a_declared_scope(matrix_agent):
    agent, _ = matrix_agent
    spec = httpx.get(agent.url + "/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == set(ROUTES) | PUBLIC


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_http_route(matrix_agent, route, kind):
    agent, tokens = matrix_agent
    method, path = route
    url = agent.url + path.format(id_or_name="no-such-container", name="no-such-model", pid="1")
    params = {"metrics": "cpu.percent"} if path.endswith("/history") else None
    r = httpx.request(method, url, headers=agent.headers(tokens[kind]), params=params, json={} if method == "POST" else None, timeout=30)
    assert r.status_code == expected(ROUTES[route], kind, ALLOWED[route]), r.text
    if r.status_code >= 400:
        assert "error" in r.json()  # every refusal is JSON


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", sorted(WEBSOCKETS))
def test_websocket(matrix_agent, path, kind):
    agent, tokens = matrix_agent

    async def status() -> int:
        url = agent.ws_url.replace("/api/v1/stream", path)
        try:
            async with connect(url, additional_headers=agent.headers(tokens[kind]), open_timeout=10):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(status()) == expected(WEBSOCKETS[path], kind, WS_ALLOWED[path])


def test_health_is_public(matrix_agent):
    agent, _ = matrix_agent
    assert httpx.get(agent.url + "/api/v1/health").json() == {"status": "ok"}
