"""Shell completion: `trialsync completion SHELL` prints a script, and the shell's question (click's
``_TRIALSYNC_COMPLETE`` protocol, as the bash script asks it) gets commands, options, topics and statuses,
without ever creating or changing a database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trialsync.statuses import STATUS_LABELS
from trialsync.vocab import read_status

ROOT = Path(__file__).parent.parent


def complete(words: str, db: Path, **env: str) -> list[str]:
    """The candidates bash gets for the last word of ``words`` (an empty last word after a trailing space)."""
    parts = words.split(" ")
    done = subprocess.run(
        [sys.executable, "-m", "trialsync"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TRIALSYNC_DB": str(db), "_TRIALSYNC_COMPLETE": "complete_bash",
             "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1), **env})
    assert done.returncode == 0 and done.stderr == "", done
    return done.stdout.split()


@pytest.mark.parametrize("shell, marks", [
    ("bash", ["_TRIALSYNC_COMPLETE=complete_bash", "complete -o default -F _trialsync_completion trialsync"]),
    ("zsh", ["#compdef trialsync", "_TRIALSYNC_COMPLETE=complete_zsh"]),
    ("fish", ["complete --command trialsync", "_TRIALSYNC_COMPLETE=complete_fish"]),
])
def test_completion_prints_the_shells_script(cli, shell, marks):
    result = cli("completion", shell)
    assert result.code == 0 and result.err == "", result
    for mark in marks:
        assert mark in result.out


def test_completion_refuses_a_shell_it_has_no_script_for(cli):
    result = cli("completion", "tcsh")
    assert result.code == 2 and len(result.err.splitlines()) == 1 and "tcsh" in result.err


def test_topic_names_come_from_the_database(cli, tmp_path):
    for name in ("knee", "kidney", "spine"):
        assert cli("topics", "add", name, "--condition", name).code == 0
    db = tmp_path / "cli.db"
    assert complete("trialsync status-report k", db) == ["kidney", "knee"]
    assert complete("trialsync topics show s", db) == ["spine", "stem-cell-spine"]
    assert complete("trialsync pull knee ki", db) == ["kidney"]
    before = db.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir())
    assert complete("trialsync changes --db " + str(db) + " sp", tmp_path / "elsewhere.db") == ["spine"]
    assert (db.stat().st_mtime_ns, sorted(p.name for p in tmp_path.iterdir())) == before


def test_completing_without_a_database_creates_none(tmp_path):
    db = tmp_path / "none" / "trialsync.db"
    assert complete("trialsync history ", db) == ["stem-cell-spine"]
    assert not (tmp_path / "none").exists()


def test_a_damaged_database_gives_no_stored_topic_and_no_error(tmp_path):
    db = tmp_path / "damaged.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    assert complete("trialsync list ", db) == ["stem-cell-spine"]
    assert db.read_bytes() == b"SQLite format 3\x00" + b"\xff" * 200


def test_status_values_complete_and_are_read_back(tmp_path):
    db = tmp_path / "absent.db"
    assert complete("trialsync list --status rec", db) == ["recruiting"]
    assert complete("trialsync list --status recruiting,comp", db) == ["recruiting,completed"]
    every = complete("trialsync list --site-status ", db)
    assert every == [value.lower() for value in STATUS_LABELS]
    assert [read_status(value) for value in every] == list(STATUS_LABELS)


def test_commands_and_options_complete(tmp_path):
    db = tmp_path / "absent.db"
    assert complete("trialsync status", db) == ["status-report"]
    assert "--chart" in complete("trialsync history --", db)
    assert complete("trialsync topics re", db) == ["remove"]
