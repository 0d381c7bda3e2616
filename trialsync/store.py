"""The SQLite store: opening and migrating, saving pages of studies, topics, pulls, membership, history, the lock.

Knows no HTTP; the tables themselves are declared in ``schema.py``. Every write of a page happens in one
transaction, so a pull killed at any moment leaves the database as it was before that page or after it,
never in between.
"""

from __future__ import annotations

import os
import re
import sqlite3
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from .errors import LockBusy, NotFound, StoreError, UsageError
from .statuses import NO_STATUS
from .topics import BUILTIN_TOPICS, DEFAULT_TOPIC_NAME, Topic
from .transform import (
    CHILD_COLUMNS, STUDY_COLUMNS, TRACKED_FIELDS, StudyRows, serialize, study_rows,
)

if TYPE_CHECKING:
    from sqlite_utils import Database

BUSY_TIMEOUT_SECONDS = 30.0
SCHEMA_VERSION = 1  # must equal schema.SCHEMA_VERSION (a test checks); read here without importing sqlite-utils
MEMBERSHIP = "membership"  # the ``changes.field`` of a study joining, leaving or rejoining a topic
COMPLETE_OUTCOMES = ("complete", "unchanged")
# The studies a topic holds now, counted by status and last known status (reads only studies_by_status).
# Without statistics the planner would take the primary key and sort; the index is already in group order.
COUNT_BY_STATUS = f"""coalesce(overall_status, '{NO_STATUS}'), coalesce(last_known_status, ''), count(*)
    FROM studies INDEXED BY studies_by_status
    WHERE nct_id IN (SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1)
    GROUP BY overall_status, last_known_status"""
_CHUNK = 500  # bound parameters per IN (...) query


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_db_path() -> Path:
    """The database used when neither ``--db`` nor ``TRIALSYNC_DB`` is given."""
    from platformdirs import user_data_path

    return user_data_path("trialsync", appauthor=False) / "trialsync.db"


