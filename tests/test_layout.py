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
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # from a.b import c: maybe module a.b.c
    return names


def test_the_runtime_imports_no_repository_tool() -> None:
    found = {f"{path.relative_to(ROOT)}: {name}" for path in (ROOT / "app").rglob("*.py") for name in imported(path)
             if any(name == tool or name.startswith(tool + ".") for tool in TOOLS)}
    assert not found, sorted(found)


def test_routers_share_helpers_through_modules_of_their_own_never_each_other() -> None:
    """A router is a module of app/api/ that defines `router`; it may import the helper modules
    (deps, errors, inputs, model_requests, serialize), not another router."""
    api = ROOT / "app" / "api"
    routers = {path.stem for path in api.glob("*.py") if "\nrouter = APIRouter(" in path.read_text()}
    assert {"inference", "attributions", "training", "models"} <= routers  # the check finds them
    found = {f"{name}.py imports {other}" for name in routers for other in routers - {name}
             if f"convscope.api.{other}" in imported(api / f"{name}.py")}
    assert not found, sorted(found)
