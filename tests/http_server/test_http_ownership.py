"""monitor.http owns bcrypt and ssl serving, and reaches prometheus_client only through
monitor.exporter (the import rules of ARCHITECTURE.md, for this package)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "monitor"


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def modules() -> dict[str, set[str]]:
    found = {str(p.relative_to(PACKAGE.parent)): imports(p) for p in PACKAGE.rglob("*.py")}
    assert "monitor/http/_server.py" in found
    return found


def test_bcrypt_is_imported_by_the_auth_module_only() -> None:
    users = {
        name for name, imps in modules().items() if any(i.split(".")[0] == "bcrypt" for i in imps)
    }
    assert users == {"monitor/http/_auth.py"}


def test_the_http_package_never_imports_prometheus_client() -> None:
    for name, imps in modules().items():
        if name.startswith("monitor/http/"):
            assert not any(i.split(".")[0] == "prometheus_client" for i in imps), name
