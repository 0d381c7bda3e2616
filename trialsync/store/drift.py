"""The API's data model as pulls fetched it (``data_models``) and the drift noted against it (``drift_notes``):
the one writer of both tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from .. import dates
from .db import transaction


@dataclass(frozen=True)
class StoredModel:
    """A data model as stored: the ``apiVersion`` it was fetched for, when, and its paths (path -> leaf)."""

    api_version: str
    fetched_at: str
    paths: dict[str, bool]


@dataclass(frozen=True)
class DriftNote:
    """One drift, noted once: its kind, the path or status, the first study seen with it (if any), the
    ``apiVersion`` of the model it was checked against and the pull that saw it (the table adds when)."""

    kind: str
    value: str
    nct_id: str | None
    api_version: str | None
    pull_id: int | None


def latest_model(conn: sqlite3.Connection) -> StoredModel | None:
    """The data model fetched last, or None when no pull has fetched one."""
    row = conn.execute("SELECT api_version, fetched_at, paths FROM data_models ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    return StoredModel(row[0], row[1], {path: bool(leaf) for path, leaf in orjson.loads(row[2]).items()})


def save_model(conn: sqlite3.Connection, api_version: str, paths: dict[str, bool], pull_id: int | None,
               notes: Iterable[DriftNote] = (), resolved: Iterable[tuple[str, str]] = ()) -> StoredModel:
    """Store a newly fetched data model as the latest, with the drift it shows (``notes``: the fields that left
    the model) and without the notes it settles (``resolved``: (kind, value) of each), in one transaction.
    Returns the model as stored."""
    model = StoredModel(api_version, dates.utc_now(), dict(paths))
    with transaction(conn):
        conn.execute("INSERT INTO data_models (api_version, fetched_at, pull_id, paths) VALUES (?, ?, ?, ?)",
                     [api_version, model.fetched_at, pull_id,
                      orjson.dumps({path: int(leaf) for path, leaf in paths.items()}).decode()])
        conn.executemany("DELETE FROM drift_notes WHERE kind = ? AND value = ?", list(resolved))
        add_notes(conn, notes)
    return model


def add_notes(conn: sqlite3.Connection, notes: Iterable[DriftNote]) -> None:
    """Note each drift not noted yet (one of a kind and value already noted is left as it was)."""
    now = dates.utc_now()
    with transaction(conn):
        conn.executemany(
            "INSERT OR IGNORE INTO drift_notes (kind, value, nct_id, api_version, pull_id, noted_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(n.kind, n.value, n.nct_id, n.api_version, n.pull_id, now) for n in notes])


def drift_notes(conn: sqlite3.Connection) -> list[DriftNote]:
    """Every drift noted, by kind, then in the order they were noted."""
    return [DriftNote(*row) for row in conn.execute(
        "SELECT kind, value, nct_id, api_version, pull_id FROM drift_notes ORDER BY kind, noted_at, value")]