def open_db(path: str | os.PathLike, write: bool = True):
    """Open (creating if needed) the database at ``path``, bring its schema up to date and return it.

    With ``write`` it is a sqlite-utils ``Database``; without, a plain ``sqlite3.Connection`` for
    queries, which spares read-only commands the import of sqlite-utils. Raises StoreError, without
    touching the file, when it is not a usable SQLite database.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise StoreError(f"cannot open database {path}: it is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from None
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION  # fails if not SQLite
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL keeps the database consistent through a crash; at worst the last commits are lost.
        conn.execute("PRAGMA synchronous=NORMAL")
        if current and not write:
            return conn
        from sqlite_utils import Database

        from .schema import migrate

        db = Database(conn, execute_plugins=False)
        if not current:
            migrate(db)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"cannot use database {path}: {exc}") from None
    return db if write else conn


# -- topics -----------------------------------------------------------------------------------------


def save_topic(db: Database, topic: Topic, replace: bool = False) -> None:
    """Store ``topic``; raises UsageError if one of that name exists and ``replace`` is false."""
    if not replace and get_stored_topic(db, topic.name) is not None:
        raise UsageError(f"topic {topic.name!r} already exists (use --replace to change it)")
    with db.atomic():
        db.execute(
            "INSERT INTO topics (name, params, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET params = excluded.params",
            [topic.name, orjson.dumps(topic.params).decode(), utc_now()],
        )


def get_stored_topic(db: Database, name: str) -> Topic | None:
    """The stored topic called ``name``, or None."""
    row = db.execute("SELECT name, params FROM topics WHERE name = ?", [name]).fetchone()
    return Topic(row[0], orjson.loads(row[1])) if row else None


def list_topics(db: Database) -> list[Topic]:
    """Every stored topic, by name."""
    return [Topic(name, orjson.loads(params)) for name, params in db.execute("SELECT name, params FROM topics ORDER BY name")]


def get_topic(db: Database, name: str) -> Topic:
    """The stored topic ``name``, or the built-in topic of that name; NotFound when neither exists."""
    topic = get_stored_topic(db, name) or BUILTIN_TOPICS.get(name)
    if topic is None:
        known = sorted({t.name for t in list_topics(db)} | set(BUILTIN_TOPICS))
        raise NotFound(f"unknown topic {name!r} (known: {', '.join(known)}); add one with `trialsync topics add`")
    return topic


def default_topic_name(db: Database) -> str:
    """The topic a command means when none is named: the only stored one, else the built-in one.

    Raises UsageError when several topics are stored and the built-in one is not among them.
    """
    stored = [t.name for t in list_topics(db)]
    if len(stored) == 1:
        return stored[0]
    if not stored or DEFAULT_TOPIC_NAME in stored:
        return DEFAULT_TOPIC_NAME
    raise UsageError(f"several topics are stored ({', '.join(stored)}): name one")


def remove_topic(db: Database, name: str) -> int:
    """Remove topic ``name`` and its membership list; study records and history stay. Returns members removed."""
    if get_stored_topic(db, name) is None:
        raise NotFound(f"unknown topic {name!r}: it is not stored")
    with db.atomic():
        members = db.execute("SELECT count(*) FROM topic_studies WHERE topic = ?", [name]).fetchone()[0]
        db.execute("DELETE FROM topic_studies WHERE topic = ?", [name])
        db.execute("DELETE FROM topics WHERE name = ?", [name])
    return members


# -- pulls ------------------------------------------------------------------------------------------


def start_pull(db: Database, topic: str, kind: str = "pull", mode: str | None = None, source: str | None = None) -> int:
    """Record the start of a pull (or import) and return its id."""
    with db.atomic():
        cursor = db.execute(
            "INSERT INTO pulls (topic, kind, mode, started_at, outcome, pid, source) VALUES (?, ?, ?, ?, 'running', ?, ?)",
            [topic, kind, mode, utc_now(), os.getpid(), source],
        )
    return cursor.lastrowid


def update_pull(db: Database, pull_id: int, **values) -> None:
    """Set columns of a pull row (``mode``, ``data_timestamp``, ``total_count``...)."""
    if values:
        assignments = ", ".join(f"{column} = ?" for column in values)
        with db.atomic():
            db.execute(f"UPDATE pulls SET {assignments} WHERE id = ?", [*values.values(), pull_id])


def finish_pull(db: Database, pull_id: int, outcome: str, error: str | None = None, **values) -> None:
    """Record how a pull ended. A complete pull also snapshots the topic's status counts."""
    with db.atomic():
        update_pull(db, pull_id, outcome=outcome, error=error, finished_at=utc_now(), **values)
        if outcome in COMPLETE_OUTCOMES:
            topic = db.execute("SELECT topic FROM pulls WHERE id = ?", [pull_id]).fetchone()[0]
            db.execute(
                f"INSERT INTO pull_status_counts (pull_id, overall_status, last_known_status, count) "
                f"SELECT ?, {COUNT_BY_STATUS}", [pull_id, topic])


def mark_abandoned_pulls(db: Database) -> int:
    """Mark pulls still 'running' as 'killed'. Call only while holding the pull lock. Returns how many."""
    with db.atomic():
        cursor = db.execute(
            "UPDATE pulls SET outcome = 'killed', finished_at = ?, "
            "error = 'the process ended before the pull finished (killed or power lost)' WHERE outcome = 'running'",
            [utc_now()],
        )
    return cursor.rowcount


def last_complete_pull(db: Database, topic: str, kinds: Sequence[str] = ("pull",)) -> dict | None:
    """The newest pull of ``topic`` that completed (or found nothing to do), as a dict, or None."""
    marks = ", ".join("?" for _ in kinds)
    row = db.execute(
        f"SELECT * FROM pulls WHERE topic = ? AND outcome IN ('complete', 'unchanged') AND kind IN ({marks}) "
        "ORDER BY id DESC LIMIT 1",
        [topic, *kinds],
    )
    found = row.fetchone()
    return dict(zip([d[0] for d in row.description], found)) if found else None


def topic_watermark(db: Database, topic: str) -> str | None:
    """The newest ``last_update_posted`` among the topic's studies (a pass over the whole topic)."""
    return db.execute(
        "SELECT max(s.last_update_posted) FROM topic_studies t JOIN studies s ON s.nct_id = t.nct_id WHERE t.topic = ?",
        [topic],
    ).fetchone()[0]


# -- saving studies ---------------------------------------------------------------------------------


