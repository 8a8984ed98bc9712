"""make bench: what the agent costs, how fast its frames arrive, and Glances side by side.

In one run on this machine:
  1. 20 idle busybox containers are started (label sparkdeck.bench=1);
  2. the agent (simulated GB10, 1 Hz, Docker on) with 10 stream clients for BENCH_SECONDS:
     CPU (% of one core, from /proc/PID/stat) and RSS; bytes per snapshot frame;
  3. sample -> client receive latency p50/p99 with 1, 100 and 500 clients, read by lean readers
     (bench/wsreader.py: handshake, epoll, timestamp at recv) so that the measuring side's own
     CPU stays out of the figure; the same counts with websockets-library clients are reported
     next to them, as what a Python client on the same two cores sees;
  4. container start -> seen by a stream client;
  5. Glances 4 (`glances -w --disable-webui -t 1`, from a bench venv) with one client polling
     /api/4/all every second, same containers, same duration: CPU, RSS, bytes per poll.
  6. what fsyncing the history WAL costs (the store's own thread, off the publish path):
     `python bench/bench.py --fsync` runs this part alone (make bench-fsync), in a temp dir
     under BENCH_FSYNC_DIR (default: the repository, i.e. a real disk, not a tmpfs /tmp).
Results go to stdout and bench/results.json, with the targets from the issue and the ratios
(--fsync alone: bench/results-fsync.json).
Knobs: BENCH_SECONDS (60), BENCH_CLIENTS (10), BENCH_CONTAINERS (20), BENCH_FANOUT (1,100,500),
BENCH_GLANCES (1; 0 skips it), BENCH_GLANCES_PY (python of a venv with glances installed).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.agent import free_port, launch_agent  # noqa: E402


def stream_cap_env(streams: int) -> dict[str, str]:
    """The bench's and soak's clients all stream on one read token; the agent caps streams per token
    (max_streams_per_token, 32 by default), so the measuring agent is started with room for them all."""
    return {"SPARKDECK_MAX_STREAMS_PER_TOKEN": str(max(streams, 32) + 8)}


CLK = os.sysconf("SC_CLK_TCK")
IMAGE = "sparkdeck-test/busybox:latest"
TARGETS = {"cpu_ratio_vs_glances_max": 1 / 8, "rss_mb_max": 64, "frame_bytes_max": 8192, "p99_ms_100": 20, "p99_ms_500": 50}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


# ---- containers ---------------------------------------------------------------------------


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout.strip()


def start_containers(n: int) -> list[str]:
    subprocess.run(["bash", str(ROOT / "scripts" / "docker-test-image.sh"), IMAGE], check=True, capture_output=True)
    stop_containers()
    return [docker("run", "-d", "--label", "sparkdeck.bench=1", "--name", f"sdbench-{i}", IMAGE, "sleep", "3600") for i in range(n)]


def stop_containers() -> None:
    ids = docker("ps", "-aq", "--filter", "label=sparkdeck.bench=1", check=False).split()
    if ids:
        docker("rm", "-f", *ids, check=False)


# ---- stream clients (in worker processes) ---------------------------------------------------


def _client_worker(url: str, token: str, n: int, seconds: float, out: mp.Queue) -> None:
    from websockets.asyncio.client import connect

    from bench.wsreader import snapshot_ts

    async def one(lat: list[float], sizes: list[int], ready: asyncio.Event, start: asyncio.Event) -> None:
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=2**22, open_timeout=120) as ws:
            ready.set()
            await start.wait()
            # frames sampled before this moment sat in this client's own socket buffer while it
            # waited for the others to connect: their age is the harness's, not the agent's
            began = time.time()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                now = time.time()
                data = raw.encode() if isinstance(raw, str) else raw
                ts = snapshot_ts(data)
                if ts is not None:
                    if ts >= began:
                        lat.append((now - ts) * 1000)
                    sizes.append(len(data))

    async def main() -> None:
        lat: list[float] = []
        sizes: list[int] = []
        start = asyncio.Event()
        readies = [asyncio.Event() for _ in range(n)]
        tasks = [asyncio.create_task(one(lat, sizes, r, start)) for r in readies]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
        out.put(("ready", n))
        await asyncio.sleep(0.5)
        start.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        out.put(("done", lat, sizes[:50]))

    asyncio.run(main())


def _start_workers(target, agent, total: int, procs_n: int, seconds: float, *extra) -> tuple[list[mp.Process], mp.Queue]:
    """``total`` streams over ``procs_n`` worker processes; returns once every worker is connected."""
    per = [total // procs_n + (1 if i < total % procs_n else 0) for i in range(procs_n)]
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=target, args=(agent.ws_url, agent.read_token, k, seconds, q, *extra)) for k in per if k]
    for p in procs:
        p.start()
    ready = 0
    while ready < len(procs):
        kind, *_ = q.get(timeout=180)
        ready += kind == "ready"
    return procs, q


def _collect(procs: list[mp.Process], q: mp.Queue, seconds: float) -> tuple[list[float], list[int]]:
    lat: list[float] = []
    sizes: list[int] = []
    for _ in procs:
        _, one_lat, s = q.get(timeout=seconds + 120)
        lat += one_lat
        sizes += s
    for p in procs:
        p.join(10)
    return lat, sizes


def run_clients(agent, total: int, seconds: float, on_ready=None) -> tuple[list[float], list[int], object]:
    """websockets-library clients, up to eight processes."""
    procs, q = _start_workers(_client_worker, agent, total, max(1, min(8, total // 50 + 1)), seconds)
    result = on_ready() if on_ready else None
    lat, sizes = _collect(procs, q, seconds)
    return lat, sizes, result


def _reader_worker(url: str, token: str, n: int, seconds: float, out: mp.Queue, go) -> None:
    from bench.wsreader import open_stream, read_streams

    socks = [open_stream(url, token) for _ in range(n)]
    out.put(("ready", n))
    go.wait(180)
    lat, sizes = read_streams(socks, seconds)
    out.put(("done", lat, sizes[:50]))


def run_readers(agent, total: int, seconds: float) -> list[float]:
    """Fan-out latency with lean readers (bench/wsreader.py): one process per 250 streams, at most one per core."""
    go = mp.Event()
    procs, q = _start_workers(_reader_worker, agent, total, max(1, min(os.cpu_count() or 1, -(-total // 250))), seconds, go)
    go.set()
    return _collect(procs, q, seconds)[0]


# ---- measurements ----------------------------------------------------------------------------


def sample_cost(pid: int, seconds: float) -> dict:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    rss = []
    while time.monotonic() - t0 < seconds:
        time.sleep(1)
        rss.append(rss_bytes(pid))
    return {
        "cpu_percent_of_one_core": round((cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100, 2),
        "rss_mb_max": round(max(rss) / 2**20, 1),
        "rss_mb_median": round(statistics.median(rss) / 2**20, 1),
    }


def agent_idle(agent, clients: int, seconds: float) -> dict:
    box: dict = {}

    def measure():
        time.sleep(3)
        box.update(sample_cost(agent.proc.pid, seconds))

    _, sizes, _ = run_clients(agent, clients, seconds + 5, on_ready=measure)
    box["clients"] = clients
    box["frame_bytes_median"] = int(statistics.median(sizes)) if sizes else None
    return box


def container_seen_latency(agent, tries: int = 5) -> dict:
    from websockets.sync.client import connect

    out = []
    with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token), max_size=2**22) as ws:
        for i in range(tries):
            name = f"sdbench-probe-{i}"
            docker("rm", "-f", name, check=False)
            t0 = time.time()
            subprocess.run(["docker", "run", "-d", "--label", "sparkdeck.bench=1", "--name", name, IMAGE, "sleep", "60"], check=True, capture_output=True)
            t_started = time.time()
            while True:
                f = json.loads(ws.recv(timeout=30))
                if f["type"] == "snapshot" and any(c["name"] == name and c["state"] == "running" for c in f["containers"]):
                    out.append({"from_cli_call_ms": round((time.time() - t0) * 1000, 1), "from_cli_return_ms": round((time.time() - t_started) * 1000, 1)})
                    break
            docker("rm", "-f", name, check=False)
    return {"tries": out, "median_from_cli_return_ms": statistics.median(o["from_cli_return_ms"] for o in out)}


def glances_python() -> str | None:
    explicit = os.environ.get("BENCH_GLANCES_PY")
    if explicit:
        return explicit
    venv = ROOT / ".venv-bench"
    py = venv / "bin" / "python"
    if not py.exists():
        print("bench: installing Glances into .venv-bench (one time)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", "glances[web,containers]>=4"], capture_output=True, text=True)
        if r.returncode != 0:
            print("bench: could not install Glances:", r.stderr[-500:])
            return None
    return str(py)


def glances(seconds: float) -> dict | None:
    py = glances_python()
    if py is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [py, "-m", "glances", "-w", "--disable-webui", "-t", "1", "--bind", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/4/all"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                time.sleep(1)
        else:
            return None
        time.sleep(5)
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        sizes, times, rss = [], [], []
        while time.monotonic() - t0 < seconds:
            s = time.monotonic()
            body = urllib.request.urlopen(url, timeout=10).read()
            times.append((time.monotonic() - s) * 1000)
            sizes.append(len(body))
            rss.append(rss_bytes(proc.pid))
            time.sleep(max(0.0, 1 - (time.monotonic() - s)))
        containers = len(json.loads(body).get("containers", []))
        return {
            "cpu_percent_of_one_core": round((cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0) * 100, 2),
            "rss_mb_max": round(max(rss) / 2**20, 1),
            "bytes_per_poll_median": int(statistics.median(sizes)),
            "poll_ms_median": round(statistics.median(times), 1),
            "containers_seen": containers,
        }
    finally:
        proc.terminate()
        proc.wait(10)


def _bench_frame_blob(i: int) -> bytes:
    """A frame like the agent's (20 containers, per-core CPU), compressed as the ring does."""
    import random
    import zlib

    rnd = random.Random(i)
    frame = {
        "type": "snapshot",
        "v": 1,
        "seq": i,
        "ts": time.time(),
        "host": {
            "cpu": {"per_core_percent": [round(rnd.uniform(0, 100), 1) for _ in range(20)]},
            "memory": {"available_bytes": rnd.randrange(2**36), "used_bytes": rnd.randrange(2**36)},
        },
        "gpus": [{"index": 0, "temperature_c": rnd.randrange(40, 90), "power_w": round(rnd.uniform(5, 140), 2)}],
        "containers": [
            {
                "id": f"{rnd.getrandbits(48):012x}",
                "name": f"bench-{k}",
                "cpu_percent": round(rnd.uniform(0, 5), 2),
                "memory_bytes": rnd.randrange(2**30),
                "net_rx_bytes_s": rnd.randrange(10**6),
                "net_tx_bytes_s": rnd.randrange(10**6),
                "status": f"Up {rnd.randrange(60)} minutes",
                "state": "running",
                "image": f"nvcr.io/nvidia/bench-{k}:{rnd.getrandbits(24):x}",
                "ports": [{"host_ip": "127.0.0.1", "host_port": 8000 + k, "container_port": 8000, "protocol": "tcp"}],
                "health": None,
                "memory_limit_bytes": None,
                "gpu_memory_bytes": rnd.randrange(2**34),
                "model": None,
            }
            for k in range(20)
        ],
    }
    return zlib.compress(json.dumps(frame, separators=(",", ":")).encode(), 1)


