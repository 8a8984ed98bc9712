"""Scoped API tokens, stored only as salted hashes.

A token is ``sdk_`` + 43 random URL-safe characters (256 bits). The state dir's
``tokens.json`` (mode 0600) holds, per token, its name, scope, a random salt and
SHA-256(salt || token): with that much entropy a slow KDF adds nothing, and the
file never holds a usable secret. Verification compares against every entry in
constant time. The file is re-read when it changes, so ``token revoke`` in another
process takes effect on the next request without a restart. A file that cannot be read
or parsed fails closed (no token is valid), is logged at most once a minute, and is
re-read on failed lookups, so fixing its mode or content needs no restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.ratelog import RateLimitedLog

Scope = Literal["read", "control"]
SCOPES: tuple[Scope, ...] = ("read", "control")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TOKEN_PREFIX = "sdk_"
RETRY_S = 1.0  # a broken tokens.json is re-read at most this often, on failed lookups
log = logging.getLogger("sparkdeck.auth")


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class TokenInfo:
    name: str
    scope: Scope
    created: float

    def allows(self, needed: Scope) -> bool:
        return needed == "read" or self.scope == "control"


def _digest(salt: bytes, token: str) -> str:
    return hashlib.sha256(salt + token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: list[dict] = []
        self.broken: str | None = None  # why the file cannot be used, while it cannot
        self.clock = time.monotonic
        self._retried = -RETRY_S
        self._complaints = RateLimitedLog(log, period_s=60.0)

    # -- reading -------------------------------------------------------------------
    def _load(self) -> list[dict]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._entries, self.broken = None, [], None
            return self._entries
        except OSError as exc:  # e.g. the state dir lost its x bit
            return self._broken(f"cannot stat it: {exc.strerror or exc}")
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            with self._lock:
                self._stamp = stamp
                try:
                    data = json.loads(self.path.read_text(encoding="utf-8"))
                    self._entries = list(data["tokens"])
                    if not all(isinstance(e, dict) for e in self._entries):
                        raise ValueError("an entry is not an object")
                except OSError as exc:
                    return self._broken(f"cannot read it: {exc.strerror or exc}")
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    return self._broken(f"it is not a valid token file ({type(exc).__name__}: {str(exc)[:80]})")
                if self.broken:
                    self.broken = None
                    log.info("%s is readable again: %d token(s) loaded", self.path, len(self._entries))
        return self._entries

    def _broken(self, why: str) -> list[dict]:
        """Fail closed: no token is valid until the file can be read again (see ``verify``)."""
        self.broken, self._entries = why, []
        self._complaints.log(
            logging.ERROR,
            "%s: %s; every request is refused (401) until it is fixed. Fix: make it readable by the agent's user "
            "(`chmod 600` and `chown` it to that user) or, if it is corrupt, move it aside and re-create tokens "
            "with `sparkdeck-agent token add NAME`",
            self.path,
            why,
        )
        return self._entries

    def verify(self, token: str | None) -> TokenInfo | None:
        if not token or len(token) > 200:
            return None
        found = self._match(token)
        if found is None and self.broken and self.clock() - self._retried >= RETRY_S:
            # a chmod/chown back does not change the mtime: re-read on a failed lookup (at most
            # once per RETRY_S) so the agent recovers without a restart
            self._retried, self._stamp = self.clock(), None
            found = self._match(token)
        return found

    def _match(self, token: str) -> TokenInfo | None:
        found = None
        for entry in self._load():
            try:
                ok = hmac.compare_digest(_digest(bytes.fromhex(entry["salt"]), token), entry["hash"])
            except (KeyError, ValueError, TypeError):
                continue
            if ok and found is None:  # keep looping: time does not depend on the match position
                found = TokenInfo(entry["name"], entry["scope"], entry.get("created", 0.0))
        return found

    def list(self) -> list[TokenInfo]:
        return [TokenInfo(e["name"], e["scope"], e.get("created", 0.0)) for e in self._load()]

    # -- writing (CLI) ---------------------------------------------------------------
    def _write(self, mutate) -> None:
        from agent import statefiles  # 0600 and the state dir's owner, also when root runs the CLI

        lock_path = self.path.with_suffix(".lock")
        fd = statefiles.open_file(lock_path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._stamp = None
            entries = [dict(e) for e in self._load()]
            entries = mutate(entries)
            statefiles.write_file(self.path, json.dumps({"version": 1, "tokens": entries}, indent=1).encode())
            self._stamp = None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def add(self, name: str, scope: str) -> str:
        if not NAME_RE.match(name):
            raise TokenError("token name must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
        if scope not in SCOPES:
            raise TokenError(f"scope must be one of: {', '.join(SCOPES)}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)

        def mutate(entries: list[dict]) -> list[dict]:
            if any(e.get("name") == name for e in entries):
                raise TokenError(f"a token named {name!r} exists; revoke it first or pick another name")
            return entries + [{"name": name, "scope": scope, "salt": salt.hex(), "hash": _digest(salt, token), "created": time.time()}]

        self._write(mutate)
        return token

    def revoke(self, name: str) -> None:
        def mutate(entries: list[dict]) -> list[dict]:
            kept = [e for e in entries if e.get("name") != name]
            if len(kept) == len(entries):
                raise TokenError(f"no token named {name!r}")
            return kept

        self._write(mutate)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class FailedAuthLimiter:
    """Per-address limit on failed authentications (a sliding window), for 429 + Retry-After.

    Memory is bounded: at most ``max_addresses`` addresses are tracked, oldest evicted.
    """

    def __init__(self, limit: int = 20, window_s: float = 60.0, max_addresses: int = 4096, clock=time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self.clock = clock
        self._fails: dict[str, list[float]] = {}

    def _recent(self, addr: str) -> list[float]:
        now = self.clock()
        times = [t for t in self._fails.get(addr, ()) if now - t < self.window_s]
        if times:
            self._fails[addr] = times
        else:
            self._fails.pop(addr, None)
        return times

    def retry_after(self, addr: str) -> int | None:
        """Seconds to wait if this address is locked out, else None."""
        if self.limit <= 0:
            return None
        times = self._recent(addr)
        if len(times) < self.limit:
            return None
        return max(1, int(times[-self.limit] + self.window_s - self.clock()) + 1)

    def failed(self, addr: str) -> None:
        if addr not in self._fails and len(self._fails) >= self.max_addresses:
            self._fails.pop(next(iter(self._fails)))
        self._fails.setdefault(addr, []).append(self.clock())
        del self._fails[addr][: -self.limit or None]
