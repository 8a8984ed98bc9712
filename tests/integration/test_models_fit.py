"""The launch fit check on a real agent (--simulate gb10: unified memory) and a real Docker engine.

The check reads this machine's real /proc/meminfo, so every claim here is chosen relative
to what the test reads at its start, with margins wide enough for other tests' containers
allocating meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from agent.collectors.memory import GIB, read_memory
from agent.protocol import ModelState
from tests.helpers.agent import free_port
from tests.helpers.calls import call, model_state, next_frame, open_stream, wait_for
from tests.helpers.tui import select_model, until
from tui.app import SparkdeckApp
from tui.client import Target
from tui.screens.confirm import ConfirmScreen
from tui.screens.launch import LaunchScreen

pytestmark = pytest.mark.docker

IMAGE = "sparkdeck-test/busybox:latest"
NAMES = ("small", "huge", "auto", "capped", "first", "second")


def _catalog(first_gib: float, web_port: int, second_port: int) -> str:
    return f'''
[[model]]
name = "sdfit-small"
image = "{IMAGE}"
command = ["sleep", "300"]
memory = {{ gib = 0.5 }}

[[model]]
name = "sdfit-huge"
image = "{IMAGE}"
command = ["sleep", "300"]
memory = {{ gib = 4096 }}

[[model]]
name = "sdfit-auto"
image = "{IMAGE}"
command = ["env", "UTIL={{util}}", "sleep", "300"]
params = {{ util = "auto" }}
memory = {{ fraction_param = "util" }}

[[model]]
name = "sdfit-capped"
image = "{IMAGE}"
command = ["env", "UTIL={{util}}", "sleep", "300"]
params = {{ util = "auto" }}
memory = {{ fraction_param = "util", max_fraction = 0.2 }}

# stays "starting" (its health URL never answers): its claim is pending the whole test
[[model]]
name = "sdfit-first"
image = "{IMAGE}"
command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
ports = {{ "8080/tcp" = {web_port} }}
health = {{ port = "8080/tcp", path = "/never-there" }}
memory = {{ gib = {first_gib:.2f} }}

[[model]]
name = "sdfit-second"
image = "{IMAGE}"
command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
ports = {{ "8080/tcp" = {second_port} }}
health = {{ port = "8080/tcp", path = "/never-there" }}
memory = {{ gib = {first_gib:.2f} }}

[[model]]
name = "sdfit-bad-both"
image = "{IMAGE}"
params = {{ util = "auto" }}
memory = {{ gib = 1, fraction_param = "util" }}
'''


def _names(docker_engine, *models: str) -> str:
    return docker_engine.cli("ps", "-aq", *[a for m in models for a in ("--filter", f"name=^/sparkdeck-sdfit-{m}$")])


@pytest.fixture
def fit_agent(docker_engine, start_agent, tmp_path: Path):
    """An agent whose reserve leaves about 40 % of this machine's memory for models."""
    mem = read_memory()
    assert mem is not None
    target = int(0.4 * mem["total_bytes"])
    reserve_gib = max(mem["available_bytes"] - target, 0) / GIB
    models = tmp_path / "models.toml"
    first_gib = 0.6 * (mem["available_bytes"] - reserve_gib * GIB) / GIB  # two of these cannot both fit
    models.write_text(_catalog(first_gib, free_port(), free_port()))
    agent = start_agent("--simulate", "gb10", "--interval", "0.25", "--models", str(models), env={"SPARKDECK_MEMORY__RESERVE_GIB": f"{reserve_gib:.3f}"})
    agent.reserve_bytes = int(float(f"{reserve_gib:.3f}") * GIB)
    agent.total_bytes = mem["total_bytes"]
    agent.first_gib = first_gib
    yield agent
    docker_engine.cli("rm", "-f", *[f"sparkdeck-sdfit-{m}" for m in NAMES], check=False)


