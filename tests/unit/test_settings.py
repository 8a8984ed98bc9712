"""Settings precedence: TOML file < SPARKDECK_* env < flags; bad values are clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.settings import ConfigError, is_loopback, load_settings


def test_file_then_env_then_flags(tmp_path, monkeypatch):
    cfg = tmp_path / "agent.toml"
    cfg.write_text('port = 9000\ninterval_s = 2.0\nallowed_hosts = ["spark.lan"]\n[noise]\nidle_dba = 18.0\nload_dba = 38.0\n')
    monkeypatch.delenv("SPARKDECK_PORT", raising=False)
    s = load_settings(cfg)
    assert (s.port, s.interval_s, s.allowed_hosts, s.noise.idle_dba) == (9000, 2.0, ["spark.lan"], 18.0)
    monkeypatch.setenv("SPARKDECK_PORT", "9100")
    monkeypatch.setenv("SPARKDECK_NOISE__IDLE_DBA", "21")
    s = load_settings(cfg)
    assert s.port == 9100 and s.noise.idle_dba == 21.0 and s.noise.load_dba == 38.0
    s = load_settings(cfg, port=9200, interval_s=None)
    assert s.port == 9200 and s.interval_s == 2.0


def test_state_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKDECK_STATE_DIR", str(tmp_path / "st"))
    assert load_settings().state_dir == tmp_path / "st"


def test_invalid_values_are_rejected(tmp_path):
    with pytest.raises(ValidationError):
        load_settings(interval_s=0.01)
    with pytest.raises(ValidationError):
        load_settings(simulate="rtx9090")
    with pytest.raises(ConfigError):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("no_such_option = 1\n")
    with pytest.raises(ValidationError):
        load_settings(bad)


@pytest.mark.parametrize(
    "host,loop",
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.5", False), ("spark.lan", False)],
)
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_control_table_switches_actions_off(tmp_path, monkeypatch):
    cfg = tmp_path / "agent.toml"
    cfg.write_text("[control]\nenabled = false\n")
    assert load_settings(cfg).control_enabled is False
    monkeypatch.setenv("SPARKDECK_CONTROL_ENABLED", "false")
    assert load_settings().control_enabled is False
    bad = tmp_path / "bad.toml"
    bad.write_text("[control]\nenable = false\n")
    with pytest.raises(ValidationError, match="unknown \\[control\\] option"):
        load_settings(bad)
