"""The shape of the tree: the import contracts in pyproject.toml, and what they cannot express."""

from __future__ import annotations

import ast
from pathlib import Path

from importlinter import cli as importlinter_cli

ROOT = Path(__file__).resolve().parents[2]
STAGE_PACKAGES = ("core/ai", "core/kommo")


def test_import_contracts_hold():
    """Layers (nothing below imports the composition root or an adapter), no cycles among sibling
    packages or modules at any depth, core free of Telegram, Celery and our adapters."""
    assert importlinter_cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return names


def test_core_never_imports_the_aiohttp_server():
    """import-linter cannot forbid a submodule of an external package: the aiohttp *client* is
    fine in core/kommo, `aiohttp.web` is not."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py")
                 if any(n == "aiohttp.web" or n.startswith("aiohttp.web.") or n.startswith("aiohttp.web_")
                        for n in _imports(p))]
    assert offenders == []


def test_stage_packages_stay_small_and_say_what_flows_through_them():
    for folder in STAGE_PACKAGES:
        modules = [p for p in (ROOT / folder).glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 10, f"{folder} has {len(modules)} modules directly inside it"
    for init in (ROOT / "core").rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{init.relative_to(ROOT)} has no docstring"
