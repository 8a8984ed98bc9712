"""Import contracts: the wire protocol and the client's connection layer stay framework-free."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("textual", "fastapi", "starlette", "uvicorn", "pynvml", "psutil")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", ["agent/protocol.py", "tui/client.py"])
def test_module_imports_no_framework(module):
    path = ROOT / module
    if not path.exists():
        pytest.fail(f"{module} is missing")
    assert not imported_modules(path) & set(FORBIDDEN)


@pytest.mark.parametrize("module", ["agent.protocol", "tui.client"])
def test_importing_loads_no_framework_transitively(module):
    code = f"import sys, {module}; bad = [m for m in {FORBIDDEN!r} if m in sys.modules]; print(','.join(bad))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    assert out == "", f"{module} pulls in {out}"


def test_collectors_import_no_web_framework():
    for path in (ROOT / "agent" / "collectors").glob("*.py"):
        assert not imported_modules(path) & {"fastapi", "starlette", "uvicorn", "textual"}, path.name
