"""Tasks stand alone: no task module imports another, nothing outside prefine/tasks imports a concrete task, tasks never import recipes.

Shared pieces (encoding, batching, columns, prediction output, the interface) live in their own
modules under prefine/tasks; the toy task in docs/adding-a-task.md uses only those, as any task
written outside the package would.
"""

from __future__ import annotations

import ast
from pathlib import Path

from prefine.tasks.interface import BUILTIN_TASK_MODULES

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_task_module_imports_another_task_or_a_recipe():
    for path in sorted((ROOT / "prefine" / "tasks").glob("*.py")):
        own = f"prefine.tasks.{path.stem}"
        imported = imported_modules(path)
        others = sorted(name for name in imported if name in BUILTIN_TASK_MODULES and name != own)
        assert not others, f"{path.name} imports {others}"
        recipes = sorted(name for name in imported if name.startswith("prefine.recipes"))
        assert not recipes, f"{path.name} imports the recipes above it: {recipes}"


def test_nothing_outside_the_tasks_imports_a_concrete_task():
    outside = [path for path in (ROOT / "prefine").rglob("*.py") if "tasks" not in path.relative_to(ROOT / "prefine").parts[:1]]
    outside.append(ROOT / "tests" / "tasks" / "text_length_task.py")
    for path in outside:
        concrete = sorted(name for name in imported_modules(path) if name in BUILTIN_TASK_MODULES)
        assert not concrete, f"{path.relative_to(ROOT)} imports {concrete}"