def _start(agent, name: str, token: str | None = None, **body) -> httpx.Response:
    return call(agent, "POST", f"/api/v1/models/{name}/start", token or agent.control_token, json=body or None)


def _free_now(agent) -> int:
    mem = read_memory(reserve=agent.reserve_bytes)
    assert mem is not None
    return mem["models_available_bytes"]


async def test_fits_refused_and_forced(docker_engine, fit_agent) -> None:
    agent = fit_agent
    r = _start(agent, "sdfit-small")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["claim_bytes"] == GIB // 2 and body["memory_fit"]["checked"] and body["memory_fit"]["fits"]
    wait_for(lambda: model_state(agent, "sdfit-small")["state"] == "ready", 30, "small ready")

    r = _start(agent, "sdfit-huge")
    assert r.status_code == 409, r.text
    err = r.json()
    assert err["error"] == "insufficient_memory" and set(err) >= {"detail", "needed_bytes", "free_bytes", "holders"}
    assert err["needed_bytes"] == 4096 * GIB and err["free_bytes"] < err["needed_bytes"]
    assert abs(err["free_bytes"] - _free_now(agent)) < 3 * GIB  # the agent read the real figure, not a stale one
    assert "4096.0 GiB" in err["detail"] and '"force": true' in err["detail"]
    # which running containers hold the most: GPU memory first, then RSS (sdfit-small runs, so there is one)
    holders = err["holders"]
    assert 1 <= len(holders) <= 3
    keys = [(h["gpu_memory_bytes"] or 0, h["memory_bytes"] or 0) for h in holders]
    assert keys == sorted(keys, reverse=True)
    assert _names(docker_engine, "huge") == ""  # refused before anything was created

    # force: a read token may not, a control token may, and the audit log says it was forced
    r = _start(agent, "sdfit-huge", agent.read_token, force=True)
    assert r.status_code == 403
    r = _start(agent, "sdfit-huge", force=True)
    assert r.status_code == 202, r.text
    assert r.json()["memory_fit"]["forced"] is True
    assert _names(docker_engine, "huge") != ""
    audit = call(agent, "GET", "/api/v1/audit", agent.control_token).json()["entries"]
    huge = [(e["result"], e.get("detail")) for e in audit if e["target"] == "sdfit-huge"]
    assert huge == [("error: insufficient_memory", None), ("ok", "force")]
    assert "started with force" in agent.log()

    # a template that declares both kinds of claim never loaded: refused with its name
    r = _start(agent, "sdfit-bad-both")
    assert r.status_code == 400 and r.json()["error"] == "bad_template" and "sdfit-bad-both" in r.json()["detail"]
    errors = call(agent, "GET", "/api/v1/models", agent.read_token).json()["errors"]
    assert any("sdfit-bad-both" in e and "not both" in e for e in errors)


