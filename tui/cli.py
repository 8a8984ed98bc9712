"""``sparkdeck``: the terminal dashboard, ``status`` for scripts, ``hosts`` for the hosts file.

    sparkdeck [TARGET ...] [--token TOKEN]
    sparkdeck status TARGET [--json] [--token TOKEN]
    sparkdeck incidents TARGET [--json] [--token TOKEN]
    sparkdeck hosts add NAME URL [--token TOKEN | --token-file FILE]
    sparkdeck hosts list [--json]
    sparkdeck hosts remove NAME
    sparkdeck hosts unpin HOST:PORT
    sparkdeck forward TARGET MODEL_OR_PORT [--local-port N]
    sparkdeck setup [USER@]HOST[:PORT] [--name NAME] [--yes] [--dry-run] [--wheel FILE] [--scope read|control]

TARGET: http://HOST:PORT, https://HOST:PORT (certificate pinned on first use),
ssh://[USER@]HOST[:PORT][?agent_port=N] (your own OpenSSH forwards the agent's
loopback port), or a name from $XDG_CONFIG_HOME/sparkdeck/hosts.toml.
Token: --token, then $SPARKDECK_TOKEN, then the hosts file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator

from agent import __version__
from tui.client import Target, TargetError, parse_url


def _err(message: str, code: int = 2) -> int:
    print(f"sparkdeck: {message}", file=sys.stderr)
    return code


DASHBOARD_EPILOG = """examples:
  sparkdeck ssh://me@spark                 the agent on spark, through an ssh tunnel to its 127.0.0.1:8611
  sparkdeck spark                          a hosts-file entry (sparkdeck hosts add spark ssh://me@spark --fetch-token)
  sparkdeck https://spark.lan:8611         an agent bound to a LAN address with TLS (pinned on first use)

other commands (each has --help):
  sparkdeck setup me@spark                 install the agent as a service on spark over ssh and add it to the hosts file
  sparkdeck forward spark vllm             forward a model's port (or any port) on spark to this machine
  sparkdeck status spark                   one-shot summary of one agent
  sparkdeck hosts add|list|remove|unpin    manage the hosts file
  sparkdeck incidents spark                earlier runs of the agent that did not end cleanly
  sparkdeck watch spark CONTAINER          be notified when a running container ends
"""


def dashboard_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sparkdeck",
        description="Terminal dashboard for sparkdeck agents, reached over your own ssh (ssh://) or directly (http(s)://).",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the epilog's lines as written
        epilog=DASHBOARD_EPILOG,
    )
    p.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="ssh://[USER@]HOST[:SSH_PORT][?agent_port=N], http(s)://HOST:PORT or a hosts-file name (default: every host in the hosts file)",
    )
    p.add_argument("--token", help="bearer token (default: $SPARKDECK_TOKEN, then the hosts file)")
    p.add_argument("--fingerprint", metavar="SHA256:...", help="expected certificate fingerprint of an https:// agent (pins it up front)")
    p.add_argument("--version", action="version", version=f"sparkdeck {__version__}")
    return p


def _connection_options(p: argparse.ArgumentParser, token_help: str | None = None, timeout_s: float = 5.0) -> None:
    """--token, --timeout and --fingerprint, as every one-shot command takes them."""
    p.add_argument("--token", help=token_help)
    p.add_argument("--timeout", type=float, default=timeout_s, metavar="S")
    p.add_argument("--fingerprint", metavar="SHA256:...", help="expected certificate fingerprint of an https:// agent")


def status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparkdeck status", description="One-shot summary of one agent; exit 0 when reachable.")
    p.add_argument("target", metavar="TARGET", nargs="?")
    p.add_argument("--json", action="store_true", help="print the StatusReport JSON (see --schema)")
    p.add_argument("--schema", action="store_true", help="print the JSON schema of --json output and exit")
    _connection_options(p)
    return p


def incidents_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparkdeck incidents", description="Earlier runs of the agent that did not end cleanly (crash, freeze, reboot).")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--json", action="store_true", help="print the agent's IncidentList JSON (agent/protocol.py), newest first")
    _connection_options(p)
    return p


def watch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparkdeck watch", description="Have the agent notify when a running container ends (it is not restarted).")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("container", metavar="CONTAINER", help="its name or id")
    p.add_argument("--off", action="store_true", help="stop watching it")
    _connection_options(p, token_help="a control token", timeout_s=10.0)
    return p


def hosts_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparkdeck hosts", description="Manage the hosts file (created 0600).")
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add or replace a host")
    add.add_argument("name")
    add.add_argument("url")
    group = add.add_mutually_exclusive_group()
    group.add_argument("--token")
    group.add_argument("--token-file", metavar="FILE")
    lst = sub.add_parser("list", help="list hosts (tokens are never printed)")
    lst.add_argument("--json", action="store_true")
    rm = sub.add_parser("remove", help="remove a host")
    rm.add_argument("name")
    unpin = sub.add_parser("unpin", help="forget a pinned agent certificate (after checking the new one out of band)")
    unpin.add_argument("hostport", metavar="HOST:PORT")
    add.add_argument("--fetch-token", action="store_true", help="ssh:// only: create a control token on the agent over SSH (asks first)")
    add.add_argument("--yes", action="store_true", help="with --fetch-token: do not ask")
    add.add_argument(
        "--remote-agent",
        metavar="CMD",
        default=None,
        help="with --fetch-token: how to run sparkdeck-agent on the host (default: $SPARKDECK_REMOTE_AGENT or sparkdeck-agent)",
    )
    return p


def forward_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sparkdeck forward", description="Forward a model's port (or any port) on the agent's machine to this one.")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("what", metavar="MODEL_OR_PORT")
    p.add_argument("--token")
    p.add_argument("--local-port", type=int, metavar="N", help="local port (default: a free one)")
    return p


class _Unusable(Exception):
    """The TARGET cannot be used (unknown host, bad URL, failed tunnel or pin): a usage error."""


@contextlib.contextmanager
def _one_agent(args: argparse.Namespace) -> Iterator[Target]:
    """TARGET made reachable (hosts file, token, SSH tunnel, pinned TLS) for one-shot commands;
    the tunnel is torn down after. Only the preparation's errors become _Unusable."""
    from tui.config import resolve_target
    from tui.transport import prepare

    try:
        prepared = prepare(resolve_target(args.target, args.token), fingerprint=args.fingerprint)
    except (TargetError, ValueError) as exc:
        raise _Unusable(str(exc)) from None
    try:
        for note in prepared.notes:
            print(note, file=sys.stderr)
        yield prepared.target
    finally:
        prepared.close()


def cmd_status(argv: list[str]) -> int:
    from tui.config import load_alert_rules
    from tui.status import StatusReport, fetch_status, render_text

    args = status_parser().parse_args(argv)
    if args.schema:
        print(json.dumps(StatusReport.model_json_schema(), indent=2))
        return 0
    if not args.target:
        return _err("status needs a TARGET (http://HOST:PORT or a hosts-file name)")
    try:
        rules = load_alert_rules()
    except (TargetError, ValueError) as exc:
        return _err(str(exc))
    try:
        with _one_agent(args) as target:
            report = fetch_status(args.target, target, rules, timeout=args.timeout)
    except _Unusable as exc:
        return _err(str(exc))
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(render_text(report), file=sys.stdout if report.state == "ok" else sys.stderr)
    return report.exit_code


def cmd_incidents(argv: list[str]) -> int:
    from tui.incidents import fetch, render_text

    args = incidents_parser().parse_args(argv)
    try:
        with _one_agent(args) as target:
            code, body, error = fetch(target, timeout=args.timeout)
    except _Unusable as exc:
        return _err(str(exc))
    if body is None:
        return _err(f"{args.target}: {error}", code)
    print(json.dumps(body, indent=2) if args.json else render_text(body))
    return code


def cmd_watch(argv: list[str]) -> int:
    import urllib.parse

    from tui.client import ApiFailure, rest_call

    args = watch_parser().parse_args(argv)
    path = f"/api/v1/containers/{urllib.parse.quote(args.container, safe='')}/watch"
    try:
        with _one_agent(args) as target:
            body = rest_call(target.url, target.token, "DELETE" if args.off else "POST", path, timeout=args.timeout, context=target.ssl)
    except _Unusable as exc:
        return _err(str(exc))
    except ApiFailure as exc:
        return _err(f"{args.target}: {exc.detail}" if exc.status == 0 else f"{args.target}: HTTP {exc.status}: {exc.detail}", 1)
    name = (body or {}).get("name") or args.container
    print(f"no longer watching {name}" if args.off else f"watching {name} on {args.target}: its end will be notified")
    return 0


def cmd_hosts(argv: list[str]) -> int:
    from tui.config import HostEntry, hosts_path, load_hosts, save_hosts

    args = hosts_parser().parse_args(argv)
    try:
        hosts = load_hosts()
        if args.action == "add":
            url = parse_url(args.url)
            if "://" in args.name or not args.name.strip():
                return _err("a host name must not be a URL")
            token = args.token
            if args.fetch_token:
                token = _fetch_token(url, args.yes, args.remote_agent)
                if token is None:
                    return _err("no token fetched (declined)", 1)
            hosts[args.name] = HostEntry(args.name, url, token, args.token_file)
            path = save_hosts(hosts)
            print(f"saved {args.name} -> {url} in {path}")
        elif args.action == "unpin":
            from tui.pinning import KnownAgents

            store = KnownAgents()
            if not store.remove(args.hostport):
                return _err(f"no pinned certificate for {args.hostport} in {store.path}", 1)
            print(f"forgot the certificate of {args.hostport}; the next connection pins what it presents")
        elif args.action == "remove":
            if args.name not in hosts:
                return _err(f"no host named {args.name!r} in {hosts_path()}", 1)
            del hosts[args.name]
            save_hosts(hosts)
            print(f"removed {args.name}")
        else:
            rows = [
                {"name": h.name, "url": h.url, "auth": "token" if h.token else (f"token_file {h.token_file}" if h.token_file else "none")}
                for h in hosts.values()
            ]
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print(f"no hosts yet ({hosts_path()}); add one: sparkdeck hosts add NAME http://HOST:PORT --token-file FILE")
            else:
                width = max(len(r["name"]) for r in rows)
                for r in rows:
                    print(f"{r['name']:<{width}}  {r['url']}  ({r['auth']})")
    except TargetError as exc:
        return _err(str(exc))
    return 0


def cmd_dashboard(argv: list[str]) -> int:
    from tui.config import client_path, load_alert_rules, load_hosts, resolve_target

    args = dashboard_parser().parse_args(argv)
    try:
        hosts = load_hosts()
        names = args.targets or list(hosts)
        if not names:
            return _err("no TARGET given and no hosts in the hosts file; try: sparkdeck http://127.0.0.1:8611 --token TOKEN")
        targets = [resolve_target(t, args.token, hosts) for t in names]
        rules = load_alert_rules()
    except (TargetError, ValueError) as exc:
        return _err(str(exc))
    from tui.transport import prepare

    opened = []
    try:
        for t in targets:
            opened.append(prepare(t, fingerprint=args.fingerprint))
    except TargetError as exc:
        for p in opened:
            p.close()
        return _err(str(exc))
    for p in opened:
        for note in p.notes:
            print(note, file=sys.stderr)
    from tui import gc_policy
    from tui.app import SparkdeckApp

    try:
        app = SparkdeckApp([p.target for p in opened], rules=rules, config_path=client_path())
        gc_policy.tune()  # after the imports and the app's construction: all of it lives until the process ends
        app.run()
    finally:
        for p in opened:  # tear the SSH tunnels down on exit
            p.close()
    return 0


def _fetch_token(url: str, yes: bool, remote_agent: str | None = None) -> str | None:
    """Create a token on an SSH-reachable agent, with the user's consent."""
    import socket

    from tui.ssh import SshError, fetch_token, parse_ssh_url

    if not url.startswith("ssh://"):
        raise TargetError("--fetch-token needs an ssh:// URL")
    target = parse_ssh_url(url)
    name = f"sparkdeck-{socket.gethostname().split('.')[0]}"[:64]
    if not yes:
        answer = input(f"Create a control token named {name!r} on {target.host} by running `sparkdeck-agent token add` over SSH? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return None
    command = remote_agent or os.environ.get("SPARKDECK_REMOTE_AGENT") or "sparkdeck-agent"
    try:
        return fetch_token(target, name, agent_command=command)
    except SshError as exc:
        raise TargetError(str(exc)) from None


def cmd_forward(argv: list[str]) -> int:
    from tui.config import resolve_target
    from tui.transport import Prepared, forward, prepare

    args = forward_parser().parse_args(argv)
    try:
        target = resolve_target(args.target, args.token)
        # a plain port needs no agent; a model name is looked up through it
        prepared = Prepared(target) if args.what.isdigit() else prepare(target)
    except (TargetError, ValueError) as exc:
        return _err(str(exc))
    try:
        tunnel = forward(target, prepared.target, args.what, local_port=args.local_port)
        if tunnel is None:
            return 0
        try:
            while tunnel.proc is not None and tunnel.proc.poll() is None:
                time.sleep(0.5)
            return _err("the SSH forward ended", 1)
        except KeyboardInterrupt:
            return 0
        finally:
            tunnel.close()
    except TargetError as exc:
        return _err(str(exc))
    except Exception as exc:  # ApiFailure and friends: one line, no traceback
        return _err(str(exc))
    finally:
        prepared.close()


def setup_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sparkdeck setup",
        description="Install the agent as a systemd service on a machine over SSH (your OpenSSH, sudo there) and add it to the hosts file.",
    )
    p.add_argument("destination", metavar="[USER@]HOST[:PORT]", help="as you would ssh to it (a ~/.ssh/config alias works)")
    p.add_argument("--name", help="name in the hosts file (default: HOST)")
    p.add_argument("--yes", action="store_true", help="answer yes to the questions (installing your public key, a Host alias)")
    p.add_argument("--dry-run", action="store_true", help="run only the read-only checks; print every remote command instead of running it")
    p.add_argument("--wheel", metavar="FILE", help="install this sparkdeck wheel (default: built from this installation)")
    p.add_argument("--scope", choices=("read", "control"), default="control", help="scope of the token this laptop gets (default control)")
    p.add_argument(
        "--pip-args",
        default="",
        metavar="ARGS",
        help="extra options for the remote pip, e.g. '--no-index --find-links /srv/wheels' (default: $SPARKDECK_SETUP_PIP_ARGS)",
    )
    return p


def cmd_setup(argv: list[str]) -> int:
    from pathlib import Path

    from tui.setup import Options, SetupError, run

    args = setup_parser().parse_args(argv)
    opts = Options(args.destination, args.name, args.yes, args.dry_run, Path(args.wheel) if args.wheel else None, args.scope, args.pip_args)
    try:
        return run(opts)
    except (SetupError, TargetError) as exc:
        return _err(str(exc), 1)
    except KeyboardInterrupt:
        return _err("interrupted", 130)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from tui.ssh import close_tunnels_on_exit

    close_tunnels_on_exit()  # a closed terminal (SIGHUP) or a kill (SIGTERM) must not leave ssh forwards behind
    if argv and argv[0] == "setup":
        return cmd_setup(argv[1:])
    if argv and argv[0] == "status":
        return cmd_status(argv[1:])
    if argv and argv[0] == "incidents":
        return cmd_incidents(argv[1:])
    if argv and argv[0] == "hosts":
        return cmd_hosts(argv[1:])
    if argv and argv[0] == "watch":
        return cmd_watch(argv[1:])
    if argv and argv[0] == "forward":
        return cmd_forward(argv[1:])
    return cmd_dashboard(argv)


if __name__ == "__main__":
    sys.exit(main())