def history_fsync(frames: int | None = None, gap_s: float = 0.05) -> dict:
    """Append frames to a HistoryStore as the agent does, without and with a WAL fsync after each
    (the worst case of the 1 s cadence: one fsync per frame at 1 Hz), and time both."""
    from agent.history.store import HistoryStore

    frames = frames or int(os.environ.get("BENCH_FSYNC_FRAMES", "200"))
    base = os.environ.get("BENCH_FSYNC_DIR") or str(ROOT)
    blobs = [_bench_frame_blob(i) for i in range(frames)]

    async def run(fsync: bool, path: Path) -> dict:
        store = HistoryStore(path, fsync_every_s=0 if fsync else float("inf"))
        sync_ms: list[float] = []
        orig = store._sync

        def timed(conn):
            t = time.perf_counter()
            ok = orig(conn)
            sync_ms.append((time.perf_counter() - t) * 1000)
            return ok

        store._sync = timed  # type: ignore[method-assign]  # measured by wrapping this instance's method; sync_soon looks it up per call
        append_ms: list[float] = []
        cpu0 = time.process_time()
        for i, blob in enumerate(blobs, 1):
            t = time.perf_counter()
            await store.append(i, time.time(), blob, {"cpu.percent": 1.0, "memory.used_bytes": 1e9})
            append_ms.append((time.perf_counter() - t) * 1000)
            store.sync_soon()
            await asyncio.sleep(gap_s)
        store.close()
        cpu = time.process_time() - cpu0  # both threads; sleeping costs none
        return {
            "append_p50_ms": pct(append_ms, 0.5),
            "append_p99_ms": pct(append_ms, 0.99),
            "fsyncs": len(sync_ms),
            "fsync_p50_ms": pct(sync_ms, 0.5),
            "fsync_p99_ms": pct(sync_ms, 0.99),
            "fsync_max_ms": round(max(sync_ms), 3) if sync_ms else None,
            "cpu_ms_per_frame": round(cpu * 1000 / frames, 3),
        }

    out: dict = {"frames": frames, "blob_bytes_median": int(statistics.median(len(b) for b in blobs)), "dir": base}
    with tempfile.TemporaryDirectory(dir=base, prefix=".bench-fsync-") as d:
        out["no_fsync"] = asyncio.run(run(False, Path(d) / "a.sqlite3"))
        out["fsync_each_frame"] = asyncio.run(run(True, Path(d) / "b.sqlite3"))
    return out


