"""Data flows one way: facts -> api -> transform -> store -> sync / reports -> render -> mcp_server -> cli. Checked
on the imports of every module, resolved to the layer each belongs to."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "trialsync"

FACTS = {"errors", "ids", "statuses", "dates", "topics", "vocab", "places", "jsontext", "defaults", "change_kinds", "results_rule",
         "__init__"}
# layer -> the layers its modules may import (a module may always import its own package's modules)
ALLOWED = {
    "facts": {"facts"},
    "api": {"facts"},
    "transform": {"facts"},
    "store": {"facts", "transform"},
    "sync": {"facts", "api", "transform", "store"},
    "reports": {"facts", "transform", "store"},
    "render": {"facts"},
    # the MCP server answers as the commands do, from the same reports rendered the same way; it never pulls
    "mcp_server": {"facts", "store", "reports", "render"},
    "cli": {"facts", "api", "transform", "store", "sync", "reports", "render", "mcp_server"},
    "__main__": {"cli"},
}
OUTSIDE_LIBRARIES = {"typer": {"cli"}, "rich": {"cli", "render"}, "requests": {"api"}, "urllib3": {"api"},
                     "tenacity": {"api"}, "sqlite_utils": {"store"}, "filelock": {"store"},
                     "platformdirs": {"store"},
                     # the MCP SDK (an optional extra) and what it is built on: only the server imports them
                     "mcp": {"mcp_server"}, "mcp_types": {"mcp_server"}, "pydantic": {"mcp_server"}}


def layer_of(module: str) -> str:
    """The layer of a module given as its dotted path inside the package ("store.db", "errors")."""
    top = module.split(".")[0]
    return "facts" if top in FACTS else top


def modules() -> list[str]:
    return sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py"))


def imports_of(module: str) -> tuple[set[str], set[str]]:
    """(our modules, outside libraries) that ``module`` imports, ours as dotted paths inside the package."""
    path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text())
    ours, theirs = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
                ours.add(".".join(target) or "__init__")
            elif node.module:
                name = node.module.split(".")[0]
                if name == "trialsync":
                    ours.add(".".join(node.module.split(".")[1:]) or "__init__")
                else:
                    theirs.add(name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name.split(".")[0]
                if name == "trialsync":
                    ours.add(".".join(alias.name.split(".")[1:]) or "__init__")
                else:
                    theirs.add(name)
    return ours, theirs


def test_the_package_is_laid_out_in_layers():
    layers = {layer_of(m) for m in modules()}
    assert layers == set(ALLOWED)
    for package in ("api", "transform", "store", "sync", "reports", "render", "cli"):
        assert (PACKAGE / package / "__init__.py").exists(), package


@pytest.mark.parametrize("module", modules())
def test_module_imports_only_from_its_own_or_lower_layers(module):
    ours, theirs = imports_of(module)
    layer = layer_of(module)
    for imported in ours:
        assert layer_of(imported) in ALLOWED[layer] | {layer}, f"{module} imports {imported}"
    for library, users in OUTSIDE_LIBRARIES.items():
        if library in theirs:
            assert layer in users, f"{module} imports {library}"


def test_a_migration_imports_no_live_code():
    ours, _ = imports_of("store.migrations")
    assert ours <= {"store.db"}, ours


def test_no_dead_code():
    """vulture finds no unused code; what it cannot see used is named in .ci/vulture-allow.py."""
    vulture = pytest.importorskip("vulture")
    root = PACKAGE.parent
    finder = vulture.Vulture()
    finder.scavenge([str(PACKAGE), str(root / ".ci" / "vulture-allow.py")])
    unused = [f"{item.filename}:{item.first_lineno}: {item.message}"
              for item in finder.get_unused_code(min_confidence=60)]
    assert unused == []


# Each table and the one store module that writes it (migrations create and derive them all).
TABLE_OWNERS = {
    # studies_fts: written by the triggers migration 6 puts on the tables it indexes, and by store.studies, which
    # sets them aside (search_index_deferred) to index a page's studies at once, or rebuilds it whole.
    "studies": "store.studies", "studies_fts": "store.studies", "search_index_deferred": "store.studies", "site_points": "store.studies", "study_fetches": "store.studies",
    "changes": "store.history", "versions": "store.history", "results_due_noted": "store.history",
    "topic_studies": "store.membership",
    "pulls": "store.pulls", "pull_status_counts": "store.pulls",
    "topics": "store.topics", "digest_backlog": "store.topics",
    "data_models": "store.drift", "drift_notes": "store.drift",
}
_WRITE = re.compile(r"\b(?:INSERT(?: OR [A-Z]+)? INTO|UPDATE|DELETE FROM) ([a-z_.{}]+)")


@pytest.mark.parametrize("module", [m for m in modules() if m != "store.migrations"])
def test_each_table_is_written_only_by_its_owner(module):
    text = (PACKAGE / (module.replace(".", "/") + ".py")).read_text()
    for table in _WRITE.findall(text):
        if table.startswith("temp."):  # a connection's own temporary tables (reports.asof)
            continue
        owner = "store.studies" if table == "{table}" else TABLE_OWNERS.get(table)  # the child tables
        assert owner == module, f"{module} writes {table}, which {owner or 'no module'} owns"
