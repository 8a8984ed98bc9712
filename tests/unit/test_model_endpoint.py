"""The Models screen's endpoint: the URL `y` copies, from the freshest source that knows the port."""

from tui.screens.models import endpoint

AGENT = "http://spark-01.local:8611"
VLLM = {"name": "vllm", "endpoint": "/v1", "state": {"state": "ready", "endpoint": "http://127.0.0.1:8000/v1", "listen": ["127.0.0.1:8000"]}}


def container(host_port: int) -> dict:
    return {"state": "running", "ports": [{"host_ip": "127.0.0.1", "host_port": host_port, "container_port": 8000, "protocol": "tcp"}]}


def test_the_catalog_endpoint_when_its_port_is_the_containers() -> None:
    assert endpoint(AGENT, VLLM, [container(8000)]) == "http://127.0.0.1:8000/v1"


def test_a_catalog_state_from_before_the_launch_loses_to_the_published_port() -> None:
    # launched with port 50355: the container shows it before the model_state frame reaches the screen
    assert endpoint(AGENT, VLLM, [container(50355)]) == "http://spark-01.local:50355/v1"


def test_the_model_state_frame_wins() -> None:
    progress = {"state": "ready", "endpoint": "http://127.0.0.1:50355/v1", "listen": ["127.0.0.1:50355"]}
    assert endpoint(AGENT, VLLM, [container(50355)], progress) == "http://127.0.0.1:50355/v1"


def test_no_endpoint_when_nothing_answers() -> None:
    stopped = {**VLLM, "state": {"state": "stopped", "endpoint": "http://127.0.0.1:8000/v1"}}
    assert endpoint(AGENT, stopped, []) == ""


def test_a_frame_naming_another_port_than_the_published_one_gives_way() -> None:
    # older agents named the template's port in the model_state frames of a launch on another port
    progress = {"state": "ready", "endpoint": "http://127.0.0.1:8000/v1", "listen": ["127.0.0.1:50355"]}
    assert endpoint(AGENT, VLLM, [container(50355)], progress) == "http://spark-01.local:50355/v1"
