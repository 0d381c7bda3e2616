"""Files and streams trialsync writes never destroy what they should not: `export -o` refuses the database and
its side files under any name, its partial file never clobbers a user's file, and a symlink loop, a closed
standard output or a full device each fail in one line, for every command that prints."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record

ROOT = Path(__file__).parent.parent


@pytest.fixture
def spine(cli, tmp_path):
    path = tmp_path / "spine.json"
    path.write_text(json.dumps([fixture_record(i) for i in SPINE_CONDITION_IDS[:4]]))
    assert cli("import", str(path), "--topic", "spine").code == 0
    return cli


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["cli.db", "cli.db-wal", "cli.db-shm", "cli.db.lock", "link-to-db", "hard-link-to-wal",
                                  "sub/../cli.db"])
@pytest.mark.parametrize("force", [False, True])
def test_export_never_writes_over_the_database_or_its_side_files(spine, tmp_path, name, force):
    db = tmp_path / "cli.db"
    (tmp_path / "sub").mkdir()
    (tmp_path / "link-to-db").symlink_to(db)
    for side in ("cli.db-wal", "cli.db-shm"):
        (tmp_path / side).touch(exist_ok=True)
    os.link(tmp_path / "cli.db-wal", tmp_path / "hard-link-to-wal")
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    result = spine("export", "-o", str(tmp_path / name), *(["--force"] if force else []))
    assert result.code == 2 and result.out == "", result
    assert result.err.count("\n") == 1 and "is part of the database" in result.err, result
    assert {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()} == before


def test_an_export_leaves_a_users_partial_file_alone(spine, tmp_path):
    mine = tmp_path / ".spine.csv.partial"
    mine.write_text("my own notes\n")
    result = spine("export", "-o", str(tmp_path / "spine.csv"))
    assert result.code == 0, result
    assert mine.read_text() == "my own notes\n"
    with open(tmp_path / "spine.csv", newline="") as written:
        assert len(list(csv.reader(written))) == 5  # a header and four studies
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")) == [".spine.csv.partial"]


def test_an_export_to_a_dash_goes_to_standard_output_and_writes_no_file(spine, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    to_dash, plain = spine("export", "-o", "-"), spine("export")
    assert to_dash.code == 0 and to_dash.out == plain.out and len(list(csv.DictReader(to_dash.out.splitlines(keepends=True)))) == 4, to_dash
    assert not (tmp_path / "-").exists()


def test_an_export_to_a_symlink_loop_fails_in_one_line(spine, tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    result = spine("export", "-o", str(tmp_path / "a"))
    assert result.code == 2 and result.err.count("\n") == 1 and "symlink loop" in result.err, result


def run_with_stdout(tmp_path, stdout, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRIALSYNC_DB": str(tmp_path / "cli.db"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "trialsync", *args], env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60)


COMMANDS = [("export",), ("export", "--raw"), ("list", "spine"), ("status-report", "spine"), ("show", SPINE_CONDITION_IDS[0]),
            ("changes", "spine"), ("history", "spine"), ("pulls",), ("topics", "list"), ("--version",)]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_full_device_fails_in_one_line(spine, tmp_path, args):
    with open("/dev/full", "w") as full:
        result = run_with_stdout(tmp_path, full, *args)
    assert result.returncode == 1, result
    assert result.stderr == "trialsync: cannot write to standard output: No space left on device\n", result


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_closed_standard_output_fails_in_one_line(spine, tmp_path, args):
    env = {**os.environ, "TRIALSYNC_DB": str(tmp_path / "cli.db"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(["sh", "-c", 'exec "$0" -m trialsync "$@" >&-', sys.executable, *args], env=env,
                            stderr=subprocess.PIPE, text=True, timeout=60)
    assert result.returncode == 1, result
    assert result.stderr == "trialsync: cannot write to standard output: it is closed\n", result



@pytest.mark.parametrize("name", ["/dev/stdout", "/proc/self/fd/1", "/dev/fd/1"])
def test_export_to_standard_output_by_name_when_it_is_closed_fails_in_one_line(spine, tmp_path, name):
    db = tmp_path / "cli.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    env = {**os.environ, "TRIALSYNC_DB": str(db), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(["sh", "-c", 'exec "$0" -m trialsync "$@" >&-', sys.executable, "export", "spine",
                             "-o", name], env=env, stderr=subprocess.PIPE, text=True, timeout=60)
    assert result.returncode == 1, result
    assert result.stderr == f"trialsync: cannot write to {name}: standard output is closed\n", result
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
