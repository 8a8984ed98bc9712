"""A client for the booted-systemd test, run with `nsenter -t PID -n` (the container's network, this venv's Python).

probe.py get URL TOKEN [CAFILE]       -> {"status": N, "body": ...}
probe.py post URL TOKEN               -> {"status": N, "body": ...}
probe.py stream WSURL TOKEN SINCE N   -> {"latest_seq": .., "backfill": {...} | null, "seqs": [...]}
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys

import httpx


def _client(cafile: str | None) -> httpx.Client:
    return httpx.Client(timeout=5.0, verify=ssl.create_default_context(cafile=cafile) if cafile else True)


def http(method: str, url: str, token: str, cafile: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token != "-" else {}
    try:
        with _client(cafile) as c:
            r = c.request(method, url, headers=headers)
    except httpx.HTTPError as exc:
        return {"status": None, "error": f"{type(exc).__name__}: {exc}"}
    try:
        body = r.json()
    except ValueError:
        body = r.text[:200]
    return {"status": r.status_code, "body": body}


async def stream(url: str, token: str, since: int, n: int) -> dict:
    from websockets.asyncio.client import connect

    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as conn:
        hello = json.loads(await conn.recv())
        if since >= 0:
            await conn.send(json.dumps({"type": "subscribe", "since_seq": since}))
        seqs: list[int] = []
        backfill = None
        while len(seqs) < n:
            frame = json.loads(await asyncio.wait_for(conn.recv(), 10))
            if frame["type"] == "backfill":
                backfill = frame
            elif frame["type"] == "snapshot":
                seqs.append(frame["seq"])
        return {"latest_seq": hello.get("latest_seq"), "backfill": backfill, "seqs": seqs}


def main(argv: list[str]) -> None:
    cmd = argv[0]
    if cmd in ("get", "post"):
        out = http(cmd.upper(), argv[1], argv[2], argv[3] if len(argv) > 3 else None)
    else:
        out = asyncio.run(stream(argv[1], argv[2], int(argv[3]), int(argv[4])))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
