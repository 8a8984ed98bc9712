"""``sparkdeck-agent``: serve, token add/list/revoke, doctor, version."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from agent import __version__
from agent.settings import DEFAULT_PORT, AgentSettings, ConfigError, load_settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file (default: $SPARKDECK_CONFIG or ~/.config/sparkdeck/agent.toml)")
    p.add_argument("--state-dir", metavar="DIR", help="state directory (default: $SPARKDECK_STATE_DIR or ~/.local/state/sparkdeck)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparkdeck-agent", description="sparkdeck agent: GPU workstation telemetry and control")
    parser.add_argument("--version", action="version", version=f"sparkdeck-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the agent")
    _common(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--interval", type=float, metavar="S", help="sampling interval, 0.1-60 s (default 1.0)")
    serve.add_argument("--simulate", metavar="SCENARIO", help="fake NVML: gb10, h100, h200x2, no-driver, gpu-lost, unsupported, hang")
    serve.add_argument("--insecure", action="store_true", default=None, help="allow a non-loopback bind without TLS")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--tls", action="store_true", default=None, help="serve HTTPS/WSS with the certificate from `tls init`")
    serve.add_argument("--models", metavar="FILE", help="model catalog (TOML) whose entries override the built-ins by name")

    token = sub.add_parser("token", help="manage API tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    add = tsub.add_parser("add", help="create a token and print it once")
    add.add_argument("name")
    add.add_argument("--scope", choices=["read", "control"], default="read")
    _common(add)
    lst = tsub.add_parser("list", help="list tokens (names and scopes only)")
    lst.add_argument("--json", action="store_true")
    _common(lst)
    rev = tsub.add_parser("revoke", help="revoke a token; open streams using it close within a second")
    rev.add_argument("name")
    _common(rev)

    tls = sub.add_parser("tls", help="self-signed TLS certificate for HTTPS/WSS")
    tlsub = tls.add_subparsers(dest="tls_command", required=True)
    tinit = tlsub.add_parser("init", help="create a key and self-signed certificate in <state_dir>/tls")
    tinit.add_argument("--name", action="append", default=[], metavar="HOST", help="a name or address clients use (repeatable)")
    tinit.add_argument("--force", action="store_true", help="replace an existing certificate")
    _common(tinit)
    tfp = tlsub.add_parser("fingerprint", help="print the certificate's SHA-256 fingerprint, to compare with what the client shows")
    _common(tfp)

    inst = sub.add_parser("install-service", help="install and start the systemd service (root)")
    inst.add_argument("--dry-run", action="store_true", help="print every file and command instead")
    inst.add_argument("--bind", metavar="ADDR", help="address the service listens on, for a new agent.toml (default 127.0.0.1; later, edit host there)")
    inst.add_argument("--port", type=int, help=f"port, for a new agent.toml (default {DEFAULT_PORT})")
    inst.add_argument(
        "--models-home", metavar="DIR", help="home whose ~/.cache model volumes use (default: the home of $SUDO_USER); recorded as models_home in agent.toml"
    )
    inst.add_argument("--root", default="/", help=argparse.SUPPRESS)  # relocate every path (tests, image builds)
    uninst = sub.add_parser("uninstall-service", help="stop and remove the systemd service (root)")
    uninst.add_argument("--purge", action="store_true", help="also remove /var/lib/sparkdeck, /etc/sparkdeck and the user")
    uninst.add_argument("--dry-run", action="store_true")
    uninst.add_argument("--root", default="/", help=argparse.SUPPRESS)

    notify = sub.add_parser("notify", help="notifications (Apprise URLs in [notify])")
    nsub = notify.add_subparsers(dest="notify_command", required=True)
    ntest = nsub.add_parser("test", help="send one test notification to every configured URL")
    _common(ntest)

    doctor = sub.add_parser("doctor", help="show what the agent can see and how to fix what it cannot")
    _common(doctor)
    doctor.add_argument("--simulate", metavar="SCENARIO")
    doctor.add_argument("--json", action="store_true")
    return parser


def _settings(args: argparse.Namespace, **extra) -> AgentSettings:
    return load_settings(args.config, state_dir=args.state_dir, **extra)


def _admin_settings(args: argparse.Namespace, **extra) -> AgentSettings:
    """token/tls/doctor: as root or the service user with nothing chosen, the installed service's config and state dir."""
    from agent import installed

    args.config, args.state_dir = installed.defaults(args.config, args.state_dir)
    return _settings(args, **extra)


