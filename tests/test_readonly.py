"""A reader who may not write the database's folder: every read command shows all that was committed, including
the commits a pull left in the ``-wal`` file (another user's pull, or one killed before it folded them into the
database file), or says in one line why it cannot (exit 1). Never an older state in silence.

Permissions stop nothing for root, so as root each reader runs as the user nobody (``setpriv``); as any other
user the folder's own permissions do it. The database is made of real fixture records, by ``import``."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
FIRST, LATER = SPINE_CONDITION_IDS[:5], SPINE_CONDITION_IDS[5:]  # imported and folded in; left in the -wal file


def reader_prefix() -> list[str]:
    """How to run a command as a user for whom the folder's permissions count."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("running as root without setpriv: no user here for whom permissions count")
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    problem = _cannot_run_as(tuple(prefix))
    if problem:
        pytest.skip(f"the user nobody cannot run trialsync from this Python environment and checkout: {problem}")
    return prefix


@functools.lru_cache(maxsize=None)
def _cannot_run_as(prefix: tuple[str, ...]) -> str:
    """Why ``prefix`` cannot run this checkout's trialsync with this Python (a virtual environment in a private
    folder, say), or "" when it can."""
    result = subprocess.run([*prefix, sys.executable, "-c", "import typer, sqlite_utils, trialsync.cli"],
                            env={"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                            cwd="/", capture_output=True, text=True, timeout=60)
    return "" if result.returncode == 0 else (result.stderr.strip().splitlines() or ["unknown"])[-1]


def run(prefix: list[str], db: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "TRIALSYNC_RATE": "0", "COLUMNS": "200", "HOME": "/nonexistent", "LC_ALL": "C.UTF-8"}
    return subprocess.run([*prefix, sys.executable, "-m", "trialsync", *args, "--db", str(db)], env=env, cwd="/",
                          capture_output=True, text=True, timeout=120)


def read_as_other(db: Path, *args: str) -> subprocess.CompletedProcess:
    return run(reader_prefix(), db, *args)


def read_as_owner(db: Path, *args: str) -> subprocess.CompletedProcess:
    return run([], db, *args)


def write_records(path: Path, ids: list[str]) -> Path:
    path.write_text(json.dumps([fixture_record(i) for i in ids]))
    return path


def topics_of(db: Path, **uri) -> list:
    query = "&".join(f"{k}={v}" for k, v in {"mode": "ro", **uri}.items())
    conn = sqlite3.connect(f"{db.as_uri()}?{query}", uri=True)
    try:
        return conn.execute("SELECT topic, count(*) FROM topic_studies GROUP BY topic").fetchall()
    finally:
        conn.close()


@pytest.fixture
def folder(tmp_path):
    """A folder anyone may enter and read (pytest's own tmp_path is the owner's only); read-only at the end."""
    made = Path(tempfile.mkdtemp(prefix="trialsync-ro-"))
    made.chmod(0o755)
    yield made
    made.chmod(0o755)
    shutil.rmtree(made)


def import_as_owner(cli, db: Path, records: Path) -> None:
    assert cli("import", str(records), "--topic", "spine", "--db", str(db)).code == 0


def leave_in_wal(db: Path, records: Path) -> None:
    """Import ``records`` in another process that ends right after the commit, as a killed pull does: the
    commit stays in the -wal file (a second connection keeps the import's close from folding it in)."""
    code = f"""
import os, sqlite3, sys
from trialsync.cli import main
keep = sqlite3.connect({str(db)!r})
keep.execute("SELECT count(*) FROM sqlite_master").fetchone()
sys.argv = ["trialsync", "import", {str(records)!r}, "--topic", "spine", "--db", {str(db)!r}]
try:
    main()
except SystemExit as exc:
    os._exit(exc.code or 0)
os._exit(0)
"""
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done


@pytest.fixture
def shared(cli, folder, tmp_path):
    """A database whose last import is committed but only in its -wal file (with the -shm file beside it),
    in a folder the reader may not write to; files readable by all, as a umask of 022 leaves them."""
    db = folder / "trials.db"
    import_as_owner(cli, db, write_records(tmp_path / "first.json", FIRST))
    leave_in_wal(db, write_records(tmp_path / "later.json", LATER))
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    assert wal.stat().st_size > 0 and shm.exists()
    for file in (db, wal, shm):
        file.chmod(0o644)
    # The trap: read as it stands (immutable), the database file alone is the state before the last import.
    assert topics_of(db, immutable=1) == [("spine", len(FIRST))]
    assert topics_of(db) == [("spine", len(FIRST) + len(LATER))]
    folder.chmod(0o555)
    return db


def stale_copy(db: Path, tmp_path: Path) -> Path:
    """The database file alone, without its -wal file: the older state a reader must never be shown."""
    copy = tmp_path / "stale" / db.name
    copy.parent.mkdir()
    shutil.copyfile(db, copy)
    return copy


def listing(db: Path) -> list[str]:
    return sorted(os.listdir(db.parent))


READ_COMMANDS = [
    ("status-report", "spine", "-f", "json"),
    ("list", "spine", "-f", "json"),
    ("show", LATER[0], "-f", "json"),
    ("changes", "spine", "-f", "json"),
    ("pulls", "-f", "json"),
    ("topics", "list", "-f", "json"),
    ("history", "spine", "-f", "json"),
    ("export", "spine", "-f", "nl"),
]


# -- (a) the -wal and -shm files are there and readable: the reader sees every commit -------------------------


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_reader_who_may_not_write_the_folder_sees_the_commits_in_the_wal_file(shared, tmp_path, args):
    before = listing(shared)
    truth = read_as_owner(shared, *args)
    stale = read_as_owner(stale_copy(shared, tmp_path), *args)
    assert truth.returncode == 0, truth
    assert stale.stdout != truth.stdout  # the command shows what the -wal file holds
    seen = read_as_other(shared, *args)
    assert (seen.returncode, seen.stdout, seen.stderr) == (0, truth.stdout, ""), seen
    assert listing(shared) == before


def test_the_database_file_itself_read_only_changes_nothing(shared):
    shared.chmod(0o444)
    seen = read_as_other(shared, "list", "spine", "-f", "json")
    assert seen.returncode == 0, seen
    assert sorted(row["nct_id"] for row in json.loads(seen.stdout)) == sorted(FIRST + LATER)


def test_a_stale_or_empty_shm_file_is_not_trusted(shared):
    """A -shm file no writer holds may describe an older -wal; SQLite reads the -wal file itself then."""
    shm = Path(f"{shared}-shm")
    shared.parent.chmod(0o755)
    shm.write_bytes(b"")
    shared.parent.chmod(0o555)
    seen = read_as_other(shared, "list", "spine", "-f", "json")
    assert seen.returncode == 0, seen
    assert len(json.loads(seen.stdout)) == len(FIRST) + len(LATER)


# -- (b), (c) it cannot read them: one line, exit 1, naming the file and what to do -------------------------


def assert_one_line(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result
    assert result.stdout == "" and result.stderr.count("\n") == 1 and result.stderr.startswith("trialsync: "), result
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_no_shm_file_and_no_right_to_make_one_is_one_line(shared, args):
    shared.parent.chmod(0o755)
    Path(f"{shared}-shm").unlink()
    shared.parent.chmod(0o555)
    before = listing(shared)
    result = read_as_other(shared, *args)
    assert_one_line(result, f"{shared}-wal", "trialsync pull", str(shared.parent), "write")
    assert listing(shared) == before


@pytest.mark.parametrize("writable", [False, True], ids=["read-only folder", "writable folder"])
def test_an_unreadable_wal_file_is_one_line(shared, writable):
    Path(f"{shared}-wal").chmod(0o600)
    shared.parent.chmod(0o777 if writable else 0o555)
    result = read_as_other(shared, "list", "spine")
    assert_one_line(result, f"{shared}-wal", "cannot be read", "trialsync pull")


def test_an_unreadable_shm_file_is_one_line(shared):
    Path(f"{shared}-shm").chmod(0o600)
    result = read_as_other(shared, "status-report", "spine")
    assert_one_line(result, f"{shared}-shm", "cannot be read", "trialsync pull")


def test_the_owner_s_pull_or_import_folds_the_wal_in_and_the_reader_sees_it_all(shared, cli, tmp_path):
    shared.parent.chmod(0o755)
    Path(f"{shared}-shm").unlink()
    shared.parent.chmod(0o555)
    assert read_as_other(shared, "list", "spine").returncode == 1
    shared.parent.chmod(0o755)
    import_as_owner(cli, shared, write_records(tmp_path / "again.json", LATER[:1]))
    assert not Path(f"{shared}-wal").exists()
    shared.parent.chmod(0o555)
    seen = read_as_other(shared, "list", "spine", "-f", "json")
    assert seen.returncode == 0, seen
    assert len(json.loads(seen.stdout)) == len(FIRST) + len(LATER)


# -- (d) no -wal file: the database file holds every commit ----------------------------------------------------


@pytest.mark.parametrize("leftover", ["none", "empty -wal", "-shm only"])
def test_without_a_wal_file_the_database_is_read_as_it_stands(cli, folder, tmp_path, leftover):
    db = folder / "trials.db"
    import_as_owner(cli, db, write_records(tmp_path / "all.json", FIRST + LATER))
    assert not Path(f"{db}-wal").exists()
    if leftover == "empty -wal":
        Path(f"{db}-wal").write_bytes(b"")
    elif leftover == "-shm only":
        Path(f"{db}-shm").write_bytes(bytes(32768))
    for file in folder.iterdir():
        file.chmod(0o644)
    folder.chmod(0o555)
    before = listing(db)
    seen = read_as_other(db, "list", "spine", "-f", "json")
    assert seen.returncode == 0, seen
    assert sorted(row["nct_id"] for row in json.loads(seen.stdout)) == sorted(FIRST + LATER)
    assert listing(db) == before
