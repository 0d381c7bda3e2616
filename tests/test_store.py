"""The store: migrations, the pure diff, idempotent saves, versions and changes rows, membership, and
databases that are not ours (refused untouched)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
import sqlite3
import subprocess
import sys
import zlib

import orjson
import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record, table_dump, with_status
from trialsync import reports, store
from trialsync.errors import LockBusy, NotFound, StoreError
from trialsync.store import db as store_db
from trialsync.store.migrations import migrations
from trialsync.store.studies import (
    API, CHANGED, FILE, NEW, OLDER, REFRESHED, SAME, SaveContext, StoredStudy, diff_study, save_studies,
)
from trialsync.topics import Topic
from trialsync.transform import TRACKED_FIELDS, study_rows


def context(db, topic="spine", log_membership=False, source=API, pull=None) -> SaveContext:
    if store.topic_state(db, topic) is None:
        store.save_topic(db, Topic(topic, {"query.cond": topic}))
    return SaveContext(topic, pull or store.start_pull(db, topic), source, log_membership, "2026-11-24")


def rows_of(*records):
    return [study_rows(record) for record in records]


def stored_of(record) -> StoredStudy:
    rows = study_rows(record)
    return StoredStudy(rows.value("raw"), rows.value("last_update_posted"), rows.value("version_holder"),
                       tuple(rows.value(name) for name in TRACKED_FIELDS))


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- migrations -------------------------------------------------------------------------------------------


def test_migrations_run_once_and_opening_twice_is_harmless(tmp_path):
    from sqlite_utils import Database

    path = tmp_path / "twice.db"
    with store.open_for_writing(path) as first:
        applied = [m.name for m in migrations.applied(Database(first))]
        before = table_dump(first)
    with store.open_for_writing(path) as second:
        assert [m.name for m in migrations.applied(Database(second))] == applied == [
            "m001_initial_schema", "m002_sync_state_per_topic", "m003_derived_fields_and_search",
            "m004_one_shape_of_schema_3", "m005_digest_backlog", "m006_browsable_database", "m007_results",
                "m008_membership_ways_and_fetch_times", "m009_schema_drift",
            "m010_search_index_deferred_by_the_writer"]
        assert second.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert second.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION == len(applied)
        assert second.execute("PRAGMA application_id").fetchone()[0] == store_db.APPLICATION_ID
        assert table_dump(second) == before


def test_the_studies_table_has_the_columns_the_transform_fills(db):
    from trialsync.transform import STUDY_COLUMNS

    assert {row[1] for row in db.execute("PRAGMA table_info(studies)")} == set(STUDY_COLUMNS)


def first_release_database(path) -> None:
    """A database as trialsync's first release left it: schema 1, no application id, one topic pulled twice
    (a watermark from a far-future date), changes filed under the topic."""
    from sqlite_utils import Database

    conn = sqlite3.connect(path, isolation_level=None)
    migrations.apply(Database(conn), stop_before="m002_sync_state_per_topic")
    conn.execute("PRAGMA user_version = 1")
    record = fixture_record("NCT05489822")
    first_columns = [row[1] for row in conn.execute("PRAGMA table_info(studies)")]
    values = [study_rows(record).value(column) for column in first_columns]
    conn.execute(f"INSERT INTO studies VALUES ({', '.join('?' * len(values))})", values)
    conn.execute("INSERT INTO topics VALUES ('spine', ?, '2026-11-01T00:00:00Z')",
                 [orjson.dumps({"query.cond": "spine"}).decode()])
    for pull_id, watermark in ((1, "2024-04-18"), (2, "2099-12-31")):
        conn.execute("INSERT INTO pulls (id, topic, kind, mode, started_at, finished_at, outcome, data_timestamp, "
                     "watermark) VALUES (?, 'spine', 'pull', 'full', 'x', 'y', 'complete', '2026-11-24T09:00:05', ?)",
                     [pull_id, watermark])
    conn.execute("INSERT INTO topic_studies VALUES ('spine', 'NCT05489822', 1, 1, NULL, NULL)")
    conn.execute("INSERT INTO changes (pull_id, topic, nct_id, field, old, new, observed_at) VALUES "
                 "(2, 'spine', 'NCT05489822', 'overall_status', 'COMPLETED', 'RECRUITING', 'z'), "
                 "(2, 'spine', 'NCT05489822', 'membership', 'left', 'present', 'z')")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def test_a_first_release_database_is_recognised_and_upgraded_keeping_every_row(tmp_path):
    path = tmp_path / "old.db"
    first_release_database(path)
    with store.open_for_writing(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        state = store.topic_state(conn, "spine")
        assert (state.filled, state.synced_params, state.watermark, state.reported_through) == (
            True, {"query.cond": "spine"}, None, 2)  # the far-future watermark is dropped: the next pull is full
        assert conn.execute("SELECT topic, field FROM changes ORDER BY id").fetchall() == [
            (None, "overall_status"), ("spine", "membership")]
        assert conn.execute("SELECT api_seen FROM topic_studies").fetchall() == [(1,)]
        assert orjson.loads(reports.study_raw(conn, "NCT05489822")) == fixture_record("NCT05489822")


# -- the diff ------------------------------------------------------------------------------------------


def test_the_diff_tells_new_same_refreshed_changed_and_older_apart():
    original = fixture_record("NCT05489822")
    stored = stored_of(original)
    assert diff_study(None, study_rows(original), API).verdict == NEW
    assert diff_study(stored, study_rows(original), API).verdict == SAME
    release = fixture_record("NCT05489822")
    release["derivedSection"]["miscInfoModule"]["versionHolder"] = "2026-11-24"
    assert diff_study(stored, study_rows(release), API).verdict == REFRESHED
    assert diff_study(stored, study_rows(release), FILE).verdict == SAME  # a file's copy of the same data
    pretty = study_rows(original, orjson.dumps(original, option=orjson.OPT_INDENT_2))
    assert diff_study(stored, pretty, FILE).verdict == SAME
    later = with_status(original, "COMPLETED", updated="2026-11-20")
    diff = diff_study(stored, study_rows(later), API)
    assert (diff.verdict, diff.changes) == (CHANGED, (("overall_status", "RECRUITING", "COMPLETED"),))
    assert diff_study(stored_of(later), study_rows(original), FILE).verdict == OLDER
    assert diff_study(stored_of(later), study_rows(original), API).verdict == CHANGED  # the API is the truth


# -- saving --------------------------------------------------------------------------------------------


def test_saving_the_same_records_twice_changes_nothing(db):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS]
    first = save_studies(db, rows_of(*records), context(db))
    assert (first.received, first.new, first.updated, first.unchanged) == (13, 13, 0, 0)
    before = table_dump(db)
    second = save_studies(db, rows_of(*records), context(db, log_membership=True))
    assert (second.received, second.new, second.updated, second.unchanged) == (13, 0, 0, 13)
    after = table_dump(db)
    before["pulls"] = after["pulls"] = None  # only the pulls' own counters move
    # and the fetch times: the second save is a fetch too (the rolling refresh counts from it), and may fall in
    # a later second than the first
    fetched_before, fetched_after = dict(before.pop("study_fetches")), dict(after.pop("study_fetches"))
    assert fetched_after.keys() == fetched_before.keys() == set(SPINE_CONDITION_IDS)
    assert all(fetched_after[nct_id] >= fetched_before[nct_id] for nct_id in fetched_before)
    assert after == before


def test_raw_is_stored_exactly_as_received(db):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS]
    save_studies(db, rows_of(*records), context(db))
    stored = {r[0]: orjson.loads(r[1]) for r in db.execute("SELECT nct_id, raw FROM studies")}
    assert stored == {r["protocolSection"]["identificationModule"]["nctId"]: r for r in records}
    assert db.execute("SELECT DISTINCT typeof(raw) FROM studies").fetchall() == [("text",)]
    assert db.execute("SELECT json_extract(raw, '$.protocolSection.identificationModule.nctId') FROM studies "
                      "WHERE nct_id = ?", [SPINE_CONDITION_IDS[0]]).fetchone() == (SPINE_CONDITION_IDS[0],)


def test_a_changed_record_keeps_its_previous_version_and_logs_tracked_fields_as_study_facts(db):
    original = fixture_record("NCT05489822")
    save_studies(db, rows_of(original), context(db))
    later = with_status(original, "COMPLETED", updated="2026-11-20")
    later["protocolSection"]["designModule"]["enrollmentInfo"] = {"count": 24, "type": "ACTUAL"}
    ctx = context(db, log_membership=True)
    counts = save_studies(db, rows_of(later), ctx)

    assert (counts.updated, counts.unchanged, counts.new) == (1, 0, 0)
    versions = db.execute("SELECT nct_id, pull_id, last_update_posted, raw_zlib FROM versions").fetchall()
    assert len(versions) == 1
    assert versions[0][:3] == ("NCT05489822", ctx.pull_id, "2024-04-18")
    assert orjson.loads(zlib.decompress(versions[0][3])) == original
    changes = db.execute("SELECT pull_id, topic, nct_id, field, old, new FROM changes ORDER BY id").fetchall()
    assert changes == [
        (ctx.pull_id, None, "NCT05489822", "overall_status", "RECRUITING", "COMPLETED"),
        (ctx.pull_id, None, "NCT05489822", "enrollment_count", 20, 24),
    ]
    assert orjson.loads(reports.study_raw(db, "NCT05489822")) == later


def test_a_new_version_holder_alone_refreshes_raw_without_a_version_or_change(db):
    save_studies(db, rows_of(fixture_record("NCT05489822")), context(db))
    refreshed = fixture_record("NCT05489822")
    refreshed["derivedSection"]["miscInfoModule"]["versionHolder"] = "2026-11-24"
    counts = save_studies(db, rows_of(refreshed), context(db, log_membership=True))
    assert counts.unchanged == 1 and counts.updated == 0
    assert db.execute("SELECT count(*) FROM versions").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM changes").fetchone()[0] == 0
    assert orjson.loads(reports.study_raw(db, "NCT05489822")) == refreshed


def test_an_older_record_from_a_file_is_skipped_and_counted(db):
    newer = with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-20")
    save_studies(db, rows_of(newer), context(db))
    before = table_dump(db)
    counts = save_studies(db, rows_of(fixture_record("NCT05489822")), context(db, log_membership=True, source=FILE))
    assert (counts.older, counts.updated, counts.unchanged) == (1, 0, 1)  # kept as it was, and counted as older
    after = table_dump(db)
    before["pulls"] = after["pulls"] = None
    assert after == before


def test_a_date_that_cannot_move_the_watermark_is_stored_as_sent_and_warned_about_once(db):
    record = fixture_record("NCT05489822")
    record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "Jan 2024"
    save_studies(db, rows_of(record), context(db))
    save_studies(db, rows_of(record), context(db))
    assert db.execute("SELECT last_update_posted FROM studies").fetchone() == ("Jan 2024",)
    warnings = db.execute("SELECT nct_id, new FROM changes WHERE field = 'warning'").fetchall()
    assert warnings == [("NCT05489822", "last update posted 'Jan 2024' is not a YYYY-MM-DD date; "
                                        "it does not move the watermark")]


def test_child_rows_are_replaced_not_duplicated_when_a_record_changes(db):
    original = fixture_record("NCT02385136")
    save_studies(db, rows_of(original), context(db, "t"))
    later = with_status(original, "RECRUITING")
    later["protocolSection"]["conditionsModule"]["conditions"] = later["protocolSection"]["conditionsModule"]["conditions"][:1]
    save_studies(db, rows_of(later), context(db, "t"))
    assert db.execute("SELECT count(*) FROM conditions").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM sponsors").fetchone()[0] == 2


def test_leaving_and_rejoining_a_topic_is_marked_and_logged_never_deleted(db):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS[:3]]
    save_studies(db, rows_of(*records), context(db))
    second = store.start_pull(db, "spine")
    assert store.mark_left(db, "spine", {SPINE_CONDITION_IDS[0]}, second) == 1
    assert store.present_ids(db, "spine") == set(SPINE_CONDITION_IDS[1:3])
    assert db.execute("SELECT count(*) FROM studies").fetchone()[0] == 3
    third = context(db, log_membership=True)
    counts = save_studies(db, rows_of(fixture_record(SPINE_CONDITION_IDS[0])), third)
    assert counts.rejoined == 1
    assert db.execute("SELECT pull_id, topic, nct_id, field, old, new FROM changes ORDER BY id").fetchall() == [
        (second, "spine", SPINE_CONDITION_IDS[0], "membership", "present", "left"),
        (third.pull_id, "spine", SPINE_CONDITION_IDS[0], "membership", "left", "present"),
    ]
    assert store.present_ids(db, "spine") == set(SPINE_CONDITION_IDS[:3])


def test_a_study_only_an_import_put_in_a_topic_is_dropped_silently_not_reported_as_left(db):
    save_studies(db, rows_of(fixture_record(SPINE_CONDITION_IDS[0])), context(db, source=FILE))
    assert store.mark_left(db, "spine", {SPINE_CONDITION_IDS[0]}, store.start_pull(db, "spine")) == 0
    assert store.present_ids(db, "spine") == set()
    assert db.execute("SELECT count(*) FROM changes").fetchone()[0] == 0


def test_a_page_that_fails_midway_writes_nothing(db):
    ctx = context(db)
    db.execute("CREATE TRIGGER boom BEFORE INSERT ON keywords BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.DatabaseError):
        save_studies(db, rows_of(fixture_record("NCT05489822")), ctx)
    assert db.execute("SELECT count(*) FROM studies").fetchone()[0] == 0
    assert db.execute("SELECT received FROM pulls").fetchone()[0] == 0


def test_killed_pulls_are_marked_at_the_next_start(db):
    pull = store.start_pull(db, "spine")
    assert store.mark_abandoned_pulls(db) == 1
    assert db.execute("SELECT outcome FROM pulls WHERE id = ?", [pull]).fetchone() == ("killed",)


# -- databases that are not ours ---------------------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a database, but long enough to look like one at a glance" * 3)
    before = sha(path)
    for opener in (lambda: store.open_for_reading(path), lambda: store.open_for_writing(path).__enter__()):
        with pytest.raises(StoreError, match="not a SQLite database"):
            opener()
    assert sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_another_applications_sqlite_file_is_refused_byte_for_byte_untouched(tmp_path, journal):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('mine')")
    conn.commit()
    conn.close()
    before = sha(path)
    for opener in (lambda: store.open_for_reading(path), lambda: store.open_for_writing(path).__enter__()):
        with pytest.raises(StoreError, match="trialsync did not make"):
            opener()
    assert sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]  # no lock, no WAL files beside it


def test_a_database_from_a_newer_trialsync_is_refused_untouched(tmp_path):
    path = tmp_path / "newer.db"
    with store.open_for_writing(path) as conn:
        conn.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    before = sha(path)
    for opener in (lambda: store.open_for_reading(path), lambda: store.open_for_writing(path).__enter__()):
        with pytest.raises(StoreError, match="newer trialsync"):
            opener()
    assert sha(path) == before


def test_reading_a_missing_database_creates_nothing(tmp_path):
    path = tmp_path / "not" / "here.db"
    with pytest.raises(NotFound, match="no trialsync database"):
        store.open_for_reading(path)
    assert list(tmp_path.iterdir()) == []


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        store.open_for_reading(tmp_path)


def test_a_read_only_connection_cannot_write(tmp_path):
    path = tmp_path / "ro.db"
    with store.open_for_writing(path):
        pass
    conn = store.open_for_reading(path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM topics")
    assert "read-only" in str(store.describe_error(sqlite3.OperationalError("attempt to write a readonly database")))
    assert "disk" in str(store.describe_error(sqlite3.OperationalError("database or disk is full")))
    assert "damaged" in str(store.describe_error(sqlite3.DatabaseError("database disk image is malformed")))


# -- the write lock ------------------------------------------------------------------------------------------


def try_lock(path) -> str:
    code = ("import sys; from trialsync import store\n"
            "try:\n    with store.write_lock(sys.argv[1], 0.2): print('got it')\n"
            "except Exception as e: print(type(e).__name__)")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60).stdout.strip()


def test_the_write_lock_is_exclusive_whatever_the_path_is_called(tmp_path):
    path = tmp_path / "locked.db"
    link = tmp_path / "link.db"
    link.symlink_to(path)
    with store.write_lock(path):
        assert try_lock(path) == LockBusy.__name__
        assert try_lock(link) == LockBusy.__name__
        assert try_lock(tmp_path / "." / "locked.db") == LockBusy.__name__
    assert try_lock(link) == "got it"


def second_release_database(path, records) -> None:
    """A database as the second release (schema 2) left it, holding ``records`` pulled into topic 'spine'."""
    from sqlite_utils import Database

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA application_id = {store_db.APPLICATION_ID}")
    migrations.apply(Database(conn), stop_before="m003_derived_fields_and_search")
    conn.execute("PRAGMA user_version = 2")
    columns = {table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")][2:]
               for table in ("conditions", "interventions", "sponsors", "locations", "keywords", "secondary_ids",
                             "mesh_terms")}
    study_columns = [row[1] for row in conn.execute("PRAGMA table_info(studies)")]
    conn.execute("INSERT INTO topics (name, params, created_at, synced_params, filled) VALUES "
                 "('spine', '{\"query.cond\": \"spine\"}', 'x', '{\"query.cond\": \"spine\"}', 1)")
    conn.execute("INSERT INTO pulls (id, topic, kind, mode, started_at, outcome) VALUES (1, 'spine', 'pull', 'full', 'x', 'complete')")
    for record in records:
        rows = study_rows(record)
        conn.execute(f"INSERT INTO studies ({', '.join(study_columns)}) VALUES ({', '.join('?' * len(study_columns))})",
                     [rows.value(c) for c in study_columns])
        for table, names in columns.items():
            for seq, child in enumerate(rows.children[table]):
                conn.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * (len(names) + 2))})",
                             [rows.nct_id, seq, *child[:len(names)]])
        conn.execute("INSERT INTO topic_studies VALUES ('spine', ?, 1, 1, NULL, NULL, 1)", [rows.nct_id])
    conn.execute("INSERT INTO changes (pull_id, topic, nct_id, field, old, new, observed_at) VALUES "
                 "(1, NULL, ?, 'overall_status', 'RECRUITING', 'COMPLETED', 'z')", [rows.nct_id])
    conn.close()


def test_migration_3_derives_the_new_fields_from_raw_exactly_as_a_fresh_pull_would(tmp_path):
    from fakeapi import load_fixture_records
    from trialsync.transform import CHILD_COLUMNS, STUDY_COLUMNS, VIRTUAL_COLUMNS

    records = load_fixture_records()  # 140 real records: every age unit, date type and module seen
    path = tmp_path / "second.db"
    second_release_database(path, records)
    with store.open_for_writing(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
        for record in records:
            rows = study_rows(record)
            stored = conn.execute(f"SELECT {', '.join(STUDY_COLUMNS)} FROM studies WHERE nct_id = ?",
                                  [rows.nct_id]).fetchone()
            assert dict(zip(STUDY_COLUMNS[:-1], stored[:-1])) == dict(zip(STUDY_COLUMNS[:-1], rows.study[:-1]))
            for table, columns in CHILD_COLUMNS.items():
                got = conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE nct_id = ? ORDER BY seq",
                                   [rows.nct_id]).fetchall()
                assert got == rows.children[table], (rows.nct_id, table)
            points = conn.execute("SELECT cell, seq FROM site_points WHERE study = (SELECT rowid FROM studies "
                                  "WHERE nct_id = ?) ORDER BY cell, seq", [rows.nct_id]).fetchall()
            assert points == rows.site_points
            virtual = conn.execute(f"SELECT {', '.join(VIRTUAL_COLUMNS)} FROM studies WHERE nct_id = ?",
                                   [rows.nct_id]).fetchone()
            assert virtual == tuple(rows.value(column) for column in VIRTUAL_COLUMNS)
        # nothing lost: membership, pulls, topics and changes are all still there
        assert conn.execute("SELECT count(*) FROM topic_studies").fetchone()[0] == len(records)
        assert conn.execute("SELECT field, old, new, item FROM changes").fetchall() == [
            ("overall_status", "RECRUITING", "COMPLETED", None)]
        assert store.topic_state(conn, "spine").filled
        conn.execute("INSERT INTO studies_fts (studies_fts) VALUES ('integrity-check')")
        hits = conn.execute("SELECT count(*) FROM studies_fts WHERE studies_fts MATCH 'spine OR spinal'").fetchone()[0]
        assert hits > 0


def test_the_full_text_index_stays_equal_to_the_text_it_reads_through_changes(db):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS]
    save_studies(db, rows_of(*records), context(db))
    later = with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-20")
    later["protocolSection"]["identificationModule"]["briefTitle"] = "Renamed study about cartilage"
    later["protocolSection"]["conditionsModule"]["conditions"] = ["Cartilage Wear", "Trauma"]
    save_studies(db, rows_of(later), context(db, log_membership=True))
    db.execute("INSERT INTO studies_fts (studies_fts) VALUES ('integrity-check')")  # raises if index and text differ

    def found(query):
        return {row[0] for row in db.execute(
            "SELECT s.nct_id FROM studies_fts JOIN studies s ON s.rowid = studies_fts.rowid WHERE studies_fts MATCH ?",
            [query])}
    assert found("cartilage") == {"NCT05489822"}
    assert "NCT05489822" not in found("conditions: instabilities")  # its old condition is forgotten
    assert "NCT05489822" in found("brief_title: renamed") and "NCT05489822" not in found("brief_title: PMCF")
    assert found('conditions: "cartilage wear"') == {"NCT05489822"}


def test_a_database_with_two_names_or_that_is_not_a_file_is_refused(tmp_path):
    path = tmp_path / "main.db"
    with store.open_for_writing(path):
        pass
    alias = tmp_path / "alias.db"
    os.link(path, alias)
    for name in (path, alias):
        for opener in (lambda: store.open_for_reading(name), lambda: store.open_for_writing(name).__enter__()):
            with pytest.raises(StoreError, match="2 names"):
                opener()
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"):
        store.open_for_writing(fifo).__enter__()
    with pytest.raises(StoreError, match="not a regular file"):
        store.open_for_writing(Path("/dev/null")).__enter__()
    assert not Path("/dev/null.lock").exists()


def test_a_database_in_a_folder_nobody_may_write_to_is_read_as_it_stands(tmp_path, monkeypatch):
    path = tmp_path / "ro" / "t.db"
    with store.open_for_writing(path) as conn:
        store.save_topic(conn, Topic("spine", {"query.cond": "spine"}))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == path.parent and mode == os.W_OK
                        else real_access(p, mode))
    seen = []
    real_connect = store_db._connect
    monkeypatch.setattr(store_db, "_connect", lambda target, uri=False: seen.append(target) or real_connect(target, uri))
    conn = store.open_for_reading(path)
    assert store.topic_state(conn, "spine") is not None
    assert seen and seen[-1].endswith("?mode=ro&immutable=1")
