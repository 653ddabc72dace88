"""Imports flow one way: the runtime (app/, installed as convscope) never imports the repository's
tools (models/training/, bench/, examples/, tests/), which are not in the wheel."""

import ast
from pathlib import Path

from tests import ROOT

TOOLS = ("models", "convscope.models.training", "bench", "examples", "tests")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_runtime_imports_no_repository_tool() -> None:
    found = {f"{path.relative_to(ROOT)}: {name}" for path in (ROOT / "app").rglob("*.py") for name in imported(path)
             if any(name == tool or name.startswith(tool + ".") for tool in TOOLS)}
    assert not found, sorted(found)
