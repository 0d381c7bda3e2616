"""The store: migrations, idempotent saves, versions and changes rows, membership, damaged files."""

from __future__ import annotations

import sqlite3
import zlib

import orjson
import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record, with_status
from trialsync import reports, store
from trialsync.errors import LockBusy, StoreError
from trialsync.schema import SCHEMA_VERSION, migrations
from trialsync.store import open_db


def table_dump(db) -> dict:
    """Every row of every table, to compare whole database states."""
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {t: db.execute(f"SELECT * FROM [{t}] ORDER BY 1, 2").fetchall() for t in tables if t != "_sqlite_migrations"}


def test_migrations_run_once_and_opening_twice_is_harmless(tmp_path):
    path = tmp_path / "twice.db"
    first = open_db(path)
    applied = [m.name for m in migrations.applied(first)]
    first.close()
    second = open_db(path)
    assert [m.name for m in migrations.applied(second)] == applied == ["m001_initial_schema"]
    assert second.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert second.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == store.SCHEMA_VERSION
    assert len(migrations.applied(second)) == SCHEMA_VERSION


def test_read_only_commands_do_not_import_sqlite_utils(tmp_path):
    import subprocess
    import sys

    open_db(tmp_path / "made.db").close()
    code = ("import sys; from trialsync import store, reports\n"
            "conn = store.open_db(sys.argv[1], write=False)\n"
            "reports.status_report(conn, 'stem-cell-spine')\n"
            "print('sqlite_utils' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "made.db")], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_saving_the_same_records_twice_changes_nothing(db):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS]
    pull = store.start_pull(db, "spine")
    first = store.save_studies(db, records, "spine", pull, record_new=False)
    assert (first.received, first.new, first.updated, first.unchanged) == (13, 13, 0, 0)
    before = table_dump(db)
    second = store.save_studies(db, [fixture_record(i) for i in SPINE_CONDITION_IDS], "spine", pull, record_new=True)
    assert (second.received, second.new, second.updated, second.unchanged) == (13, 0, 0, 13)
    after = table_dump(db)
    before["pulls"] = after["pulls"] = None  # only the pull's own counters move
    assert after == before


def test_raw_is_stored_exactly_as_received(db):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS]
    store.save_studies(db, records, "spine", store.start_pull(db, "spine"), record_new=False)
    stored = {r[0]: orjson.loads(r[1]) for r in db.execute("SELECT nct_id, raw FROM studies")}
    assert stored == {r["protocolSection"]["identificationModule"]["nctId"]: r for r in records}
    assert db.execute("SELECT DISTINCT typeof(raw) FROM studies").fetchall() == [("text",)]
    assert db.execute("SELECT json_extract(raw, '$.protocolSection.identificationModule.nctId') FROM studies "
                      "WHERE nct_id = ?", [SPINE_CONDITION_IDS[0]]).fetchone() == (SPINE_CONDITION_IDS[0],)


def test_a_changed_record_keeps_its_previous_version_and_logs_tracked_fields(db):
    original = fixture_record("NCT05489822")
    store.save_studies(db, [original], "spine", store.start_pull(db, "spine"), record_new=False)
    later = with_status(original, "COMPLETED", updated="2026-11-20")
    later["protocolSection"]["designModule"]["enrollmentInfo"] = {"count": 24, "type": "ACTUAL"}
    pull = store.start_pull(db, "spine")
    counts = store.save_studies(db, [later], "spine", pull, record_new=True)

    assert (counts.updated, counts.unchanged, counts.new) == (1, 0, 0)
    versions = db.execute("SELECT nct_id, pull_id, last_update_posted, raw_zlib FROM versions").fetchall()
    assert len(versions) == 1
    assert versions[0][:3] == ("NCT05489822", pull, "2024-04-18")
    assert orjson.loads(zlib.decompress(versions[0][3])) == original
    changes = db.execute("SELECT pull_id, topic, nct_id, field, old, new FROM changes ORDER BY id").fetchall()
    assert changes == [
        (pull, "spine", "NCT05489822", "overall_status", "RECRUITING", "COMPLETED"),
        (pull, "spine", "NCT05489822", "enrollment_count", 20, 24),
    ]
    assert orjson.loads(reports.study_raw(db, "NCT05489822")) == later
    assert db.execute("SELECT overall_status FROM studies").fetchone() == ("COMPLETED",)


