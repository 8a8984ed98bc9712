"""The model catalog: built-ins, user overrides, template rendering, secrets, pull error wording."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.containers.catalog import Catalog, RenderError, Secrets, render
from agent.containers.launcher import pull_failure, registry_of

USER = """
[[model]]
name = "vllm"
image = "localhost:5000/my/vllm:dev"
command = ["vllm", "serve", "{model}"]
params = { model = "mine" }

[[model]]
name = "sdtest-echo"
image = "sparkdeck-test/busybox:latest"
command = ["echo", "{word}", "--flag={word}"]
params = { word = "hi" }
ports = { "8080/tcp" = 18080 }
env = { TOKEN = "${SD_SECRET}", OPT = "${SD_OPTIONAL:-}", PLAIN = "visible", API_KEY = "literal-key" }
health = { port = "8080/tcp", path = "/health" }

[[model]]
name = "broken-placeholder"
image = "busybox"
command = ["echo", "{missing}"]

[[model]]
name = "broken-attr"
image = "busybox"
command = ["echo", "{word.__class__}"]
params = { word = "x" }

[[model]]
name = "broken-image"
image = "Bad Image!"

[[model]]
name = "broken-health"
image = "busybox"
ports = { "80/tcp" = 8080 }
health = { port = "81/tcp" }
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    f = tmp_path / "models.toml"
    f.write_text(USER)
    return Catalog(f)


def test_builtins_follow_the_spark_playbooks() -> None:
    c = Catalog()
    assert c.errors == []
    assert {"vllm", "trtllm", "sglang", "nim-llama3.1-8b", "open-webui", "ollama"} <= set(c.models)
    vllm = c.get("vllm")
    # the share of memory is the launch fit check's to size (at most 0.85; README "Will it fit?")
    assert vllm.command[vllm.command.index("--gpu-memory-utilization") + 1] == "{gpu_memory_utilization}"
    assert vllm.params["gpu_memory_utilization"] == "auto" and vllm.memory.fraction_param == "gpu_memory_utilization"
    sglang = c.get("sglang")
    assert sglang.command[sglang.command.index("--mem-fraction-static") + 1] == "{mem_fraction_static}"
    assert sglang.params["mem_fraction_static"] == "auto" and sglang.memory.fraction_param == "mem_fraction_static"
    for t in c.models.values():
        assert t.gpus == "all" and t.health is not None
    for name in ("vllm", "trtllm", "sglang", "nim-llama3.1-8b"):
        t = c.models[name]
        assert t.ipc == "host" and t.ulimits == {"memlock": -1, "stack": 67108864} and t.shm_size
    assert c.get("nim-llama3.1-8b").env == {"NGC_API_KEY": "${NGC_API_KEY}"}


def test_user_entries_override_and_bad_ones_are_reported(catalog: Catalog) -> None:
    assert catalog.get("vllm").image == "localhost:5000/my/vllm:dev"
    assert catalog.get("ollama") is not None  # built-ins not overridden stay
    for name in ("broken-placeholder", "broken-attr", "broken-image", "broken-health"):
        assert catalog.get(name) is None
        assert any(name in e for e in catalog.errors), name
    assert len(catalog.errors) == 4


