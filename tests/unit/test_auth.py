"""Token store: salted hashes only, 0600, constant-time check, revocation seen without restart."""

from __future__ import annotations

import json
import stat

import pytest

from agent.auth import TokenError, TokenStore, bearer_token


def test_add_verify_scope_and_file_holds_no_secret(tmp_path):
    store = TokenStore(tmp_path / "state" / "tokens.json")
    read = store.add("laptop", "read")
    control = store.add("admin", "control")
    assert read.startswith("sdk_") and len(read) > 40 and read != control
    assert store.verify(read).scope == "read"
    assert store.verify(control).name == "admin"
    assert store.verify(read + "x") is None and store.verify("") is None and store.verify(None) is None
    text = store.path.read_text()
    assert read not in text and control not in text
    entries = json.loads(text)["tokens"]
    assert {e["name"] for e in entries} == {"laptop", "admin"}
    assert len({e["salt"] for e in entries}) == 2  # salted per token
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_scope_allows():
    from agent.auth import TokenInfo

    assert TokenInfo("a", "control", 0).allows("read") and TokenInfo("a", "control", 0).allows("control")
    assert TokenInfo("a", "read", 0).allows("read") and not TokenInfo("a", "read", 0).allows("control")


def test_revocation_by_another_store_instance_is_seen(tmp_path):
    server_side = TokenStore(tmp_path / "tokens.json")
    cli_side = TokenStore(tmp_path / "tokens.json")
    token = cli_side.add("laptop", "control")
    assert server_side.verify(token) is not None
    cli_side.revoke("laptop")
    assert server_side.verify(token) is None


def test_bad_names_scopes_and_duplicates(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    for bad in ("", "../x", "a b", "x" * 65, "-lead"):
        with pytest.raises(TokenError):
            store.add(bad, "read")
    with pytest.raises(TokenError):
        store.add("ok", "admin")
    store.add("ok", "read")
    with pytest.raises(TokenError, match="exists"):
        store.add("ok", "read")
    with pytest.raises(TokenError, match="no token"):
        store.revoke("nope")


def test_corrupt_file_fails_closed(tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    token = store.add("a", "read")
    store.path.write_text("{not json")
    assert store.verify(token) is None


@pytest.mark.parametrize(
    "header,expected",
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), (None, None), ("", None)],
)
def test_bearer_parsing(header, expected):
    assert bearer_token(header) == expected
