"""Stored topics and the sync state each carries: the search its last complete pull used, the watermark,
the API data it saw, and the digest cursor (how far its changes have been reported)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import orjson

from .. import dates
from ..errors import NotFound, UsageError
from ..topics import BUILTIN_TOPICS, DEFAULT_TOPIC_NAME, Topic
from . import membership
from .db import transaction


@dataclass(frozen=True)
class TopicState:
    """A stored topic with its sync state."""

    topic: Topic
    epoch: int  # pulls with a larger id belong to this topic
    synced_params: dict | None  # the search of its last complete pull; None before the first
    filled: bool  # a pull or import of it has completed
    watermark: str | None
    data_timestamp: str | None
    reported_through: int  # the highest change id its digests have reported

    @property
    def search_changed(self) -> bool:
        """Whether the topic's search differs from the one its studies were last pulled with."""
        return self.synced_params is not None and self.synced_params != self.topic.search_params()


_STATE_COLUMNS = "name, params, epoch, synced_params, filled, watermark, data_timestamp, reported_through"


def _state(row) -> TopicState:
    name, params, epoch, synced, filled, watermark, data_timestamp, reported = row
    return TopicState(Topic(name, orjson.loads(params)), epoch, orjson.loads(synced) if synced else None,
                      bool(filled), watermark, data_timestamp, reported)


def topic_state(conn: sqlite3.Connection, name: str) -> TopicState | None:
    """The stored topic ``name`` with its sync state, or None."""
    row = conn.execute(f"SELECT {_STATE_COLUMNS} FROM topics WHERE name = ?", [name]).fetchone()
    return _state(row) if row else None


def get_stored_topic(conn: sqlite3.Connection, name: str) -> Topic | None:
    """The stored topic called ``name``, or None."""
    state = topic_state(conn, name)
    return state.topic if state else None


def list_topics(conn: sqlite3.Connection) -> list[Topic]:
    """Every stored topic, by name."""
    return [Topic(name, orjson.loads(params)) for name, params in conn.execute("SELECT name, params FROM topics ORDER BY name")]


def get_topic(conn: sqlite3.Connection, name: str) -> Topic:
    """The stored topic ``name``, or the built-in topic of that name; NotFound when neither exists."""
    topic = get_stored_topic(conn, name) or BUILTIN_TOPICS.get(name)
    if topic is None:
        known = sorted({t.name for t in list_topics(conn)} | set(BUILTIN_TOPICS))
        raise NotFound(f"unknown topic {name!r} (known: {', '.join(known)}); add one with `trialsync topics add`")
    return topic


def default_topic_name(conn: sqlite3.Connection) -> str:
    """The topic a command means when none is named: the only stored one, else the built-in one.

    Raises UsageError when several topics are stored and the built-in one is not among them.
    """
    stored = [t.name for t in list_topics(conn)]
    if len(stored) == 1:
        return stored[0]
    if not stored or DEFAULT_TOPIC_NAME in stored:
        return DEFAULT_TOPIC_NAME
    raise UsageError(f"several topics are stored ({', '.join(stored)}): name one")


def save_topic(conn: sqlite3.Connection, topic: Topic, replace: bool = False) -> bool:
    """Store ``topic``; returns whether it was new. An existing one is changed only with ``replace``
    (else UsageError); its next pull then fetches everything under the new search."""
    with transaction(conn):
        if topic_state(conn, topic.name) is not None:
            if not replace:
                raise UsageError(f"topic {topic.name!r} already exists (use --replace to change it)")
            conn.execute("UPDATE topics SET params = ? WHERE name = ?", [orjson.dumps(topic.params).decode(), topic.name])
            return False
        # A new topic owns only the pulls after this point, and has nothing reported or to report yet.
        conn.execute(
            "INSERT INTO topics (name, params, created_at, epoch, reported_through) VALUES (?, ?, ?, "
            "(SELECT coalesce(max(id), 0) FROM pulls), (SELECT coalesce(max(id), 0) FROM changes))",
            [topic.name, orjson.dumps(topic.params).decode(), dates.utc_now()])
        return True


def remove_topic(conn: sqlite3.Connection, name: str) -> int:
    """Remove topic ``name`` and its membership list; study records and their history stay. Returns the
    number of studies it held."""
    with transaction(conn):
        if topic_state(conn, name) is None:
            raise NotFound(f"unknown topic {name!r}: it is not stored")
        members = membership.forget_topic(conn, name)
        conn.execute("DELETE FROM digest_backlog WHERE topic = ?", [name])
        conn.execute("DELETE FROM topics WHERE name = ?", [name])
    return members


def record_complete_pull(conn: sqlite3.Connection, name: str, params: dict, watermark: str | None,
                         data_timestamp: str | None, api_version: str | None) -> None:
    """After a complete pull: the topic's studies are those of ``params``, up to date as of ``watermark``."""
    conn.execute(
        "UPDATE topics SET synced_params = ?, watermark = ?, data_timestamp = ?, api_version = ?, filled = 1 "
        "WHERE name = ?", [orjson.dumps(params).decode(), watermark, data_timestamp, api_version, name])


def mark_filled(conn: sqlite3.Connection, name: str, reported_through: int) -> None:
    """The topic's first fill completed: its digest starts after change ``reported_through``."""
    conn.execute("UPDATE topics SET filled = 1, reported_through = max(reported_through, ?) WHERE name = ?",
                 [reported_through, name])


def mark_reported(conn: sqlite3.Connection, name: str, through: int) -> None:
    """The topic's changes up to change id ``through`` have been reported (printed in a digest)."""
    with transaction(conn):
        conn.execute("UPDATE topics SET reported_through = max(reported_through, ?) WHERE name = ?", [through, name])
        conn.execute("DELETE FROM digest_backlog WHERE topic = ? AND change_id <= ?", [name, through])


def stored_topic_names(path) -> list[str]:
    """The names of the topics stored in the database at ``path``, for shell completion: read-only (it creates
    no file and writes nothing, not even a migration), and [] when there is no database or it cannot be read
    (locked, damaged, not ours)."""
    from pathlib import Path

    path = Path(path).expanduser()
    try:
        if not path.is_file():
            return []
        real = path.resolve()
        wal = Path(f"{real}-wal")
        # ``mode=ro`` alone makes -wal and -shm files beside a WAL database; with no commits waiting in a -wal
        # file the database file holds them all, and ``immutable=1`` reads it creating nothing.
        mode = "mode=ro" if wal.exists() and wal.stat().st_size else "mode=ro&immutable=1"
        conn = sqlite3.connect(f"{real.as_uri()}?{mode}", uri=True, timeout=0.2)
        try:
            return [row[0] for row in conn.execute("SELECT name FROM topics ORDER BY name")]
        finally:
            conn.close()
    except (sqlite3.Error, OSError, ValueError):
        return []