def report_fsync(f: dict) -> None:
    a, b = f["no_fsync"], f["fsync_each_frame"]
    print(f"history WAL fsync ({f['frames']} frames of ~{f['blob_bytes_median']} B in {f['dir']}):")
    print(f"  fsync p50 {b['fsync_p50_ms']} ms, p99 {b['fsync_p99_ms']} ms, max {b['fsync_max_ms']} ms (on the store's thread, after publish)")
    print(
        f"  append (what the sampler waits for) p50/p99: {a['append_p50_ms']}/{a['append_p99_ms']} ms without fsync, {b['append_p50_ms']}/{b['append_p99_ms']} ms with"
    )
    print(f"  CPU per frame: {a['cpu_ms_per_frame']} ms without, {b['cpu_ms_per_frame']} ms with")


def main() -> dict:
    seconds = float(os.environ.get("BENCH_SECONDS", "60"))
    clients = int(os.environ.get("BENCH_CLIENTS", "10"))
    n_containers = int(os.environ.get("BENCH_CONTAINERS", "20"))
    fanout = [int(x) for x in os.environ.get("BENCH_FANOUT", "1,100,500").split(",") if x]
    have_docker = shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    results: dict = {"machine": {"cpus": os.cpu_count()}, "seconds": seconds, "targets": TARGETS}
    if have_docker:
        start_containers(n_containers)
        results["containers"] = n_containers
    else:
        print("bench: no Docker engine: measuring without containers and without Glances' container plugin")
        results["containers"] = 0
    try:
        with tempfile.TemporaryDirectory() as state:
            agent = launch_agent(Path(state), "--simulate", "gb10", "--interval", "1.0", env=stream_cap_env(max(fanout + [clients])))
            try:
                results["agent"] = agent_idle(agent, clients, seconds)
                results["latency"] = []
                for n in fanout:
                    lat = run_readers(agent, n, 15)
                    lib, _, _ = run_clients(agent, n, 15)
                    results["latency"].append(
                        {
                            "clients": n,
                            "frames": len(lat),
                            "p50_ms": pct(lat, 0.5),
                            "p99_ms": pct(lat, 0.99),
                            "library_clients": {"frames": len(lib), "p50_ms": pct(lib, 0.5), "p99_ms": pct(lib, 0.99)},
                        }
                    )
                if have_docker:
                    results["container_start_seen"] = container_seen_latency(agent)
                results["agent"]["rss_mb_after_fanout"] = round(rss_bytes(agent.proc.pid) / 2**20, 1)
            finally:
                agent.stop()
        if os.environ.get("BENCH_GLANCES", "1") == "1":
            results["glances"] = glances(seconds)
    finally:
        if have_docker:
            stop_containers()
    results["history_fsync"] = history_fsync()
    g = results.get("glances")
    if g and g["cpu_percent_of_one_core"]:
        results["ratios"] = {
            "cpu_agent_over_glances": round(results["agent"]["cpu_percent_of_one_core"] / g["cpu_percent_of_one_core"], 3),
            "rss_agent_over_glances": round(results["agent"]["rss_mb_max"] / g["rss_mb_max"], 3),
            "bytes_frame_over_poll": round((results["agent"]["frame_bytes_median"] or 0) / g["bytes_per_poll_median"], 3),
        }
    return results


