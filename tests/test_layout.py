"""Data flows one way: api -> transform -> store -> sync/reports -> output -> cli. Checked on the imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "trialsync"

# module -> trialsync modules it may import
ALLOWED = {
    "errors": set(),
    "records": set(),
    "statuses": set(),
    "topics": {"errors"},
    "api": {"errors", "records"},
    "transform": {"records"},
    "schema": {"transform"},
    "store": {"errors", "statuses", "topics", "transform", "schema"},
    "sync": {"store", "api", "errors", "topics", "transform", "records"},
    "importer": {"store", "errors", "topics", "transform"},
    "reports": {"errors", "statuses", "store", "transform"},
    "output": {"statuses"},
    "cli": {"errors", "store", "api", "sync", "reports", "output", "importer", "topics", "records"},
    "__main__": {"cli"},
    "__init__": set(),
}
OUTSIDE_LIBRARIES = {"typer": {"cli"}, "rich": {"cli", "output"}, "requests": {"api"}, "tenacity": {"api"},
                     "sqlite_utils": {"schema", "store", "sync", "importer", "reports"}}


def imports_of(module: str) -> tuple[set[str], set[str]]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    ours, theirs = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.module:
                    ours.add(node.module.split(".")[0])
                else:
                    ours.update(alias.name for alias in node.names if alias.name != "__version__")
            elif node.module:
                theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name.split(".")[0]
                (ours if name == "trialsync" else theirs).add(name)
    return ours - {"__init__"}, theirs


def test_every_module_is_covered():
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_module_imports_only_its_upstream_neighbours(module):
    ours, theirs = imports_of(module)
    assert ours <= ALLOWED[module], f"{module} imports {sorted(ours - ALLOWED[module])}"
    for library, users in OUTSIDE_LIBRARIES.items():
        if library in theirs:
            assert module in users, f"{module} imports {library}"
