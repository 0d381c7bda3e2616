"""Direct unit tests of the store's small promises (found unpinned by mutation testing): exact return values
and error messages of db.py's opening and error helpers, topics, membership, the change log and the pull log.
Fast: no subprocess, no CLI, no network."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import orjson
import pytest

from conftest import fixture_record
from trialsync import store
from trialsync.change_kinds import REFERENCE_ADDED, SITE_ADDED, SITE_REMOVED, SITE_STATUS, WARNING
from trialsync.defaults import DEFAULT_TOPIC_NAME
from trialsync.errors import NotFound, StoreError, UsageError
from trialsync.store import db as store_db
from trialsync.store import history, membership, pulls, topics
from trialsync.store.studies import (
    API, SaveContext, diff_references, diff_sites, is_earlier_state, same_content, save_studies, site_label,
)
from trialsync.topics import BUILTIN_TOPICS, Topic
from trialsync.transform import study_rows

SCHEMA = store_db.SCHEMA_VERSION


def made_db(path: Path) -> Path:
    """A new, current trialsync database at ``path``, closed (its -wal and -shm files folded in and gone)."""
    with store.open_for_writing(path):
        pass
    return path


def add_topic(db, name: str, cond: str | None = None) -> Topic:
    topic = Topic(name, {"query.cond": cond or name})
    store.save_topic(db, topic)
    return topic


def save_records(db, topic: str, *nct_ids: str) -> int:
    pull = store.start_pull(db, topic)
    save_studies(db, [study_rows(fixture_record(i)) for i in nct_ids],
                 SaveContext(topic, pull, API, False, "2026-11-24"))
    return pull


# -- db.py: paths --------------------------------------------------------------------------------------------


def test_default_db_path_is_trialsync_db_in_the_users_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert store.default_db_path() == tmp_path / "data" / "trialsync" / "trialsync.db"


def test_database_files_are_the_real_path_and_its_three_neighbours(monkeypatch, tmp_path):
    real = tmp_path / "real.db"
    (tmp_path / "alias.db").symlink_to(real)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = [real, tmp_path / "real.db-wal", tmp_path / "real.db-shm", tmp_path / "real.db.lock"]
    assert store_db.database_files("~/alias.db") == expected
    assert store_db.database_files(tmp_path / "alias.db") == expected
    assert not real.exists()  # named whether they exist or not


# -- db.py: what a SQLite error means ------------------------------------------------------------------------


def error_with_code(text: str, code: int) -> sqlite3.DatabaseError:
    exc = sqlite3.DatabaseError(text)
    exc.sqlite_errorcode = code
    return exc


@pytest.mark.parametrize("exc, damaged", [
    (error_with_code("anything", 11), True),  # SQLITE_CORRUPT
    (error_with_code("anything", 26), True),  # SQLITE_NOTADB
    (error_with_code("anything", 267), True),  # SQLITE_CORRUPT_VTAB: an extended code of CORRUPT
    (error_with_code("database disk image is malformed", 1), False),  # the code decides, not the words
    (error_with_code("anything", 522), False),  # SQLITE_IOERR_SHORT_READ
    (error_with_code("anything", 0), False),
    (sqlite3.DatabaseError("database disk image is malformed"), True),
    (sqlite3.DatabaseError("file is NOT A DATABASE"), True),
    (sqlite3.DatabaseError("index corrupted"), True),
    (sqlite3.OperationalError("malformed JSON"), False),
    (sqlite3.OperationalError("no such table: topics"), False),
])
def test_is_damage(exc, damaged):
    assert store_db._is_damage(exc) is damaged


def test_a_real_not_a_database_error_is_damage(tmp_path):
    (tmp_path / "junk.db").write_bytes(b"junk" * 100)
    with pytest.raises(sqlite3.DatabaseError) as caught:
        sqlite3.connect(tmp_path / "junk.db").execute("PRAGMA user_version")
    assert store_db._is_damage(caught.value)


@pytest.mark.parametrize("text, what", [
    ("database or disk is full", "the disk holding {where} is full"),
    ("Disk is full", "the disk holding {where} is full"),
    ("attempt to write a readonly database", "{where} is read-only (check the file's and its folder's permissions)"),
    ("file is read-only", "{where} is read-only (check the file's and its folder's permissions)"),
    ("database disk image is malformed",
     "{where} is damaged (`sqlite3 FILE 'PRAGMA integrity_check'` says where)"),
    ("file is not a database", "{where} is damaged (`sqlite3 FILE 'PRAGMA integrity_check'` says where)"),
    ("database is locked", "{where} is locked by another program"),
    ("database table is BUSY", "{where} is locked by another program"),
    ("unable to open database file", "cannot open {where}"),
    ("disk I/O error", "reading or writing {where} failed (disk I/O error)"),
    ("no such table: topics", "{where} failed"),
    # the first that fits wins
    ("disk is full; readonly; locked", "the disk holding {where} is full"),
    ("readonly and locked", "{where} is read-only (check the file's and its folder's permissions)"),
    ("database disk image is malformed, and locked",
     "{where} is damaged (`sqlite3 FILE 'PRAGMA integrity_check'` says where)"),
    ("locked: unable to open", "{where} is locked by another program"),
    ("unable to open after a disk i/o error", "cannot open {where}"),
])
def test_describe_error_says_what_happened_in_one_line(text, what):
    exc = sqlite3.OperationalError(text)
    named = store.describe_error(exc, "/data/t.db")
    assert isinstance(named, StoreError)
    assert str(named) == what.format(where="database /data/t.db") + ": " + text
    assert str(store.describe_error(exc)) == what.format(where="the database") + ": " + text
    assert str(store.describe_error(exc, Path("/data/t.db"))) == str(named)


def test_describe_error_goes_by_the_code_for_damage():
    exc = error_with_code("something odd", 11)
    assert str(store.describe_error(exc, "x.db")) == (
        "database x.db is damaged (`sqlite3 FILE 'PRAGMA integrity_check'` says where): something odd")


# -- db.py: a first release's database -----------------------------------------------------------------------


def legacy_database(path: Path, tables: bool = True, marked: bool = True) -> Path:
    from sqlite_utils import Database

    from trialsync.store.migrations import migrations

    conn = sqlite3.connect(path, isolation_level=None)
    if tables:
        migrations.apply(Database(conn), stop_before="m002_sync_state_per_topic")
        if not marked:
            conn.execute("DELETE FROM _sqlite_migrations")
    else:
        conn.execute("CREATE TABLE topics (name TEXT)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    return path


def test_is_first_release_database(tmp_path):
    assert store_db._is_first_release_database(legacy_database(tmp_path / "first.db"), False) is True
    assert store_db._is_first_release_database(legacy_database(tmp_path / "unmarked.db", marked=False), False) is False
    assert store_db._is_first_release_database(legacy_database(tmp_path / "other.db", tables=False), False) is False
    (tmp_path / "junk.db").write_bytes(b"SQLite format 3\x00" + b"\x01" * 200)
    assert store_db._is_first_release_database(tmp_path / "junk.db", False) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.db", "junk.db", "other.db", "unmarked.db"]


def test_is_first_release_database_lacking_one_table(tmp_path):
    path = legacy_database(tmp_path / "first.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TABLE changes")
    conn.close()
    assert store_db._is_first_release_database(path, False) is False


def test_is_first_release_database_with_exactly_the_tables_it_needs(tmp_path):
    path = legacy_database(tmp_path / "first.db")
    conn = sqlite3.connect(path, isolation_level=None)
    for table in ("conditions", "interventions", "sponsors", "locations", "keywords", "secondary_ids", "mesh_terms",
                  "versions", "pull_status_counts"):
        conn.execute(f"DROP TABLE {table}")
    assert {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {
        "topics", "studies", "pulls", "topic_studies", "changes", "_sqlite_migrations"}
    conn.close()
    assert store_db._is_first_release_database(path, False) is True


def test_is_first_release_database_in_wal_mode_creates_nothing_beside_it(tmp_path):
    path = legacy_database(tmp_path / "first.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    assert store_db.inspect_file(path) == store_db.FileState("ours", 1)
    assert store_db._is_first_release_database(path, True) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.db"]


def test_is_first_release_database_reads_the_commits_in_its_wal_file(tmp_path):
    path = legacy_database(tmp_path / "first.db", marked=False)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('trialsync', 'm', 'x')")
    try:
        assert Path(f"{path}-wal").stat().st_size > 0
        assert store_db._is_first_release_database(path, True) is True  # immutable=1 would not see the row
    finally:
        writer.close()


# -- db.py: how a database is read ---------------------------------------------------------------------------


def unwritable_folder(monkeypatch):
    monkeypatch.setattr(store_db.os, "access", lambda path, mode: False)


def test_reading_mode_in_a_writable_folder(tmp_path):
    path = tmp_path / "t.db"
    assert store_db._reading_mode(path) == "mode=ro"
    Path(f"{path}-wal").write_bytes(b"commits")
    assert store_db._reading_mode(path) == "mode=ro"  # SQLite may make the -shm file here
    Path(f"{path}-shm").write_bytes(b"")
    assert store_db._reading_mode(path) == "mode=ro"


def test_reading_mode_in_a_folder_that_cannot_be_written(tmp_path, monkeypatch):
    unwritable_folder(monkeypatch)
    path = tmp_path / "t.db"
    assert store_db._reading_mode(path) == "mode=ro&immutable=1"
    Path(f"{path}-wal").write_bytes(b"")
    assert store_db._reading_mode(path) == "mode=ro&immutable=1"  # an empty -wal file holds no commit
    Path(f"{path}-wal").write_bytes(b"commits")
    Path(f"{path}-shm").write_bytes(b"")
    assert store_db._reading_mode(path) == "mode=ro"


def test_reading_mode_refuses_commits_it_could_not_read(tmp_path, monkeypatch):
    unwritable_folder(monkeypatch)
    real = tmp_path / "t.db"
    alias = tmp_path / "alias.db"
    alias.symlink_to(real)
    Path(f"{real}-wal").write_bytes(b"commits")
    with pytest.raises(StoreError) as caught:
        store_db._reading_mode(alias)
    assert str(caught.value) == (
        f"cannot read database {alias}: its {real}-wal file holds commits not yet in the database file, and SQLite "
        f"reads them only through a t.db-shm file, which you may not create in {tmp_path}; ask its owner to run "
        f"`trialsync pull --db {real}`, which folds them in, or to let you write to that folder")


def test_reading_mode_when_the_wal_file_cannot_be_looked_at(tmp_path):
    path = tmp_path / "t.db"
    wal = Path(f"{path}-wal")
    wal.symlink_to(wal)  # a loop: stat fails, but not with "no such file"
    with pytest.raises(StoreError) as caught:
        store_db._reading_mode(path)
    assert str(caught.value) == (
        f"cannot read database {path}: cannot look at its {wal} file (Too many levels of symbolic links); "
        f"ask its owner to give you access to {tmp_path}")


def test_reading_mode_when_the_wal_file_cannot_be_read(tmp_path):
    path = tmp_path / "t.db"
    Path(f"{path}-wal").mkdir()  # a size, but no file to open
    with pytest.raises(StoreError) as caught:
        store_db._reading_mode(path)
    assert str(caught.value) == (
        f"cannot read database {path}: its {path}-wal file (which holds commits not yet in the database file) "
        f"cannot be read: Is a directory; ask its owner to let you read it, or to run `trialsync pull --db {path}`, "
        "which folds those commits into the database file")


def test_reading_mode_when_the_shm_file_cannot_be_read(tmp_path):
    path = tmp_path / "t.db"
    Path(f"{path}-wal").write_bytes(b"commits")
    Path(f"{path}-shm").mkdir()
    with pytest.raises(StoreError) as caught:
        store_db._reading_mode(path)
    assert str(caught.value) == (
        f"cannot read database {path}: its {path}-shm file (which SQLite needs to read the commits in t.db-wal) "
        f"cannot be read: Is a directory; ask its owner to let you read it, or to run `trialsync pull --db {path}`, "
        "which folds those commits into the database file")


# -- db.py: opening for reading ------------------------------------------------------------------------------


def test_open_for_reading_a_missing_or_empty_file_is_not_found_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    message = (f"no trialsync database at {tmp_path / 'none.db'} yet: `trialsync pull` or `trialsync import FILE` "
               "makes one")
    with pytest.raises(NotFound) as caught:
        store.open_for_reading("~/none.db")
    assert str(caught.value) == message
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(NotFound) as caught:
        store.open_for_reading(tmp_path / "empty.db")
    assert str(caught.value) == message.replace("none.db", "empty.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
    assert (tmp_path / "empty.db").read_bytes() == b""


def test_open_for_reading_refuses_what_is_not_ours(tmp_path):
    (tmp_path / "notes.db").write_bytes(b"not a database at all\n" * 10)
    with pytest.raises(StoreError) as caught:
        store.open_for_reading(tmp_path / "notes.db")
    assert str(caught.value) == (f"cannot use database {tmp_path / 'notes.db'}: it is not a SQLite database; "
                                 "trialsync leaves it untouched")
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(StoreError, match="it is a SQLite database that trialsync did not make"):
        store.open_for_reading(foreign)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db", "notes.db"]


def test_open_for_reading_gives_a_read_only_connection_to_a_current_database(tmp_path):
    path = made_db(tmp_path / "t.db")
    conn = store.open_for_reading(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA
        assert conn.execute("SELECT count(*) FROM topics").fetchone()[0] == 0
        assert conn.in_transaction is False and conn.isolation_level is None  # autocommit
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO topics (name, params, created_at) VALUES ('x', '{}', 'now')")
    finally:
        conn.close()


def test_open_for_reading_a_current_database_does_not_wait_for_the_writer(tmp_path):
    path = made_db(tmp_path / "t.db")
    with store.write_lock(path):
        conn = store.open_for_reading(path)
        conn.close()


def test_open_for_reading_brings_an_older_database_up_to_date(tmp_path):
    path = legacy_database(tmp_path / "first.db")
    conn = store.open_for_reading(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA
    finally:
        conn.close()
    assert store_db.inspect_file(path).user_version == SCHEMA


def files_beside(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir())}


def test_open_unchanged_reads_a_current_database_and_makes_no_file(tmp_path):
    path = made_db(tmp_path / "t.db")
    before = files_beside(path)
    conn = store.open_unchanged(path)
    try:
        assert conn.execute("SELECT count(*) FROM topics").fetchone()[0] == 0
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO topics (name, params, created_at) VALUES ('x', '{}', 'now')")
    finally:
        conn.close()
    assert files_beside(path) == before and list(before) == ["t.db", "t.db.lock"]


def test_open_unchanged_reads_the_commits_waiting_in_the_wal_file(tmp_path):
    path = made_db(tmp_path / "t.db")
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("INSERT INTO topics (name, params, created_at) VALUES ('waiting', '{}', 'now')")
        assert Path(f"{path}-wal").stat().st_size > 0
        conn = store.open_unchanged(path)
        try:
            assert conn.execute("SELECT name FROM topics").fetchall() == [("waiting",)]  # never an older state
        finally:
            conn.close()
    finally:
        writer.close()


def test_open_unchanged_refuses_an_older_database_untouched(tmp_path):
    path = legacy_database(tmp_path / "first.db")
    before = files_beside(path)
    with pytest.raises(StoreError) as caught:
        store.open_unchanged(path)
    assert str(caught.value) == (
        f"database {path} was made by an older trialsync (schema 1); it is read here without writing, so it cannot "
        "be upgraded here: any other trialsync command, `trialsync status-report` say, upgrades it in place")
    assert files_beside(path) == before


def test_open_unchanged_refuses_a_newer_database_and_a_missing_one(tmp_path):
    path = made_db(tmp_path / "t.db")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA + 1}")
    conn.close()
    before = files_beside(path)
    with pytest.raises(StoreError) as caught:
        store.open_unchanged(path)
    assert str(caught.value) == (
        f"cannot use database {path}: it was made by a newer trialsync (schema {SCHEMA + 1}, this one knows up to "
        f"{SCHEMA}); upgrade trialsync. The file was left untouched")
    assert files_beside(path) == before
    with pytest.raises(NotFound):
        store.open_unchanged(tmp_path / "none.db")
    assert files_beside(path) == before


def test_open_for_reading_refuses_a_newer_database_untouched(tmp_path):
    path = made_db(tmp_path / "t.db")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as caught:
        store.open_for_reading(path)
    assert str(caught.value) == (
        f"cannot use database {path}: it was made by a newer trialsync (schema {SCHEMA + 1}, this one knows up to "
        f"{SCHEMA}); upgrade trialsync. The file was left untouched")
    assert path.read_bytes() == before


def test_open_for_reading_checks_the_version_it_reads_too(tmp_path, monkeypatch):
    # The header said current, but the file was replaced by a newer one before SQLite read it.
    path = made_db(tmp_path / "t.db")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA + 2}")
    conn.close()
    monkeypatch.setattr(store_db, "inspect_file", lambda p: store_db.FileState("ours", SCHEMA))
    with pytest.raises(StoreError, match=rf"newer trialsync \(schema {SCHEMA + 2}, this one knows up to {SCHEMA}\)"):
        store.open_for_reading(path)


def test_open_for_reading_a_damaged_file_is_one_line(tmp_path):
    path = made_db(tmp_path / "t.db")
    header = path.read_bytes()[:100]
    path.write_bytes(header + b"\x00" * 50)  # our header, then nothing SQLite can read
    with pytest.raises(StoreError) as caught:
        store.open_for_reading(path)
    assert str(caught.value) == (f"database {path} is damaged (`sqlite3 FILE 'PRAGMA integrity_check'` says where): "
                                 "database disk image is malformed")


# -- topics.py -----------------------------------------------------------------------------------------------


def test_stored_topics_are_listed_by_name_and_got_by_name(db):
    assert store.list_topics(db) == []
    assert store.get_stored_topic(db, "spine") is None
    zeta = Topic("zeta", {"query.cond": "z", "query.intr": "stem cell"})
    store.save_topic(db, zeta)
    alpha = add_topic(db, "alpha")
    assert store.list_topics(db) == [alpha, zeta]
    assert store.get_stored_topic(db, "zeta") == zeta
    assert store.get_stored_topic(db, "alpha") == alpha
    assert store.get_stored_topic(db, "Alpha") is None


def test_get_topic_prefers_the_stored_one_then_the_builtin_one(db):
    assert store.get_topic(db, DEFAULT_TOPIC_NAME) == BUILTIN_TOPICS[DEFAULT_TOPIC_NAME]
    mine = Topic(DEFAULT_TOPIC_NAME, {"query.cond": "my own"})
    store.save_topic(db, mine)
    assert store.get_topic(db, DEFAULT_TOPIC_NAME) == mine
    knee = add_topic(db, "knee")
    assert store.get_topic(db, "knee") == knee


def test_get_topic_names_the_known_ones_when_it_finds_none(db):
    with pytest.raises(NotFound) as caught:
        store.get_topic(db, "nope")
    assert str(caught.value) == (f"unknown topic 'nope' (known: {DEFAULT_TOPIC_NAME}); "
                                 "add one with `trialsync topics add`")
    add_topic(db, "zz")
    add_topic(db, "aa")
    add_topic(db, DEFAULT_TOPIC_NAME)  # named once, stored and built in
    with pytest.raises(NotFound) as caught:
        store.get_topic(db, "nope")
    assert str(caught.value) == (f"unknown topic 'nope' (known: aa, {DEFAULT_TOPIC_NAME}, zz); "
                                 "add one with `trialsync topics add`")


def test_default_topic_name(db):
    assert store.default_topic_name(db) == DEFAULT_TOPIC_NAME  # none stored
    add_topic(db, "knee")
    assert store.default_topic_name(db) == "knee"  # the only one stored
    add_topic(db, "hip")
    with pytest.raises(UsageError) as caught:
        store.default_topic_name(db)
    assert str(caught.value) == "several topics are stored (hip, knee): name one"
    add_topic(db, DEFAULT_TOPIC_NAME)
    assert store.default_topic_name(db) == DEFAULT_TOPIC_NAME  # several, the built-in one among them


def test_the_only_stored_topic_is_the_default_even_when_it_is_the_builtin_one(db):
    add_topic(db, DEFAULT_TOPIC_NAME, "mine")
    assert store.default_topic_name(db) == DEFAULT_TOPIC_NAME


def backlog(db) -> list[tuple]:
    return db.execute("SELECT topic, change_id FROM digest_backlog ORDER BY topic, change_id").fetchall()


def test_remove_topic_drops_its_list_and_backlog_and_keeps_the_studies(db):
    add_topic(db, "spine")
    add_topic(db, "knee")
    spine_pull = save_records(db, "spine", "NCT05489822", "NCT04056520", "NCT01824108")
    save_records(db, "knee", "NCT05489822")
    store.mark_left(db, "spine", ["NCT01824108"], spine_pull)
    history.warn_missing_ids(db, "spine", spine_pull, ["NCT00000001"])
    history.warn_missing_ids(db, "knee", spine_pull, ["NCT00000002"])
    last = store.last_change_id(db)
    db.executemany("INSERT INTO digest_backlog (topic, change_id) VALUES (?, ?)",
                   [("spine", last - 1), ("knee", last)])
    changes_before = db.execute("SELECT count(*) FROM changes").fetchone()[0]

    assert store.remove_topic(db, "spine") == 2  # the one that left is not counted

    assert [t.name for t in store.list_topics(db)] == ["knee"]
    assert db.execute("SELECT topic, nct_id FROM topic_studies ORDER BY 1, 2").fetchall() == [("knee", "NCT05489822")]
    assert backlog(db) == [("knee", last)]
    assert db.execute("SELECT count(*) FROM studies").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM changes").fetchone()[0] == changes_before
    assert db.in_transaction is False

    with pytest.raises(NotFound) as caught:
        store.remove_topic(db, "spine")
    assert str(caught.value) == "unknown topic 'spine': it is not stored"
    assert store.remove_topic(db, "knee") == 1
    assert store.list_topics(db) == [] and backlog(db) == []


def test_remove_topic_is_all_or_nothing(db, monkeypatch):
    add_topic(db, "spine")
    save_records(db, "spine", "NCT05489822")

    def broken(conn, name):
        conn.execute("DELETE FROM topic_studies WHERE topic = ?", [name])
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(membership, "forget_topic", broken)
    with pytest.raises(sqlite3.OperationalError):
        store.remove_topic(db, "spine")
    assert [t.name for t in store.list_topics(db)] == ["spine"]
    assert store.present_ids(db, "spine") == {"NCT05489822"}


def test_forget_topic_counts_present_members_and_drops_every_row(db):
    add_topic(db, "spine")
    add_topic(db, "knee")
    pull = save_records(db, "spine", "NCT05489822", "NCT04056520")
    save_records(db, "knee", "NCT04056520")
    store.mark_left(db, "spine", ["NCT04056520"], pull)
    assert membership.forget_topic(db, "spine") == 1
    assert db.execute("SELECT topic, nct_id, present FROM topic_studies").fetchall() == [("knee", "NCT04056520", 1)]
    assert membership.forget_topic(db, "nothing") == 0
    assert membership.forget_topic(db, "knee") == 1
    assert db.execute("SELECT count(*) FROM topic_studies").fetchone()[0] == 0


def test_mark_reported_moves_the_cursor_forward_only_and_clears_the_backlog_up_to_it(db):
    add_topic(db, "spine")
    add_topic(db, "knee")
    pull = store.start_pull(db, "spine")
    history.warn_missing_ids(db, "spine", pull, ["NCT00000001", "NCT00000002", "NCT00000003"])
    ids = [row[0] for row in db.execute("SELECT id FROM changes ORDER BY id")]
    db.executemany("INSERT INTO digest_backlog (topic, change_id) VALUES (?, ?)",
                   [("spine", i) for i in ids] + [("knee", ids[0])])
    knee_cursor = store.topic_state(db, "knee").reported_through

    store.mark_reported(db, "spine", ids[1])
    assert store.topic_state(db, "spine").reported_through == ids[1]
    assert backlog(db) == [("knee", ids[0]), ("spine", ids[2])]

    store.mark_reported(db, "spine", ids[0])  # never backwards
    assert store.topic_state(db, "spine").reported_through == ids[1]
    assert backlog(db) == [("knee", ids[0]), ("spine", ids[2])]

    store.mark_reported(db, "spine", ids[2])
    assert store.topic_state(db, "spine").reported_through == ids[2]
    assert backlog(db) == [("knee", ids[0])]
    assert store.topic_state(db, "knee").reported_through == knee_cursor
    assert db.in_transaction is False


def test_record_complete_pull_sets_the_topics_sync_state(db):
    add_topic(db, "spine")
    add_topic(db, "knee")
    before = store.topic_state(db, "spine")
    assert (before.synced_params, before.filled, before.watermark, before.data_timestamp) == (None, False, None, None)
    params = {"query.cond": "spine", "query.intr": "stem cell"}
    topics.record_complete_pull(db, "spine", params, "2026-11-20", "2026-11-24T09:00:05", "2.0.3")
    after = store.topic_state(db, "spine")
    assert (after.synced_params, after.filled, after.watermark, after.data_timestamp) == (
        params, True, "2026-11-20", "2026-11-24T09:00:05")
    assert after.search_changed is True  # its stored search is only query.cond
    assert db.execute("SELECT api_version FROM topics WHERE name = 'spine'").fetchone()[0] == "2.0.3"
    knee = store.topic_state(db, "knee")
    assert (knee.synced_params, knee.filled, knee.watermark) == (None, False, None)
    topics.record_complete_pull(db, "spine", {"query.cond": "spine"}, None, None, None)
    again = store.topic_state(db, "spine")
    assert (again.synced_params, again.watermark, again.data_timestamp, again.search_changed) == (
        {"query.cond": "spine"}, None, None, False)
    assert db.execute("SELECT api_version FROM topics WHERE name = 'spine'").fetchone()[0] is None


def test_stored_topic_names_reads_the_names_in_order(tmp_path, monkeypatch):
    path = tmp_path / "t.db"
    with store.open_for_writing(path) as conn:
        add_topic(conn, "zeta")
        add_topic(conn, "alpha")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert topics.stored_topic_names("~/t.db") == ["alpha", "zeta"]
    assert topics.stored_topic_names(path) == ["alpha", "zeta"]


def test_stored_topic_names_creates_and_writes_nothing(tmp_path):
    path = legacy_database(tmp_path / "first.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO topics VALUES ('spine', '{}', 'now')")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    before = path.read_bytes()
    assert topics.stored_topic_names(path) == ["spine"]
    assert path.read_bytes() == before  # not migrated
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.db"]


def test_stored_topic_names_sees_commits_still_in_the_wal_file(tmp_path):
    path = made_db(tmp_path / "t.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO topics (name, params, created_at) VALUES ('spine', '{}', 'now')")
    try:
        assert topics.stored_topic_names(path) == ["spine"]
    finally:
        writer.close()


def test_stored_topic_names_is_empty_when_there_is_nothing_to_read(tmp_path):
    assert topics.stored_topic_names(tmp_path / "missing.db") == []
    assert topics.stored_topic_names(tmp_path) == []  # a folder
    (tmp_path / "notes.txt").write_text("not a database\n" * 20)
    assert topics.stored_topic_names(tmp_path / "notes.txt") == []
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    assert topics.stored_topic_names(other) == []  # no topics table
    assert topics.stored_topic_names("bad\x00name") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "other.db"]


# -- history.py ----------------------------------------------------------------------------------------------


def test_last_change_id(db):
    assert store.last_change_id(db) == 0
    add_topic(db, "spine")
    pull = store.start_pull(db, "spine")
    history.warn_missing_ids(db, "spine", pull, ["NCT00000001", "NCT00000002"])
    assert store.last_change_id(db) == db.execute("SELECT max(id) FROM changes").fetchone()[0] == 2


def test_warn_missing_ids_logs_each_id_once_per_topic(db):
    add_topic(db, "spine")
    add_topic(db, "knee")
    first = store.start_pull(db, "spine")
    assert history.warn_missing_ids(db, "spine", first, ["NCT00000002", "NCT00000001", "NCT00000002"]) == 2
    assert db.in_transaction is False
    rows = db.execute("SELECT pull_id, topic, nct_id, field, old, new, reason, item FROM changes ORDER BY id"
                      ).fetchall()
    text = "{} is not on ClinicalTrials.gov (the API has no study with this id)"
    assert rows == [(first, "spine", "NCT00000002", WARNING, None, text.format("NCT00000002"), None, None),
                    (first, "spine", "NCT00000001", WARNING, None, text.format("NCT00000001"), None, None)]
    observed = db.execute("SELECT observed_at FROM changes").fetchall()
    assert all(value and value.startswith("20") for (value,) in observed)

    second = store.start_pull(db, "spine")
    assert history.warn_missing_ids(db, "spine", second, ["NCT00000001", "NCT00000003"]) == 1
    assert history.warn_missing_ids(db, "knee", second, ["NCT00000001"]) == 1  # another topic is told too
    assert history.warn_missing_ids(db, "spine", second, []) == 0
    assert db.execute("SELECT pull_id, topic, nct_id FROM changes WHERE id > 2 ORDER BY id").fetchall() == [
        (second, "spine", "NCT00000003"), (second, "knee", "NCT00000001")]


def test_warn_missing_ids_is_not_fooled_by_another_kind_of_change(db):
    add_topic(db, "spine")
    pull = store.start_pull(db, "spine")
    text = "NCT00000001 is not on ClinicalTrials.gov (the API has no study with this id)"
    history.insert_changes(db, [(pull, "spine", "NCT00000001", "membership", None, text, "now", None, None),
                                (pull, "spine", "NCT00000001", WARNING, None, "another warning", "now", None, None),
                                (pull, "knee", "NCT00000001", WARNING, None, text, "now", None, None),
                                (pull, "spine", "NCT00000009", WARNING, None, text, "now", None, None)])
    assert history.warn_missing_ids(db, "spine", pull, ["NCT00000001"]) == 1


# -- pulls.py ------------------------------------------------------------------------------------------------


def pull_row(db, pull_id: int) -> tuple:
    return db.execute("SELECT outcome, error, finished_at IS NOT NULL, requests FROM pulls WHERE id = ?",
                      [pull_id]).fetchone()


def test_record_failure_writes_the_outcome_and_error(db):
    add_topic(db, "spine")
    pull = store.start_pull(db, "spine")
    assert pulls.record_failure(db, pull, "interrupted", "stopped", requests=7) is True
    assert pull_row(db, pull) == ("interrupted", "stopped", 1, 7)
    other = store.start_pull(db, "spine")
    assert pulls.record_failure(db, other, "failed", "the API said no") is True
    assert pull_row(db, other)[:3] == ("failed", "the API said no", 1)


def test_record_failure_returns_false_when_even_that_cannot_be_written(db):
    add_topic(db, "spine")
    pull = store.start_pull(db, "spine")
    assert pulls.record_failure(db, pull, "failed", "boom", no_such_column=1) is False
    assert pull_row(db, pull) == ("running", None, 0, 0)
    assert db.in_transaction is False


def test_mark_abandoned_pulls_calls_running_ones_killed(db):
    add_topic(db, "spine")
    done = store.start_pull(db, "spine")
    store.finish_pull(db, done, "complete")
    running = [store.start_pull(db, "spine"), store.start_pull(db, "spine")]
    assert store.mark_abandoned_pulls(db) == 2
    for pull in running:
        assert pull_row(db, pull)[:3] == (
            "killed", "the process ended before the pull finished (killed or power lost)", 1)
    assert pull_row(db, done)[:2] == ("complete", None)
    assert store.mark_abandoned_pulls(db) == 0


# -- studies.py: the pure diffs ------------------------------------------------------------------------------


def test_same_content_ignores_the_version_holder_and_formatting():
    record = fixture_record("NCT05489822")
    raw = orjson.dumps(record)
    moved = orjson.loads(raw)
    moved["derivedSection"]["miscInfoModule"]["versionHolder"] = "2099-01-01"
    assert same_content(raw, orjson.dumps(moved)) is True
    assert same_content(raw, orjson.dumps(record, option=orjson.OPT_INDENT_2)) is True
    changed = orjson.loads(raw)
    changed["protocolSection"]["statusModule"]["overallStatus"] = "TERMINATED"
    assert same_content(raw, orjson.dumps(changed)) is False


def test_is_earlier_state():
    assert is_earlier_state("2026-01-01", "2026-11-20", "2026-01-02", "2026-11-01") is True
    assert is_earlier_state("2026-01-02", "2026-11-01", "2026-01-01", "2026-11-20") is False
    # the same day: the data release decides
    assert is_earlier_state("2026-01-01", "2026-11-01", "2026-01-01", "2026-11-20") is True
    assert is_earlier_state("2026-01-01", "2026-11-20", "2026-01-01", "2026-11-20") is False
    assert is_earlier_state("2026-01-01", "2026-11-20", "2026-01-01", "2026-11-01") is False
    # dates that are not dates decide nothing
    assert is_earlier_state("soon", "2026-11-01", "2026-01-01", "2026-11-20") is True
    assert is_earlier_state(None, None, "2026-01-01", "2026-11-20") is False
    assert is_earlier_state("2026-01-01", "later", "2026-01-01", "2026-11-20") is False


def test_site_label():
    assert site_label(("Clinic", "Oslo", None, "Norway", "RECRUITING", "0150", 59.9, 10.7)) == "Clinic, Oslo, Norway"
    assert site_label(("Clinic", "Austin", "Texas", "United States")) == "Clinic, Austin, Texas, United States"
    assert site_label((None, "", None, None, "RECRUITING")) == "unnamed site"


def test_diff_sites():
    old = [("A", "Oslo", None, "Norway", "RECRUITING", None, None, None),
           ("B", "Bergen", None, "Norway", "RECRUITING", None, None, None),
           ("C", "Rome", None, "Italy", "COMPLETED", None, None, None),
           ("A", "Oslo", None, "Norway", "WITHDRAWN", None, None, None)]  # listed twice: the first counts
    new = [("A", "Oslo", None, "Norway", "COMPLETED", None, None, None),
           ("C", "Rome", None, "Italy", "COMPLETED", None, None, None),
           ("D", None, None, "Spain", "NOT_YET_RECRUITING", None, None, None)]
    assert diff_sites(old, new) == [
        (SITE_ADDED, "D, Spain", None, "NOT_YET_RECRUITING"),
        (SITE_REMOVED, "B, Bergen, Norway", "RECRUITING", None),
        (SITE_STATUS, "A, Oslo, Norway", "RECRUITING", "COMPLETED"),
    ]
    assert diff_sites(old, old) == []


def test_diff_references_lists_publications_added_once_with_their_first_type():
    old = [("111", "BACKGROUND"), (None, "RESULT")]
    new = [("111", "RESULT"), ("222", "RESULT"), ("222", "BACKGROUND"), (None, "DERIVED"), ("333", None)]
    assert diff_references(old, new) == [(REFERENCE_ADDED, "222", None, "RESULT"),
                                         (REFERENCE_ADDED, "333", None, None)]
    assert diff_references(new, old) == []


# -- membership.mark_left: each id on its own, whatever comes before it ----------------------------------------


def test_mark_left_keeps_api_studies_as_left_drops_imported_ones_and_skips_absent_ones(db):
    from trialsync.store.studies import FILE

    add_topic(db, "spine")
    save_records(db, "spine", "NCT05489822", "NCT06589271")  # from the API
    imported = store.start_pull(db, "spine", kind="import")
    save_studies(db, [study_rows(fixture_record("NCT04056520"))], SaveContext("spine", imported, FILE, False, "2026-11-24"))
    pull = store.start_pull(db, "spine")
    # sorted, the absent id and the imported one come first: neither may stop the ones after it
    left = membership.mark_left(db, "spine", ["NCT06589271", "NCT00000000", "NCT04056520", "NCT05489822"], pull,
                                "not in the listing")
    assert left == 2
    states = dict(db.execute("SELECT nct_id, present FROM topic_studies WHERE topic = 'spine'").fetchall())
    assert states == {"NCT05489822": 0, "NCT06589271": 0}  # the imported study is gone, the others are kept
    assert db.execute("SELECT left_topic FROM pulls WHERE id = ?", [pull]).fetchone() == (2,)
    logged = db.execute("SELECT pull_id, nct_id, new, reason FROM changes WHERE field = 'membership' "
                        "ORDER BY nct_id").fetchall()
    assert logged == [(pull, "NCT05489822", "left", "not in the listing"), (pull, "NCT06589271", "left", "not in the listing")]
    assert membership.mark_left(db, "spine", [], pull) == 0
    assert db.execute("SELECT left_topic FROM pulls WHERE id = ?", [pull]).fetchone() == (2,)


def test_a_database_named_like_a_uri_is_opened_as_the_file_of_that_name(tmp_path, monkeypatch):
    # SQLite built with SQLITE_USE_URI reads a name starting "file:" as a URI ("file:x.db?mode=memory" would
    # open no file at all): the writer must open the file the user named, as the readers do.
    monkeypatch.chdir(tmp_path)
    made_db(Path("file:x.db?mode=memory"))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["file:x.db?mode=memory"]
    with store.open_for_writing(Path("file:x.db?mode=memory")) as conn:
        assert Path(store_db.database_path(conn)) == tmp_path / "file:x.db?mode=memory"
    conn = store.open_for_reading(Path("file:x.db?mode=memory"))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA
    conn.close()


# -- db.py: who holds the lock ------------------------------------------------------------------------------


def test_lock_holder_names_this_process_while_it_writes_and_nobody_after(tmp_path):
    path = tmp_path / "held.db"
    assert store_db.lock_holder(path) is None  # no lock file yet
    with store.open_for_writing(path):
        assert store_db.lock_holder(path) == os.getpid()
        assert store_db.lock_holder(tmp_path / "other.db") is None
    assert store_db.database_files(path)[3].exists()
    assert store_db.lock_holder(path) is None


def test_lock_holder_reads_only_flock_lines_about_its_own_file(tmp_path, monkeypatch):
    path = made_db(tmp_path / "t.db")
    lock = store_db.database_files(path)[3]
    lock.touch()
    info = lock.stat()
    dev = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}"
    lines = [
        "1: POSIX  ADVISORY  WRITE 111 %s:%d 0 EOF" % (dev, info.st_ino),  # another kind of lock on the file
        "2: -> FLOCK  ADVISORY  WRITE 222 %s:%d 0 EOF" % (dev, info.st_ino),  # a waiter
        "3: FLOCK  ADVISORY  WRITE 333 %s:%d 0 EOF" % (dev, info.st_ino + 1),  # another file
        "4: FLOCK  ADVISORY",  # too short to name anything
        "5: FLOCK  ADVISORY  WRITE 444 %s:%d 0 EOF" % (dev, info.st_ino),
        "6: FLOCK  ADVISORY  WRITE 555 %s:%d 0 EOF" % (dev, info.st_ino),
    ]
    real_open = open

    def fake_open(name, *args, **kwargs):
        if name == "/proc/locks":
            return real_open(tmp_path / "locks", *args, **kwargs)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    (tmp_path / "locks").write_text("\n".join(lines) + "\n")
    assert store_db.lock_holder(path) == 444
    (tmp_path / "locks").write_text("\n".join(lines[:4]) + "\n")
    assert store_db.lock_holder(path) is None
    (tmp_path / "locks").write_text("1: FLOCK  ADVISORY  WRITE -1 %s:%d 0 EOF\n" % (dev, info.st_ino))
    assert store_db.lock_holder(path) == 0  # held, by a process this namespace cannot name


# -- pulls.py: the pull log's readers -------------------------------------------------------------------------


def test_unfinished_pulls_are_running_ones_and_each_topics_newest_when_killed(db):
    add_topic(db, "spine")
    add_topic(db, "knee")
    old_killed = store.start_pull(db, "spine")
    store.finish_pull(db, old_killed, "killed")
    complete = store.start_pull(db, "spine")
    store.finish_pull(db, complete, "complete")
    knee_killed = store.start_pull(db, "knee")
    store.finish_pull(db, knee_killed, "killed")
    running = store.start_pull(db, "spine")
    failed = store.start_pull(db, "knee")
    store.finish_pull(db, failed, "failed", "HTTP 500")
    assert [row["id"] for row in pulls.unfinished_pulls(db)] == [running]  # knee's newest failed, not killed
    store.finish_pull(db, running, "killed")
    assert [row["id"] for row in pulls.unfinished_pulls(db)] == [running]
    newer_running = store.start_pull(db, "knee")
    assert [(row["id"], row["outcome"]) for row in pulls.unfinished_pulls(db)] == [
        (running, "killed"), (newer_running, "running")]


def test_recent_pulls_are_ended_pulls_newest_first(db):
    add_topic(db, "spine")
    ended = []
    for outcome in ("complete", "failed", "complete"):
        pull = store.start_pull(db, "spine")
        store.finish_pull(db, pull, outcome)
        ended.append(pull)
    imported = store.start_pull(db, "spine", kind="import")
    store.finish_pull(db, imported, "complete")
    store.start_pull(db, "spine")  # still running
    assert [row["id"] for row in pulls.recent_pulls(db, 10)] == ended[::-1]
    assert [(row["id"], row["outcome"]) for row in pulls.recent_pulls(db, 2)] == [
        (ended[2], "complete"), (ended[1], "failed")]
    assert pulls.recent_pulls(db, 0) == []


# -- studies.py: the members to look at again ------------------------------------------------------------------


def test_stalest_members_are_the_never_fetched_then_the_longest_ago_by_nct_id(db):
    from trialsync.store.studies import stalest_members

    add_topic(db, "spine")
    add_topic(db, "knee")
    ids = ["NCT05489822", "NCT04056520", "NCT01824108", "NCT03180268"]
    save_records(db, "spine", *ids)
    save_records(db, "knee", "NCT05489822")
    fetched = {"NCT05489822": "2026-11-03T00:00:00Z", "NCT04056520": "2026-11-01T00:00:00Z"}
    db.execute("DELETE FROM study_fetches")
    db.executemany("INSERT INTO study_fetches (nct_id, fetched_at) VALUES (?, ?)", fetched.items())
    # Never fetched: NCT01824108 and NCT03180268, by id; then NCT04056520 (Nov 1), then NCT05489822 (Nov 3).
    order = ["NCT01824108", "NCT03180268", "NCT04056520", "NCT05489822"]
    for limit in range(6):
        assert stalest_members(db, "spine", "2026-12-01", limit) == order[:limit]
    assert stalest_members(db, "spine", "2026-12-01", -1) == []
    assert stalest_members(db, "spine", "2026-11-02", 4) == order[:3]  # Nov 3 is not before Nov 2
    assert stalest_members(db, "spine", "2026-12-01", 2, skip={"NCT01824108"}) == ["NCT03180268", "NCT04056520"]
    assert stalest_members(db, "spine", "2026-12-01", 3, skip={"NCT04056520"}) == [
        "NCT01824108", "NCT03180268", "NCT05489822"]
    assert stalest_members(db, "knee", "2026-12-01", 4) == ["NCT05489822"]
    db.execute("UPDATE topic_studies SET present = 0 WHERE nct_id IN ('NCT01824108', 'NCT05489822')")
    assert stalest_members(db, "spine", "2026-12-01", 4) == ["NCT03180268", "NCT04056520"]


def test_a_record_from_the_api_is_taken_and_fetched_now_whatever_its_dates_say(db):
    from conftest import with_status

    add_topic(db, "spine")
    newer = with_status(fixture_record("NCT05489822"), "COMPLETED", "2026-11-30")
    pull = store.start_pull(db, "spine")
    save_studies(db, [study_rows(newer)], SaveContext("spine", pull, API, False, "2026-12-01"))

    def stored():
        return db.execute("SELECT f.fetched_at, s.overall_status FROM study_fetches f JOIN studies s USING (nct_id) "
                          "WHERE nct_id = 'NCT05489822'").fetchone()

    db.execute("UPDATE study_fetches SET fetched_at = '2000-01-01T00:00:00Z'")
    counts = save_studies(db, [study_rows(fixture_record("NCT05489822"))], SaveContext("spine", pull, API, False, "2026-12-01"))
    assert (counts.older, counts.updated) == (0, 1)
    fetched, status = stored()
    assert fetched > "2026" and status == "RECRUITING"
    db.execute("UPDATE study_fetches SET fetched_at = '2000-01-01T00:00:00Z'")
    save_studies(db, [study_rows(fixture_record("NCT05489822"))], SaveContext("spine", pull, API, False, "2026-12-01"))
    assert stored()[0] > "2026"  # the same record again is a fetch too


def test_open_as_is_says_what_is_missing_empty_or_not_ours(tmp_path):
    missing = tmp_path / "missing.db"
    with pytest.raises(NotFound) as caught:
        store_db.open_as_is(missing)
    assert str(caught.value) == (f"no trialsync database at {missing} yet: `trialsync pull` or "
                                 "`trialsync import FILE` makes one")
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(NotFound):
        store_db.open_as_is(empty)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE mine (x)").connection.commit()
    with pytest.raises(StoreError) as caught:
        store_db.open_as_is(foreign)
    assert str(caught.value).startswith(f"cannot use database {foreign}: it is a SQLite database that trialsync did not make")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "foreign.db"]


def test_open_as_is_reads_a_database_of_a_newer_trialsync_that_the_writer_refuses(tmp_path):
    path = tmp_path / "newer.db"
    with store.open_for_writing(path):
        pass
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    newer.close()
    with pytest.raises(StoreError, match="made by a newer trialsync"):
        with store.open_for_writing(path):
            pass
    conn = store_db.open_as_is(path)  # doctor looks at it, to say what it is
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION + 1
    conn.close()
