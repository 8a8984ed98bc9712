"""The audit log under hostile control requests: values cut, file rotated by size, tail read from the end."""

from __future__ import annotations

import time

import httpx


def test_huge_params_and_many_refusals_keep_the_audit_log_bounded(start_agent, record):
    agent = start_agent("--simulate", "gb10", env={"SPARKDECK_AUDIT_MAX_BYTES": str(64 * 1024)})
    audit = agent.state_dir / "audit.log"
    with httpx.Client(base_url=agent.url, headers=agent.headers(agent.control_token), timeout=60) as http:
        r = http.post("/api/v1/models/no-such-model/start", json={"params": {"prompt": "p" * 1_000_000, "other": "kept"}})
        assert r.status_code == 404 and r.json()["error"] == "unknown_model"
        one = audit.stat().st_size
        entry = http.get("/api/v1/audit", params={"limit": 1}).json()["entries"][-1]
        assert entry["result"] == "error: unknown_model"
        assert "truncated" in entry["detail"] and "other=kept" in entry["detail"]
        r = http.post("/api/v1/models/" + "n" * 4000 + "/start")  # a long name in the path is cut too
        assert r.status_code == 404
        long_target = http.get("/api/v1/audit", params={"limit": 1}).json()["entries"][-1]["target"]
        assert len(long_target) < 300 and "truncated" in long_target

        for i in range(550):  # ~0.45 KB lines: about 250 KB in all, past the 64 KB size three times and more
            http.post(f"/api/v1/models/refused-{i}-{'z' * 240}/start", json={"params": {"x": "y" * 200}})
        files = sorted(p.name for p in agent.state_dir.glob("audit.log*"))
        sizes = {p.name: p.stat().st_size for p in agent.state_dir.glob("audit.log*")}
        t0 = time.monotonic()
        entries = http.get("/api/v1/audit", params={"limit": 10_000}).json()["entries"]
        took = time.monotonic() - t0
    record(
        "audit",
        "a refused model start with a 1 MB param (the body limit is 1 MiB), then 550 refused starts with audit_max_bytes = 64 KiB",
        f"the 1 MB param added {one} bytes; files {', '.join(f'{n} {s // 1024} KiB' for n, s in sorted(sizes.items()))}; "
        f"GET /audit?limit=10000 answered {len(entries)} entries in {took * 1000:.0f} ms",
    )
    assert one < 16 * 1024
    assert files == ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    assert all(s <= 64 * 1024 for s in sizes.values())
    targets = [e["target"] for e in entries]
    numbers = [int(t.split("-")[1]) for t in targets]
    assert numbers[-1] == 549 and numbers == sorted(numbers) and len(entries) > 300
