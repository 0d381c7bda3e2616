"""The database's shape, created up front with explicit types and changed only through migrations.

Each migration is frozen text: it never imports live code, so the table it creates today is the table it
created for the first release. Imported only when a database is created or upgraded.
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .db import APPLICATION_ID, SCHEMA_VERSION, transaction

migrations = Migrations("trialsync")

_CHILD_TABLES = {  # as the first release declared them: name -> columns after (nct_id, seq)
    "conditions": "condition TEXT",
    "interventions": "type TEXT, name TEXT",
    "sponsors": "role TEXT, name TEXT, class TEXT",
    "locations": "facility TEXT, city TEXT, state TEXT, country TEXT, status TEXT",
    "keywords": "keyword TEXT",
    "secondary_ids": "secondary_id TEXT, type TEXT, domain TEXT",
    "mesh_terms": "kind TEXT, mesh_id TEXT, term TEXT",
}


@migrations()
def m001_initial_schema(db: Database) -> None:
    db.execute("""
        CREATE TABLE topics (
            name TEXT PRIMARY KEY,
            params TEXT NOT NULL,          -- JSON object of API search parameters
            created_at TEXT NOT NULL
        )""")
    db.execute("""
        CREATE TABLE studies (
            nct_id TEXT PRIMARY KEY,
            brief_title TEXT, official_title TEXT, acronym TEXT,
            overall_status TEXT, last_known_status TEXT, why_stopped TEXT,
            study_type TEXT, phases TEXT, enrollment_count INTEGER, enrollment_type TEXT,
            start_date TEXT, start_date_sort TEXT,
            primary_completion_date TEXT, primary_completion_date_sort TEXT,
            completion_date TEXT, completion_date_sort TEXT,
            first_posted TEXT, last_update_posted TEXT, status_verified_date TEXT, results_first_posted TEXT,
            lead_sponsor TEXT, lead_sponsor_class TEXT, has_results INTEGER, brief_summary TEXT,
            location_count INTEGER, version_holder TEXT,
            raw TEXT NOT NULL              -- the record exactly as received, as JSON text
        )""")
    for table, columns in _CHILD_TABLES.items():
        # Clustered on (nct_id, seq): replacing one study's rows touches one contiguous range.
        db.execute(f"""
            CREATE TABLE {table} (
                nct_id TEXT NOT NULL REFERENCES studies(nct_id), seq INTEGER NOT NULL, {columns},
                PRIMARY KEY (nct_id, seq)
            ) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE pulls (
            id INTEGER PRIMARY KEY,
            topic TEXT NOT NULL,
            kind TEXT NOT NULL,            -- pull | import
            mode TEXT,                     -- full | incremental | skipped
            started_at TEXT NOT NULL, finished_at TEXT,
            outcome TEXT NOT NULL,         -- running | complete | unchanged | failed | interrupted | killed
            error TEXT,
            data_timestamp TEXT, api_version TEXT,
            requests INTEGER NOT NULL DEFAULT 0, total_count INTEGER,
            received INTEGER NOT NULL DEFAULT 0, new INTEGER NOT NULL DEFAULT 0,
            updated INTEGER NOT NULL DEFAULT 0, unchanged INTEGER NOT NULL DEFAULT 0,
            left_topic INTEGER NOT NULL DEFAULT 0, rejoined INTEGER NOT NULL DEFAULT 0,
            watermark TEXT,                -- newest last_update_posted known when the pull completed
            membership_checked INTEGER NOT NULL DEFAULT 0,  -- 1 if it compared the topic's full id list
            pid INTEGER, source TEXT
        )""")
    db.execute("CREATE INDEX pulls_topic ON pulls (topic, outcome, id)")
    db.execute("""
        CREATE TABLE topic_studies (
            topic TEXT NOT NULL, nct_id TEXT NOT NULL REFERENCES studies(nct_id),
            present INTEGER NOT NULL,      -- 1 while the API returns the study for the topic
            first_pull INTEGER, left_at TEXT, left_pull INTEGER,
            PRIMARY KEY (topic, nct_id)
        ) WITHOUT ROWID""")
    db.execute("""
        CREATE TABLE versions (
            id INTEGER PRIMARY KEY,
            nct_id TEXT NOT NULL, pull_id INTEGER NOT NULL REFERENCES pulls(id),
            replaced_at TEXT NOT NULL, last_update_posted TEXT,
            raw_zlib BLOB NOT NULL         -- the replaced raw JSON, zlib-compressed
        )""")
    db.execute("CREATE INDEX versions_nct_id ON versions (nct_id)")
    # old/new are BLOB-affinity so each value keeps the API's own type: text stays text, counts stay integers.
    db.execute("""
        CREATE TABLE changes (
            id INTEGER PRIMARY KEY,
            pull_id INTEGER NOT NULL REFERENCES pulls(id), topic TEXT NOT NULL,
            nct_id TEXT NOT NULL, field TEXT NOT NULL, old BLOB, new BLOB,
            observed_at TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX changes_topic ON changes (topic, observed_at)")
    db.execute("CREATE INDEX changes_nct_id ON changes (nct_id)")
    db.execute("""
        CREATE TABLE pull_status_counts (
            pull_id INTEGER NOT NULL REFERENCES pulls(id), overall_status TEXT NOT NULL,
            last_known_status TEXT NOT NULL,  -- '' when the study has none
            count INTEGER NOT NULL,
            PRIMARY KEY (pull_id, overall_status, last_known_status)
        ) WITHOUT ROWID""")
    db.execute("CREATE INDEX studies_by_status ON studies (overall_status, last_known_status, nct_id)")


@migrations()
def m002_sync_state_per_topic(db: Database) -> None:
    # A topic carries its own sync state: the search its last complete pull used, the watermark, the
    # API data it saw, and how far its changes have been reported. ``epoch``: the pulls with a larger id
    # belong to this topic (a topic removed and added again starts afresh).
    for column in ("epoch INTEGER NOT NULL DEFAULT 0", "synced_params TEXT", "filled INTEGER NOT NULL DEFAULT 0",
                   "watermark TEXT", "data_timestamp TEXT", "api_version TEXT",
                   "reported_through INTEGER NOT NULL DEFAULT 0"):
        db.execute(f"ALTER TABLE topics ADD COLUMN {column}")
    db.execute("""
        UPDATE topics SET
            filled = EXISTS (SELECT 1 FROM pulls p WHERE p.topic = topics.name
                             AND p.outcome IN ('complete', 'unchanged')),
            synced_params = CASE WHEN EXISTS (SELECT 1 FROM pulls p WHERE p.topic = topics.name AND p.kind = 'pull'
                                              AND p.outcome IN ('complete', 'unchanged')) THEN params END,
            data_timestamp = (SELECT p.data_timestamp FROM pulls p WHERE p.topic = topics.name AND p.kind = 'pull'
                              AND p.outcome IN ('complete', 'unchanged') ORDER BY p.id DESC LIMIT 1),
            watermark = (SELECT p.watermark FROM pulls p WHERE p.topic = topics.name AND p.kind = 'pull'
                         AND p.outcome IN ('complete', 'unchanged') ORDER BY p.id DESC LIMIT 1),
            reported_through = (SELECT coalesce(max(id), 0) FROM changes)""")
    # A watermark the first release took from a malformed or future date is dropped: the next pull is full.
    db.execute("""
        UPDATE topics SET watermark = NULL
        WHERE watermark IS NOT NULL AND NOT (
            watermark GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' AND date(watermark) IS watermark
            AND watermark <= coalesce(substr(data_timestamp, 1, 10), date('now')))""")
    # Changes are facts about studies; only membership events belong to a topic. ``reason`` marks the
    # membership events of a changed search, which a digest sums up in one line.
    db.execute("""
        CREATE TABLE changes_v2 (
            id INTEGER PRIMARY KEY,
            pull_id INTEGER NOT NULL REFERENCES pulls(id),
            topic TEXT,                    -- membership events: the topic; NULL for a change to the study itself
            nct_id TEXT NOT NULL, field TEXT NOT NULL, old BLOB, new BLOB,
            observed_at TEXT NOT NULL,
            reason TEXT                    -- 'search': caused by a changed search
        )""")
    db.execute("""
        INSERT INTO changes_v2 (id, pull_id, topic, nct_id, field, old, new, observed_at)
        SELECT id, pull_id, CASE WHEN field = 'membership' THEN topic END, nct_id, field, old, new, observed_at
        FROM changes""")
    db.execute("DROP TABLE changes")
    db.execute("ALTER TABLE changes_v2 RENAME TO changes")
    db.execute("CREATE INDEX changes_nct_id ON changes (nct_id, id)")
    db.execute("CREATE INDEX changes_topic ON changes (topic, id)")
    # Whether the API ever returned the study for the topic: only then can it be reported as having left.
    db.execute("ALTER TABLE topic_studies ADD COLUMN api_seen INTEGER NOT NULL DEFAULT 1")
    db.execute("""
        UPDATE topic_studies SET api_seen = 0
        WHERE first_pull IN (SELECT id FROM pulls WHERE kind = 'import')""")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def migrate(conn: sqlite3.Connection) -> None:
    """Apply every pending migration and stamp the schema version, all in one transaction. Harmless twice."""
    with transaction(conn):
        migrations.apply(Database(conn, execute_plugins=False))
        applied = len(migrations.applied(Database(conn, execute_plugins=False)))
        assert applied == SCHEMA_VERSION, f"{applied} migrations applied, schema version is {SCHEMA_VERSION}"
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