async def test_auto_fraction_is_sized_to_what_fits(docker_engine, fit_agent) -> None:
    agent = fit_agent
    expected = _free_now(agent) / agent.total_bytes  # about 0.40
    async with open_stream(agent) as ws:
        r = _start(agent, "sdfit-auto")
        assert r.status_code == 202, r.text
        chosen = r.json()["fraction"]
        assert r.json()["fraction_param"] == "util"
        assert abs(chosen - expected) <= 0.1 and chosen <= expected + 0.02 and round(chosen, 2) == chosen
        frame = await next_frame(ws, lambda f: f.get("type") == "model_state" and f["name"] == "sdfit-auto", 10, "model_state")
        ModelState.model_validate(frame)
        assert frame["fraction"] == chosen and frame["fraction_param"] == "util" and frame["claim_bytes"] == agent.total_bytes * round(chosen * 100) // 100
    cmd = json.loads(docker_engine.cli("inspect", "-f", "{{json .Config.Cmd}}", "sparkdeck-sdfit-auto"))
    assert cmd[:2] == ["env", f"UTIL={chosen:.2f}"]
    # the template's max_fraction caps it; an explicit value is taken as given
    r = _start(agent, "sdfit-capped")
    assert r.status_code == 202 and r.json()["fraction"] == 0.2, r.text
    assert call(agent, "POST", "/api/v1/models/sdfit-capped/stop", agent.control_token, params={"timeout_s": 0}).status_code == 200
    r = _start(agent, "sdfit-capped", params={"util": "0.1"})
    assert r.status_code == 202 and r.json()["fraction"] == 0.1 and not r.json()["memory_fit"]["forced"]
    assert json.loads(docker_engine.cli("inspect", "-f", "{{json .Config.Cmd}}", "sparkdeck-sdfit-capped"))[1] == "UTIL=0.1"
    # a share too large, or not a share at all
    assert call(agent, "POST", "/api/v1/models/sdfit-auto/stop", agent.control_token, params={"timeout_s": 0}).status_code == 200
    for bad in ("0.99", "1.5", "lots"):
        r = _start(agent, "sdfit-auto", params={"util": bad})
        assert r.status_code in (400, 409), r.text
        assert r.json()["error"] == ("insufficient_memory" if bad == "0.99" else "bad_param")
    model = next(m for m in call(agent, "GET", "/api/v1/models", agent.read_token).json()["models"] if m["name"] == "sdfit-auto")
    assert model["state"]["fraction"] == chosen and model["memory"] == {"fraction_param": "util"}


async def test_two_quick_launches_do_not_double_book(docker_engine, fit_agent) -> None:
    agent = fit_agent
    # both at once: each claims 60 % of what is free, and the first has taken nothing yet
    first, second = await asyncio.gather(asyncio.to_thread(_start, agent, "sdfit-first"), asyncio.to_thread(_start, agent, "sdfit-second"))
    answers = sorted([first, second], key=lambda r: r.status_code)
    assert [r.status_code for r in answers] == [202, 409], [r.text for r in answers]
    refused = answers[1].json()
    assert refused["error"] == "insufficient_memory" and "claimed by models still starting" in refused["detail"]
    winner = answers[0].json()
    assert winner["state"] == "starting" and winner["claim_bytes"] == int(float(f"{agent.first_gib:.2f}") * GIB)
    loser = "sdfit-second" if first.status_code == 202 else "sdfit-first"
    assert _names(docker_engine, loser.removeprefix("sdfit-")) == ""
    # the same one after the other, in sequence: still refused while the first is starting
    r = _start(agent, loser)
    assert r.status_code == 409 and r.json()["error"] == "insufficient_memory"
    # once the first is gone its claim is released
    name = "sdfit-first" if loser == "sdfit-second" else "sdfit-second"
    assert call(agent, "POST", f"/api/v1/models/{name}/stop", agent.control_token, params={"timeout_s": 0}).status_code == 200
    r = _start(agent, loser)
    assert r.status_code == 202, r.text


async def test_the_tui_says_why_and_offers_to_force(docker_engine, fit_agent) -> None:
    agent = fit_agent
    app = SparkdeckApp([Target("spark", agent.url, agent.control_token)], start_view="models")
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await select_model(app, pilot, "sdfit-huge")
        await pilot.press("l")
        assert isinstance(app.screen, LaunchScreen)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the force question")
        question = app.screen
        assert isinstance(question, ConfirmScreen)
        assert "does not fit in memory" in question.question and "4096.0 GiB" in question.question
        assert _names(docker_engine, "huge") == ""  # nothing created while it asks
        await pilot.press("y")
        await until(pilot, lambda: next(r for r in screen.rows() if r[0]["name"] == "sdfit-huge")[1] == "ready", what="forced start ready")
    audit = call(agent, "GET", "/api/v1/audit", agent.control_token).json()["entries"]
    assert [(e["result"], e.get("detail")) for e in audit if e["target"] == "sdfit-huge"] == [("error: insufficient_memory", None), ("ok", "force")]