@dataclass
class SaveCounts:
    """What saving some studies did, by study."""

    received: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    rejoined: int = 0

    def add(self, other: "SaveCounts") -> None:
        """Add ``other``'s counts to these."""
        for name in ("received", "new", "updated", "unchanged", "rejoined"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


# raw arrives as the UTF-8 bytes the API sent; SQLite turns them into TEXT without a copy through Python.
_INSERT_STUDY = (f"INSERT OR REPLACE INTO studies ({', '.join(STUDY_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * (len(STUDY_COLUMNS) - 1))}, CAST(? AS TEXT))")
_INSERT_CHILD = {
    table: f"INSERT INTO {table} (nct_id, seq, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 2))})"
    for table, cols in CHILD_COLUMNS.items()
}
_DELETE_CHILD = {table: f"DELETE FROM {table} WHERE nct_id = ?" for table in CHILD_COLUMNS}
_TRACKED_SELECT = ", ".join(TRACKED_FIELDS)
# versionHolder is the date of the registry's data release: it moves for every study at each refresh, so two
# records whose bytes differ only there describe the same study state.
_VERSION_HOLDER = re.compile(rb'"versionHolder"\s*:\s*"[^"]*"')
_INSERT_CHANGE = "INSERT INTO changes (pull_id, topic, nct_id, field, old, new, observed_at) VALUES (?, ?, ?, ?, ?, ?, ?)"


def _chunks(items: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _select_in(db: Database, sql: str, ids: Sequence[str], *before) -> list[tuple]:
    rows: list[tuple] = []
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        rows.extend(db.execute(sql.format(marks=marks), [*before, *chunk]).fetchall())
    return rows


def save_studies(db: Database, records: Sequence[dict], topic: str, pull_id: int, record_new: bool) -> SaveCounts:
    """Save parsed study records (see ``save_rows``); used where records come as dicts, as from a file."""
    return save_rows(db, [study_rows(record, serialize(record)) for record in records], topic, pull_id, record_new)


def save_rows(db: Database, rows: Sequence[StudyRows], topic: str, pull_id: int, record_new: bool,
              same_ids: Sequence[str] = ()) -> SaveCounts:
    """Save studies for ``topic`` in one transaction, and count what that changed.

    A record identical to the stored one writes nothing. A changed one keeps the replaced raw record in
    ``versions`` and logs its tracked fields in ``changes``. A study new to the topic is logged as a
    membership change when ``record_new`` (false while a topic is first filled). ``same_ids`` are studies
    received byte for byte as stored: only their membership is looked at. Saving the same records twice
    changes nothing.
    """
    by_id = {study.nct_id: study for study in rows}  # a study listed twice in one answer: the later copy wins
    same_ids = [nct_id for nct_id in same_ids if nct_id not in by_id]
    ids = list(by_id)
    # The stored raw comes back as bytes, to compare with the bytes just received.
    stored = {row[0]: row[1:] for row in _select_in(
        db, f"SELECT nct_id, CAST(raw AS BLOB), last_update_posted, {_TRACKED_SELECT} FROM studies "
            "WHERE nct_id IN ({marks})", ids)}
    membership = dict(_select_in(
        db, "SELECT nct_id, present FROM topic_studies WHERE topic = ? AND nct_id IN ({marks})", ids + same_ids, topic))
    now = utc_now()
    counts = SaveCounts(received=len(by_id) + len(same_ids))
    to_write: list[StudyRows] = []
    changes: list[tuple] = []
    versions: list[tuple] = []
    refreshed: list[tuple] = []
    joined: list[tuple] = []
    rejoined: list[str] = []

    for nct_id, study in [*by_id.items(), *((nct_id, None) for nct_id in same_ids)]:
        old = stored.get(nct_id)
        record_changed = False
        if study is None:
            pass
        elif old is None:
            to_write.append(study)
        elif old[0] != study.value("raw"):
            old_raw, new_raw = old[0], study.value("raw")
            if _VERSION_HOLDER.sub(b"", old_raw) == _VERSION_HOLDER.sub(b"", new_raw):
                refreshed.append((new_raw, study.value("version_holder"), nct_id))
            else:
                record_changed = True
                to_write.append(study)
                versions.append((nct_id, pull_id, now, old[1], zlib.compress(old_raw, 1)))
                for name, old_value in zip(TRACKED_FIELDS, old[2:]):
                    new_value = study.value(name)
                    if old_value != new_value:
                        changes.append((pull_id, topic, nct_id, name, old_value, new_value, now))

        present = membership.get(nct_id)
        if present is None:
            counts.new += 1
            joined.append((topic, nct_id, pull_id))
            if record_new:
                changes.append((pull_id, topic, nct_id, MEMBERSHIP, None, "added", now))
        elif not present:
            counts.rejoined += 1
            rejoined.append(nct_id)
            changes.append((pull_id, topic, nct_id, MEMBERSHIP, "left", "present", now))
        elif record_changed:
            counts.updated += 1
        else:
            counts.unchanged += 1
    del stored

    with db.atomic():
        conn = db.conn
        if to_write:
            conn.executemany(_INSERT_STUDY, [study.study for study in to_write])
            replaced = [(version[0],) for version in versions]  # their old child rows go first
            for table in CHILD_COLUMNS:
                if replaced:
                    conn.executemany(_DELETE_CHILD[table], replaced)
                conn.executemany(_INSERT_CHILD[table], [
                    (study.nct_id, seq, *child)
                    for study in to_write for seq, child in enumerate(study.children[table])
                ])
        if refreshed:
            conn.executemany("UPDATE studies SET raw = CAST(? AS TEXT), version_holder = ? WHERE nct_id = ?", refreshed)
        if versions:
            conn.executemany(
                "INSERT INTO versions (nct_id, pull_id, replaced_at, last_update_posted, raw_zlib) VALUES (?, ?, ?, ?, ?)",
                versions)
        if joined:
            conn.executemany("INSERT INTO topic_studies (topic, nct_id, present, first_pull) VALUES (?, ?, 1, ?)", joined)
        if rejoined:
            conn.executemany(
                "UPDATE topic_studies SET present = 1, left_at = NULL, left_pull = NULL WHERE topic = ? AND nct_id = ?",
                [(topic, nct_id) for nct_id in rejoined])
        if changes:
            conn.executemany(_INSERT_CHANGE, changes)
        conn.execute(
            "UPDATE pulls SET received = received + ?, new = new + ?, updated = updated + ?, "
            "unchanged = unchanged + ?, rejoined = rejoined + ? WHERE id = ?",
            [counts.received, counts.new, counts.updated, counts.unchanged, counts.rejoined, pull_id])
    return counts


def open_reader(db: Database) -> sqlite3.Connection | None:
    """A second, read-only connection to ``db``'s file, usable while another thread writes (WAL); None in memory."""
    path = db.execute("PRAGMA database_list").fetchone()[2]
    if not path:
        return None
    return sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True, check_same_thread=False)


def stored_raw(db, nct_ids: Sequence[str]) -> dict[str, bytes]:
    """The stored raw JSON bytes of those of ``nct_ids`` the store holds."""
    return dict(_select_in(db, "SELECT nct_id, CAST(raw AS BLOB) FROM studies WHERE nct_id IN ({marks})", nct_ids))


def present_ids(db: Database, topic: str) -> set[str]:
    """The NCT ids the API returned for ``topic`` at its last look (members not marked as left)."""
    return {row[0] for row in db.execute("SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1", [topic])}


def mark_left(db: Database, topic: str, nct_ids: Iterable[str], pull_id: int) -> int:
    """Mark ``nct_ids`` as having left ``topic`` (never deleting them) and log it. Returns how many."""
    nct_ids = sorted(nct_ids)
    if not nct_ids:
        return 0
    now = utc_now()
    with db.atomic():
        db.conn.executemany(
            "UPDATE topic_studies SET present = 0, left_at = ?, left_pull = ? WHERE topic = ? AND nct_id = ?",
            [(now, pull_id, topic, nct_id) for nct_id in nct_ids])
        db.conn.executemany(_INSERT_CHANGE, [(pull_id, topic, nct_id, MEMBERSHIP, "present", "left", now) for nct_id in nct_ids])
        db.execute("UPDATE pulls SET left_topic = left_topic + ? WHERE id = ?", [len(nct_ids), pull_id])
    return len(nct_ids)


# -- the write lock ---------------------------------------------------------------------------------


@contextmanager
def write_lock(db_path: str | os.PathLike, wait: float = 0.0) -> Iterator[None]:
    """Hold the database's write lock (``<db>.lock``), waiting up to ``wait`` seconds; else raise LockBusy.

    The operating system releases it when the holder dies, so a killed pull never leaves it stuck.
    """
    from filelock import FileLock, Timeout

    path = Path(db_path).expanduser()
    lock = FileLock(f"{path}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=max(wait, 0.0))
    except Timeout:
        waited = f" after waiting {wait:g}s" if wait > 0 else ""
        raise LockBusy(f"another trialsync pull is writing to {path}{waited}; try again later or use --wait") from None
    except OSError as exc:
        raise StoreError(f"cannot lock database {path}: {exc}") from None
    try:
        yield
    finally:
        lock.release()