def test_a_new_version_holder_alone_refreshes_raw_without_a_version_or_change(db):
    original = fixture_record("NCT05489822")
    store.save_studies(db, [original], "spine", store.start_pull(db, "spine"), record_new=False)
    refreshed = fixture_record("NCT05489822")
    refreshed["derivedSection"]["miscInfoModule"]["versionHolder"] = "2026-11-24"
    counts = store.save_studies(db, [refreshed], "spine", store.start_pull(db, "spine"), record_new=True)
    assert counts.unchanged == 1 and counts.updated == 0
    assert db.execute("SELECT count(*) FROM versions").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM changes").fetchone()[0] == 0
    assert orjson.loads(reports.study_raw(db, "NCT05489822")) == refreshed


def test_child_rows_are_replaced_not_duplicated_when_a_record_changes(db):
    original = fixture_record("NCT02385136")
    store.save_studies(db, [original], "t", store.start_pull(db, "t"), record_new=False)
    later = with_status(original, "RECRUITING")
    later["protocolSection"]["conditionsModule"]["conditions"] = later["protocolSection"]["conditionsModule"]["conditions"][:1]
    store.save_studies(db, [later], "t", store.start_pull(db, "t"), record_new=True)
    assert db.execute("SELECT count(*) FROM conditions").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM sponsors").fetchone()[0] == 2


def test_leaving_and_rejoining_a_topic_is_marked_and_logged_never_deleted(db):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS[:3]]
    first = store.start_pull(db, "spine")
    store.save_studies(db, records, "spine", first, record_new=False)
    second = store.start_pull(db, "spine")
    assert store.mark_left(db, "spine", {SPINE_CONDITION_IDS[0]}, second) == 1
    assert store.present_ids(db, "spine") == set(SPINE_CONDITION_IDS[1:3])
    assert db.execute("SELECT count(*) FROM studies").fetchone()[0] == 3
    third = store.start_pull(db, "spine")
    counts = store.save_studies(db, [fixture_record(SPINE_CONDITION_IDS[0])], "spine", third, record_new=True)
    assert counts.rejoined == 1
    assert db.execute("SELECT pull_id, nct_id, field, old, new FROM changes ORDER BY id").fetchall() == [
        (second, SPINE_CONDITION_IDS[0], "membership", "present", "left"),
        (third, SPINE_CONDITION_IDS[0], "membership", "left", "present"),
    ]
    assert store.present_ids(db, "spine") == set(SPINE_CONDITION_IDS[:3])


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a database\n")
    with pytest.raises(StoreError, match="file is not a database"):
        open_db(path)
    assert path.read_text() == "my notes, not a database\n"


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        open_db(tmp_path)


def test_killed_pulls_are_marked_at_the_next_start(db):
    pull = store.start_pull(db, "spine")
    assert store.mark_abandoned_pulls(db) == 1
    assert db.execute("SELECT outcome FROM pulls WHERE id = ?", [pull]).fetchone() == ("killed",)


def test_a_page_that_fails_midway_writes_nothing(db):
    good = fixture_record("NCT05489822")
    pull = store.start_pull(db, "spine")
    db.execute("CREATE TRIGGER boom BEFORE INSERT ON keywords BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.DatabaseError):
        store.save_studies(db, [good], "spine", pull, record_new=False)
    assert db.execute("SELECT count(*) FROM studies").fetchone()[0] == 0
    assert db.execute("SELECT received FROM pulls").fetchone()[0] == 0


def test_the_write_lock_is_exclusive(tmp_path):
    path = tmp_path / "locked.db"
    with store.write_lock(path):
        import subprocess
        import sys

        code = ("import sys; from trialsync import store\n"
                "try:\n    with store.write_lock(sys.argv[1], 0.2): print('got it')\n"
                "except Exception as e: print(type(e).__name__)")
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == LockBusy.__name__
