"""A topic as it stood after one of its complete pulls, rebuilt from the stored versions and membership
history: its members then, and each member's record as it was then."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from .. import jsontext
from ..errors import NotFound
from ..transform import CHILD_COLUMNS, STUDY_COLUMNS, study_rows
from .common import last_pull

_MEMBERS_AT = """
    SELECT m.nct_id FROM main.topic_studies m
    WHERE m.topic = :topic AND coalesce(m.first_pull, 0) <= :pull AND coalesce((
        SELECT c.new FROM main.changes c
        WHERE c.topic = m.topic AND c.nct_id = m.nct_id AND c.field = 'membership' AND c.pull_id <= :pull
        ORDER BY c.id DESC LIMIT 1), 'added') != 'left'"""


def pull_at(conn: sqlite3.Connection, topic: str, moment: str) -> dict:
    """The topic's last complete pull or import finished at or before ``moment``; NotFound when none was."""
    pull = last_pull(conn, topic, finished_by=moment)
    if pull is None:
        raise NotFound(f"topic {topic!r} had no complete pull or import at or before {moment}")
    return pull


def members_at(conn: sqlite3.Connection, topic: str, pull_id: int) -> list[str]:
    """The studies the topic held after pull ``pull_id``."""
    return sorted(row[0] for row in conn.execute(_MEMBERS_AT, {"topic": topic, "pull": pull_id}))


def records_replaced_after(conn: sqlite3.Connection, nct_ids: list[str], pull_id: int) -> dict[str, bytes]:
    """For those of ``nct_ids`` whose record was replaced after pull ``pull_id``: the record they had then."""
    records = {}
    for nct_id in nct_ids:
        row = conn.execute("SELECT raw_zlib FROM main.versions WHERE nct_id = ? AND pull_id > ? ORDER BY id LIMIT 1",
                           [nct_id, pull_id]).fetchone()
        if row is not None:
            records[nct_id] = zlib.decompress(row[0])
    return records


@contextmanager
def topic_as_of(conn: sqlite3.Connection, topic: str, moment: str) -> Iterator[dict]:
    """Within the block, ``studies``, the child tables and ``topic_studies`` read as the topic stood after
    its last complete pull at or before ``moment`` (TEMP tables shadow the stored ones; nothing stored is
    changed). Yields that pull."""
    pull = pull_at(conn, topic, moment)
    members = members_at(conn, topic, pull["id"])
    earlier = records_replaced_after(conn, members, pull["id"])
    current = [nct_id for nct_id in members if nct_id not in earlier]
    columns = [c for c in STUDY_COLUMNS if c != "raw"]
    shadowed = ["studies", "topic_studies", "site_points", *CHILD_COLUMNS]
    try:
        conn.execute("CREATE TEMP TABLE ids (nct_id TEXT PRIMARY KEY)")
        conn.executemany("INSERT INTO temp.ids VALUES (?)", [(i,) for i in current])
        conn.execute(f"CREATE TEMP TABLE studies AS SELECT {', '.join(columns)}, NULL AS raw "
                     f"FROM main.studies WHERE nct_id IN (SELECT nct_id FROM temp.ids)")
        for table, child_columns in CHILD_COLUMNS.items():
            conn.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM main.{table} "
                         f"WHERE nct_id IN (SELECT nct_id FROM temp.ids)")
        for nct_id, raw in earlier.items():
            rows = study_rows(jsontext.loads(raw), raw)
            values = [rows.value(c) for c in columns]
            conn.execute(f"INSERT INTO temp.studies ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         values)
            for table, child_columns in CHILD_COLUMNS.items():
                conn.executemany(f"INSERT INTO temp.{table} VALUES ({', '.join('?' * (len(child_columns) + 2))})",
                                 [(nct_id, seq, *child) for seq, child in enumerate(rows.children[table])])
        conn.execute("CREATE TEMP TABLE topic_studies AS SELECT ? AS topic, nct_id, 1 AS present, NULL AS first_pull, "
                     "NULL AS left_at, NULL AS left_pull, 1 AS api_seen FROM temp.studies", [topic])
        conn.execute("CREATE TEMP TABLE site_points AS SELECT "
                     "(CAST(l.latitude AS INTEGER) - (l.latitude < CAST(l.latitude AS INTEGER)) + 90) * 360 + "
                     "(CAST(l.longitude AS INTEGER) - (l.longitude < CAST(l.longitude AS INTEGER)) + 180) AS cell, "
                     "s.rowid AS study, min(l.seq) AS seq FROM temp.locations l JOIN temp.studies s ON s.nct_id = l.nct_id "
                     "WHERE l.latitude IS NOT NULL AND l.longitude IS NOT NULL GROUP BY l.nct_id, l.latitude, l.longitude")
        # The same names as the stored indexes: queries that ask for one by name (INDEXED BY) work on the shadow.
        conn.execute("CREATE INDEX temp.studies_by_status ON studies (overall_status, last_update_posted, "
                     "last_known_status, nct_id)")
        conn.execute("CREATE INDEX temp.studies_facts ON studies (nct_id, overall_status, study_type, "
                     "lead_sponsor_class, phases, start_date_sort, lead_sponsor, results_state, results_due_date)")
        conn.execute("CREATE INDEX temp.studies_results ON studies (results_state, results_due_date)")
        for table in CHILD_COLUMNS:
            conn.execute(f"CREATE INDEX temp.{table}_nct ON {table} (nct_id)")
        yield pull
    finally:
        for table in ["ids", *shadowed]:
            conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
