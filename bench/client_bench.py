"""Client bench: the real `sparkdeck` TUI's CPU per screen, with btop side by side, in a 160x48 tmux terminal.

    python bench/client_bench.py [--seconds 60] [--agents 10] [--containers 20] [--out bench/results-client.json]

Agents run `--simulate gb10` at 1 Hz; the first one sees the Docker engine with N busybox containers
(bench.bench.start_containers), the others have no engine (so ten agents do not poll one shared engine
ten times over). Screens measured, each for --seconds after a short settle:

- overview: a client of all agents (the fleet case),
- detail and containers: a client of the first agent (`d`, then `c`),
- btop: `btop` with update_ms = 1000 (a btop.conf in a temporary XDG_CONFIG_HOME), the same terminal size.

CPU is user+system time of the pane's process and all its descendants (psutil cpu_times deltas), as a
percentage of one core. The client's output goes to the tmux pane, never to a pipe.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench import start_containers, stop_containers  # noqa: E402
from tests.helpers.agent import RunningAgent, launch_agent  # noqa: E402
from tests.helpers.terminal import COLS, NO_ENGINE, ROWS, Pane, client_env  # noqa: E402

TARGETS = {"detail_over_btop_max": 1.0, "containers_over_btop_max": 1.5, "overview_over_btop_max": 2.0}


def btop_env(home: Path) -> dict[str, str]:
    cfg = home / "btop-config"
    (cfg / "btop").mkdir(parents=True, exist_ok=True)
    (cfg / "btop" / "btop.conf").write_text("update_ms = 1000\n")
    return {"XDG_CONFIG_HOME": str(cfg), "HOME": str(home), "TERM": "xterm-256color"}


def measure_btop(home: Path, seconds: float) -> dict | None:
    btop = shutil.which("btop")
    if btop is None:
        print("client bench: btop not installed (apt install btop): no side-by-side figure")
        return None
    pane = Pane("btop", [btop], btop_env(home))
    try:
        return pane.measure(seconds)
    finally:
        pane.close()


def measure_client(home: Path, agents: list[RunningAgent], seconds: float) -> dict:
    sparkdeck = str(Path(sys.executable).with_name("sparkdeck"))
    env = client_env(home, agents)
    out: dict = {}
    fleet = Pane("fleet", [sparkdeck, *[f"bench{i}" for i in range(len(agents))]], env)
    try:
        if not fleet.wait_for(f"{len(agents)}/{len(agents)} live", 60):
            print("client bench: the fleet client did not see every agent live:\n" + fleet.screen())
        out["overview"] = fleet.measure(seconds)
    finally:
        fleet.close()
    one = Pane("one", [sparkdeck, "bench0"], env)
    try:
        one.wait_for("live", 30)
        one.keys("d")
        out["detail"] = one.measure(seconds)
        one.keys("c")
        if not one.wait_for("sdbench-", 20):
            print("client bench: no bench container on the containers screen:\n" + one.screen())
        out["containers"] = one.measure(seconds)
    finally:
        one.close()
    return out


def run(seconds: float, n_agents: int, n_containers: int) -> dict:
    have_docker = shutil.which("docker") is not None and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    res: dict = {"terminal": f"{COLS}x{ROWS}", "seconds": seconds, "agents": n_agents, "interval_s": 1.0, "targets": TARGETS, "cpus": os.cpu_count()}
    res["containers"] = n_containers if have_docker else 0
    if have_docker:
        start_containers(n_containers)
    agents: list[RunningAgent] = []
    try:
        with tempfile.TemporaryDirectory(prefix="sd-client-bench-") as tmp:
            home = Path(tmp)
            for i in range(n_agents):
                state = home / f"agent{i}"
                state.mkdir()
                agents.append(launch_agent(state, "--simulate", "gb10", "--interval", "1.0", env=None if i == 0 else NO_ENGINE))
            res["btop"] = measure_btop(home, seconds)
            res["client"] = measure_client(home, agents, seconds)
    finally:
        for a in agents:
            a.stop()
        if have_docker:
            stop_containers()
    b = (res.get("btop") or {}).get("cpu_percent_of_one_core")
    if b:
        res["ratios"] = {screen: round(r["cpu_percent_of_one_core"] / b, 2) for screen, r in res["client"].items()}
    return res


def report(res: dict) -> None:
    b = (res.get("btop") or {}).get("cpu_percent_of_one_core")
    print(f"client bench: {res['terminal']}, {res['agents']} agents at 1 Hz, {res['containers']} containers, {res['seconds']:.0f} s a screen")
    print(f"  {'screen':<12}{'client %':>10}{'btop %':>9}{'ratio':>8}  target")
    limits = {"detail": 1.0, "containers": 1.5, "overview": 2.0}
    for screen, r in res["client"].items():
        ratio = res.get("ratios", {}).get(screen)
        print(f"  {screen:<12}{r['cpu_percent_of_one_core']:>10.2f}{b or 0:>9.2f}{ratio if ratio is not None else '-':>8}  <= {limits[screen]}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_CLIENT_SECONDS", "60")), help="measuring window per screen (default 60)")
    ap.add_argument("--agents", type=int, default=10, help="agents in the fleet overview (default 10)")
    ap.add_argument("--containers", type=int, default=20, help="busybox containers on the engine (default 20)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results-client.json")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        sys.exit("client bench: tmux is needed (apt install tmux)")
    res = run(args.seconds, args.agents, args.containers)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    report(res)
    print(f"  written to {args.out}")


if __name__ == "__main__":
    main()
