"""Client-side certificate pinning against a real HTTPS agent."""

from __future__ import annotations

import ssl
import stat

import httpx
import pytest

from agent import tls
from tests.helpers.agent import launch_agent
from tui.pinning import KnownAgents, PinError, check_unchanged, trust


@pytest.fixture
def tls_agent(tmp_path):
    state = tmp_path / "state"
    _, _, fp = tls.init(state, ["localhost"])
    agent = launch_agent(state, "--simulate", "gb10", "--tls")
    yield agent, fp
    agent.stop()


def test_pin_on_first_use_then_trust_only_that_certificate(tls_agent, tmp_path):
    agent, fp = tls_agent
    store = KnownAgents(tmp_path / "known_agents")
    first = trust("127.0.0.1", agent.port, store=store)
    assert first.newly_pinned and first.fingerprint == fp  # what `sparkdeck-agent tls fingerprint` prints
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    r = httpx.get(f"https://127.0.0.1:{agent.port}/api/v1/info", headers=agent.headers(agent.read_token), verify=first.context)
    assert r.status_code == 200
    again = trust("127.0.0.1", agent.port, store=store)
    assert not again.newly_pinned and again.fingerprint == fp


def test_changed_certificate_is_refused_before_the_token_is_sent(tls_agent, tmp_path):
    agent, fp = tls_agent
    store = KnownAgents(tmp_path / "known_agents")
    trust("127.0.0.1", agent.port, store=store)
    agent.stop()
    tls.init(agent.state_dir, force=True)  # a different key and certificate on the same address
    agent2 = launch_agent(agent.state_dir, "--simulate", "gb10", "--tls", port=agent.port, tokens=(agent.read_token, agent.control_token))
    try:
        ctx = trust("127.0.0.1", agent.port, store=store).context
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # the handshake fails: no request, no token
            httpx.get(f"https://127.0.0.1:{agent.port}/api/v1/info", headers=agent.headers(agent.read_token), verify=ctx)
        with pytest.raises(PinError) as exc:
            check_unchanged("127.0.0.1", agent.port, store=store)
        msg = str(exc.value)
        assert "CHANGED" in msg and "intercepting" in msg and "sparkdeck hosts unpin 127.0.0.1:" in msg and fp in msg
        assert store.remove(f"127.0.0.1:{agent.port}")  # re-pin after checking out of band
        assert trust("127.0.0.1", agent.port, store=store).newly_pinned
    finally:
        agent2.stop()


def test_fingerprint_given_up_front(tls_agent, tmp_path):
    agent, fp = tls_agent
    with pytest.raises(PinError, match="not the expected"):
        trust("127.0.0.1", agent.port, expected="SHA256:" + "A" * 43, store=KnownAgents(tmp_path / "k1"))
    assert not (tmp_path / "k1").exists()  # nothing pinned on a mismatch
    got = trust("127.0.0.1", agent.port, expected=fp, store=KnownAgents(tmp_path / "k2"))
    assert got.fingerprint == fp and isinstance(got.context, ssl.SSLContext)
