"""The database's shape: tables created up front with explicit types, changed only through migrations.

Imported only when a database needs creating or migrating, so that read-only commands start fast.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .transform import CHILD_COLUMNS, STUDY_COLUMNS

SCHEMA_VERSION = 1  # PRAGMA user_version once every migration below has run; store.py checks it

migrations = Migrations("trialsync")


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
    assert STUDY_COLUMNS == tuple(c.name for c in db["studies"].columns)
    types = {"seq": "INTEGER"}
    for table, columns in CHILD_COLUMNS.items():
        body = ", ".join(f"{c} {types.get(c, 'TEXT')}" for c in columns)
        # Clustered on (nct_id, seq): replacing one study's rows touches one contiguous range.
        db.execute(f"""
            CREATE TABLE {table} (
                nct_id TEXT NOT NULL REFERENCES studies(nct_id), seq INTEGER NOT NULL, {body},
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
    # Each complete pull's counts: status-report reads these instead of counting the whole topic again.
    db.execute("""
        CREATE TABLE pull_status_counts (
            pull_id INTEGER NOT NULL REFERENCES pulls(id), overall_status TEXT NOT NULL,
            last_known_status TEXT NOT NULL,  -- '' when the study has none
            count INTEGER NOT NULL,
            PRIMARY KEY (pull_id, overall_status, last_known_status)
        ) WITHOUT ROWID""")
    # Counting a topic by status reads this index in group order, without touching the large raw rows.
    db.execute("CREATE INDEX studies_by_status ON studies (overall_status, last_known_status, nct_id)")


def migrate(db: Database) -> None:
    """Apply every pending migration, then stamp the schema version. Running it twice is harmless."""
    migrations.apply(db)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
