"""The README a new user reads: every command is documented, and CI runs exactly its test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trialsync.cli import app, topics_app

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def command_names() -> list[str]:
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    names += [f"topics {c.name}" for c in topics_app.registered_commands]
    return names


@pytest.mark.parametrize("name", command_names())
def test_every_command_has_help_and_a_readme_section(name, cli):
    result = cli(*name.split(), "--help")
    assert result.code == 0 and "Usage: trialsync" in result.out
    assert re.search(rf"^### `trialsync {re.escape(name)}", README, re.M), f"no README section for {name}"


def test_the_readme_opens_with_the_two_commands():
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", README, re.S)
    assert "trialsync pull" in blocks[0] and "pip install" in blocks[0]
    assert "pytest" in blocks[1]


def test_ci_runs_exactly_the_readme_test_command():
    test_command = re.findall(r"```(?:sh|bash)\n(.*?)```", README, re.S)[1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_exit_codes_are_documented():
    for code in ("0", "1", "2", "75", "130"):
        assert re.search(rf"^\| `{code}` \|", README, re.M), code


def test_every_document_the_readme_links_exists():
    links = re.findall(r"\]\((docs/[^)]+)\)", README)
    assert {"docs/how-a-pull-works.md", "docs/tables.md", "docs/benchmark.md", "docs/developing.md"} <= set(links)
    for link in links:
        assert (ROOT / link).is_file(), link


def test_the_readme_s_doctor_example_names_the_schema_version_of_this_release():
    from trialsync.store.db import SCHEMA_VERSION

    shown = re.findall(r"^ok   schema: version (\d+),", README, re.M)
    assert shown and set(shown) == {str(SCHEMA_VERSION)}