def test_render_is_exec_form_with_secrets_resolved(catalog: Catalog, tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text("# comment\nSD_SECRET='from-file-s3cr3t'\n")
    spec = render(catalog.models["sdtest-echo"], Secrets(secrets_file, {}), params={"word": "a b; rm -rf / $(id)"})
    assert spec.body["Cmd"] == ["echo", "a b; rm -rf / $(id)", "--flag=a b; rm -rf / $(id)"]  # one argv item each, no shell
    assert "Entrypoint" not in spec.body
    assert sorted(spec.body["Env"]) == ["API_KEY=literal-key", "PLAIN=visible", "TOKEN=from-file-s3cr3t"]  # unset optional left out
    assert spec.body["Labels"] == {"sparkdeck.model": "sdtest-echo"}
    assert spec.health_url == (18080, "/health") and spec.host_ports == [18080]
    assert spec.redact("engine said from-file-s3cr3t") == "engine said ***"
    # the environment wins over the file
    spec = render(catalog.models["sdtest-echo"], Secrets(secrets_file, {"SD_SECRET": "env-value", "SD_OPTIONAL": "o"}), port=19000)
    assert "TOKEN=env-value" in spec.body["Env"] and "OPT=o" in spec.body["Env"]
    assert spec.body["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "19000"}]}


def test_public_view_never_holds_secret_values(catalog: Catalog) -> None:
    secrets = Secrets(None, {"SD_SECRET": "env-s3cr3t"})
    view = catalog.get("sdtest-echo").public(secrets)
    assert view["env"] == {"TOKEN": "${SD_SECRET}", "OPT": "${SD_OPTIONAL:-}", "PLAIN": "visible", "API_KEY": "***"}
    assert view["secrets"] == {"SD_SECRET": True, "SD_OPTIONAL": False}
    assert "env-s3cr3t" not in repr(view)


@pytest.mark.parametrize(
    "params, port, code",
    [
        ({"nope": "x"}, None, "bad_param"),
        ({"word": "--evil"}, None, "bad_param"),
        ({"word": "a\nb"}, None, "bad_param"),
        ({"word": "x" * 600}, None, "bad_param"),
        ({"word": ["list"]}, None, "bad_param"),
        ({}, 70000, "bad_param"),
    ],
)
def test_bad_launch_requests(catalog: Catalog, params: dict, port: int | None, code: str) -> None:
    with pytest.raises(RenderError) as exc:
        render(catalog.models["sdtest-echo"], Secrets(None, {"SD_SECRET": "s"}), params=params, port=port)
    assert exc.value.code == code


def test_missing_secret_names_the_variable_only(catalog: Catalog, tmp_path: Path) -> None:
    with pytest.raises(RenderError) as exc:
        render(catalog.models["sdtest-echo"], Secrets(tmp_path / "secrets.env", {}))
    assert exc.value.code == "missing_secret"
    assert "SD_SECRET" in exc.value.message and str(tmp_path / "secrets.env") in exc.value.message


def test_pull_failure_wording() -> None:
    assert registry_of("nvcr.io/nvidia/vllm:25.09-py3") == "nvcr.io"
    assert registry_of("ollama/ollama") == "docker.io" and registry_of("localhost:5000/x") == "localhost:5000"
    msg = pull_failure("nvcr.io/nvidia/vllm:25.09-py3", "Head https://nvcr.io/v2/nvidia/vllm/manifests/25.09-py3: unauthorized: authentication required")
    assert "needs a login" in msg and "docker login nvcr.io" in msg and "NGC API key" in msg
    msg = pull_failure("sparkdeck-test/absent:1", 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host')
    assert "not on this machine" in msg and "docker.io" in msg and "no such host" in msg


def test_broken_override_does_not_fall_back_to_the_builtin(tmp_path: Path) -> None:
    f = tmp_path / "models.toml"
    f.write_text('[[model]]\nname = "vllm"\nimage = "nvcr.io/nvidia/vllm:25.09-py3"\ngpus = "some"\n')
    c = Catalog(f)
    assert c.get("vllm") is None and "vllm" in c.broken and "gpus" in c.broken["vllm"]


def test_default_models_file_is_in_the_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.containers.catalog import default_models_file

    monkeypatch.delenv("CONFIGURATION_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_models_file() is None
    (tmp_path / "sparkdeck").mkdir()
    (tmp_path / "sparkdeck" / "models.toml").write_text("")
    assert default_models_file() == tmp_path / "sparkdeck" / "models.toml"
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(tmp_path / "etc"))  # systemd's ConfigurationDirectory=
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "models.toml").write_text("")
    assert default_models_file() == tmp_path / "etc" / "models.toml"


def test_serve_refuses_a_missing_models_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "serve", "--state-dir", str(tmp_path), "--port", "0", "--models", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 2 and f"model catalog {tmp_path / 'nope.toml'} does not exist" in out.stderr