def report(res: dict) -> None:
    a = res["agent"]
    print(f"sparkdeck agent, 1 Hz, {res['containers']} containers, {a['clients']} clients, {res['seconds']:.0f} s:")
    print(
        f"  CPU {a['cpu_percent_of_one_core']} % of one core, RSS {a['rss_mb_max']} MB (target <= {TARGETS['rss_mb_max']}), frame {a['frame_bytes_median']} B (target <= {TARGETS['frame_bytes_max']})"
    )
    for lat in res["latency"]:
        lib = lat["library_clients"]
        print(
            f"  {lat['clients']:>4} clients: sample -> bytes received p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms ({lat['frames']} frames);"
            f" websockets-library clients on the same cores: p50 {lib['p50_ms']}, p99 {lib['p99_ms']} ms"
        )
    if "container_start_seen" in res:
        print(f"  container start -> seen in the stream: median {res['container_start_seen']['median_from_cli_return_ms']} ms after `docker run` returned")
    g = res.get("glances")
    if g:
        print(
            f"Glances 4 web server, 1 client polling /api/4/all at 1 Hz: CPU {g['cpu_percent_of_one_core']} %, RSS {g['rss_mb_max']} MB, {g['bytes_per_poll_median']} B per poll ({g['containers_seen']} containers)"
        )
        r = res["ratios"]
        print(
            f"  agent / Glances: CPU {r['cpu_agent_over_glances']} (target <= {TARGETS['cpu_ratio_vs_glances_max']:.3f}), RSS {r['rss_agent_over_glances']}, bytes {r['bytes_frame_over_poll']}"
        )
    if "history_fsync" in res:
        report_fsync(res["history_fsync"])


if __name__ == "__main__":
    if "--fsync" in sys.argv[1:]:  # this measurement alone: seconds, no agent, no containers
        fs = history_fsync()
        out = ROOT / "bench" / "results-fsync.json"
        out.write_text(json.dumps(fs, indent=2) + "\n")
        report_fsync(fs)
        print(f"written to {out}")
        sys.exit(0)
    res = main()
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    report(res)
    print(f"written to {out}")