def _fail(message: str, code: int = 2) -> int:
    print(f"sparkdeck-agent: {message}", file=sys.stderr)
    return code


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        interval_s=args.interval,
        simulate=args.simulate,
        insecure=args.insecure,
        log_level=args.log_level,
        tls=args.tls,
        models_file=args.models,
    )
    if settings.models_file is not None and not settings.models_file.is_file():
        return _fail(f"model catalog {settings.models_file} does not exist")
    if not settings.loopback and not settings.tls_enabled and not settings.insecure:
        return _fail(
            f"refusing to listen on {settings.host} without TLS: tokens and telemetry would cross the network in clear text.\n"
            "  Keep the default 127.0.0.1 and connect over SSH (sparkdeck ssh://HOST), configure tls_cert/tls_key,\n"
            "  or pass --insecure if this network is trusted."
        )
    if settings.tls_enabled:
        missing = [str(p) for p in settings.tls_files if not p.is_file()]
        if missing:
            return _fail(f"TLS is on but {', '.join(missing)} does not exist; run `sparkdeck-agent tls init --name HOST`")
    from agent import logs

    logs.setup(settings.log_level)
    from agent.runtime import Agent
    from agent.server import bind, build_server, raise_open_files_limit

    raise_open_files_limit()
    agent = Agent(settings)
    if settings.simulate:
        import logging

        logging.getLogger("sparkdeck").warning("SIMULATED GPU (%s): every frame is marked simulated", settings.simulate)
    if not agent.tokens.list():
        import logging

        logging.getLogger("sparkdeck").warning("no API tokens yet: create one with `sparkdeck-agent token add NAME --scope read|control`")
    server = build_server(agent)
    try:
        sock = bind(server.config)
    except SystemExit:  # uvicorn logged why (address in use, permission denied)
        return _fail(f"cannot listen on {settings.host}:{settings.port}")
    server.run(sockets=[sock])
    return 0 if server.started else 1


def cmd_token(args: argparse.Namespace) -> int:
    from agent import installed
    from agent.auth import TokenError, TokenStore

    settings = _admin_settings(args)
    store = TokenStore(settings.tokens_file)
    try:
        installed.check(settings.state_dir, args.config)
        installed.check_readable(store.path)
        if args.token_command == "add":
            token = store.add(args.name, args.scope)
            print(f"Created {args.scope} token {args.name!r} in {store.path}. It is shown once; store it now:")
            print(token)
        elif args.token_command == "list":
            items = store.list()
            if args.json:
                print(json.dumps([{"name": t.name, "scope": t.scope, "created": t.created} for t in items]))
            elif not items:
                print("no tokens; create one with: sparkdeck-agent token add NAME --scope read|control")
            else:
                for t in items:
                    print(f"{t.name:<24} {t.scope:<8} {time.strftime('%Y-%m-%d %H:%M', time.localtime(t.created))}")
        elif args.token_command == "revoke":
            store.revoke(args.name)
            print(f"Revoked {args.name!r}; its open streams close within a second.")
    except (TokenError, installed.InstalledError) as exc:
        return _fail(str(exc))
    except PermissionError as exc:
        return _fail(
            f"cannot write {exc.filename}: permission denied; run this with sudo, or as the state dir's owner (sudo -u {installed.USER} for the service)"
        )
    return 0


def cmd_tls(args: argparse.Namespace) -> int:
    from agent import installed, tls

    settings = _admin_settings(args)
    if args.tls_command == "init":
        try:
            installed.check(settings.state_dir, args.config)
            cert, key, fp = tls.init(settings.state_dir, args.name, force=args.force)
        except (FileExistsError, installed.InstalledError) as exc:
            return _fail(str(exc))
        except PermissionError as exc:
            return _fail(f"cannot write {exc.filename}: permission denied; run this with sudo")
        print(f"Wrote {cert} and {key} (0600). Serve it with `sparkdeck-agent serve --tls` (or tls = true).")
        print("Clients pin this fingerprint on first connection; compare it:")
        print(fp)
        return 0
    cert = settings.tls_files[0]
    if not cert.is_file():
        return _fail(f"no certificate at {cert}; run `sparkdeck-agent tls init`")
    print(tls.fingerprint_pem(cert.read_bytes()))
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    from agent import service

    try:
        if args.command == "install-service":
            plan = service.install(
                bind=args.bind, port=args.port, models_home=Path(args.models_home) if args.models_home else None, dry_run=args.dry_run, root=Path(args.root)
            )
        else:
            plan = service.uninstall(purge=args.purge, dry_run=args.dry_run, root=Path(args.root))
    except service.ServiceError as exc:
        return _fail(str(exc))
    print("\n".join(plan.lines))
    if plan.token:
        print("The first control token is shown once; store it now (e.g. in the client's hosts.toml):")
        print(plan.token)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent import doctor

    checks = doctor.run_checks(_admin_settings(args, simulate=args.simulate), config=args.config)
    if args.json:
        print(json.dumps(doctor.as_json(checks), indent=1))
    else:
        print(doctor.render(checks))
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    import socket

    from agent.alerts.delivery import Delivery
    from agent.containers.catalog import Secrets

    settings = _admin_settings(args)
    if not (settings.notify.urls or settings.notify.routes):
        return _fail('no notification URLs: set [notify] urls = ["ntfy://…"] in agent.toml (or SPARKDECK_NOTIFY__URLS as a JSON list)')
    delivery = Delivery(settings.notify, Secrets(settings.secrets_file or settings.state_dir / "secrets.env").get)
    host = socket.gethostname()
    results = delivery.send_now(f"[{host}] sparkdeck test", f"A test notification from sparkdeck-agent on {host}.")
    for name, ok, error in results:
        print(f"{'sent' if ok else 'FAILED'}  {name}" + (f": {error}" if error else ""))
    return 0 if all(ok for _, ok, _ in results) else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "token":
            return cmd_token(args)
        if args.command == "doctor":
            return cmd_doctor(args)
        if args.command == "notify":
            return cmd_notify(args)
        if args.command == "tls":
            return cmd_tls(args)
        if args.command in ("install-service", "uninstall-service"):
            return cmd_service(args)
    except ConfigError as exc:
        return _fail(str(exc))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _fail(f"invalid configuration: {problems}")
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
