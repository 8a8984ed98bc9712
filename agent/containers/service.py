"""The container part of the agent, wired once: engine, tracker, catalog, launcher, audit log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.containers.audit import AuditLog
from agent.containers.catalog import Catalog, Secrets, default_models_file
from agent.containers.engine import Engine
from agent.containers.launcher import Launcher
from agent.containers.tracker import ContainerTracker


class ContainerService:
    def __init__(
        self,
        *,
        state_dir: Path,
        broadcast: Callable[..., None],
        docker_host: str | None = None,
        interval_s: float = 1.0,
        models_file: Path | None = None,
        secrets_file: Path | None = None,
        models_home: Path | None = None,
        proc_root: str = "/proc",
        sys_root: str = "/sys",
        audit_max_bytes: int = 4 * 1024 * 1024,
        models_bind_allowed: list[str] | None = None,
    ):
        self.engine = Engine(docker_host)
        self.tracker = ContainerTracker(self.engine, interval_s=interval_s, proc_root=proc_root, sys_root=sys_root)
        self.catalog = Catalog(models_file or default_models_file())
        self.secrets = Secrets(secrets_file or state_dir / "secrets.env")
        self.launcher = Launcher(self.engine, self.tracker, self.catalog, self.secrets, broadcast, models_bind_allowed)
        self.launcher.models_home = models_home
        self.audit = AuditLog(state_dir / "audit.log", max_bytes=audit_max_bytes)

    async def start(self) -> None:
        await self.tracker.start()

    async def stop(self) -> None:
        await self.launcher.close()
        await self.tracker.stop()
