"""Schema drift warnings: the records a pull saves checked against the API's own data model.

When a pull sees an ``apiVersion`` other than the one the stored data model was fetched for (or no model is
stored yet), it fetches ``/studies/metadata`` once, through the client (its retries, deadline and size cap),
and stores it flattened to paths (``transform.drift``). The paths the previous model had and the new one
lacks are warned. Then each record the pull saves is checked: a path it carries that the model lacks, and a
status outside the 14 known, are warned once each, not once per record. What was warned is noted in the store
(``store.drift``), so no later pull warns of it again, and ``doctor`` lists it. A model fetched later that has
a path noted as unknown (or as gone) settles that note.

Nothing is dropped or altered: the check only reads the parsed record, and the raw record is stored as sent.
A data model that cannot be fetched does not fail the pull: it is said in one line, records are checked
against the model stored before (if any), and the next pull asks again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ..api import ApiClient
from ..errors import ApiError
from ..store import drift as stored
from ..store.drift import DriftNote, StoredModel
from ..transform.drift import (
    UNKNOWN_FIELD, UNKNOWN_STATUS, VANISHED_FIELD, DataModel, NotADataModel, model_paths,
    vanished_paths,
)

PREFIX = "schema drift: "


class DriftWatch:
    """One pull's check of the records it saves: ``note`` what ``transform.drift.drift_of`` found in each record
    (found where it is flattened, here or in the worker; touches no database), then ``flush`` when the database
    is free, which notes and warns what is new."""

    def __init__(self, conn: sqlite3.Connection, model: StoredModel | None, pull_id: int,
                 warn: Callable[[str], None]):
        self.conn, self.pull_id, self.warn = conn, pull_id, warn
        self.api_version = model.api_version if model else None
        self.paths = model.paths if model else None  # what a worker process checks records against
        self.model = DataModel(model.paths) if model else None
        self.noted = {(note.kind, note.value) for note in stored.drift_notes(conn)}
        self.pending: list[DriftNote] = []

    def note(self, found: list[tuple[str, str]], nct_id: str) -> None:
        """Keep for ``flush`` what of ``found`` (``drift_of`` a record, checked elsewhere) is not noted yet."""
        for kind, value in found:
            if (kind, value) not in self.noted:
                self.noted.add((kind, value))
                self.pending.append(DriftNote(kind, value, nct_id or None, self.api_version, self.pull_id))

    def flush(self) -> None:
        """Note what ``note`` kept since the last flush, then warn of each (one line each)."""
        if not self.pending:
            return
        found, self.pending = self.pending, []
        stored.add_notes(self.conn, found)
        for note in found:
            self.warn(warning_line(note))


def watch_drift(conn: sqlite3.Connection, client: ApiClient, api_version: str | None, pull_id: int,
                warn: Callable[[str], None]) -> DriftWatch:
    """The drift check of a pull that saw ``api_version`` at ``/version``: first the data model fetched and
    stored if the stored one is of another ``apiVersion`` (or none is stored; a pull that saw no
    ``apiVersion`` fetches nothing), and the fields that left it warned. Raises only what stops the pull
    anyway (Interrupted, a store error): a data model that cannot be had is warned, in one line."""
    model = stored.latest_model(conn)
    if api_version is not None and (model is None or model.api_version != api_version):
        model = _fetch_model(conn, client, api_version, model, pull_id, warn)
    return DriftWatch(conn, model, pull_id, warn)


def _fetch_model(conn: sqlite3.Connection, client: ApiClient, api_version: str, before: StoredModel | None,
                 pull_id: int, warn: Callable[[str], None]) -> StoredModel | None:
    """The data model of ``api_version``, fetched and stored with the fields that left it since ``before`` (each
    warned); ``before`` if it cannot be fetched (said in one line)."""
    try:
        paths = model_paths(client.data_model())
    except (ApiError, NotADataModel) as exc:
        checked = (f"records are checked against the data model of apiVersion {before.api_version}" if before
                   else "records are not checked against a data model")
        warn(f"{PREFIX}could not fetch the API's data model for apiVersion {api_version} ({exc}); {checked} "
             "until a pull fetches it (the next pull asks again)")
        return before
    model = DataModel(paths)
    gone = vanished_paths(before.paths, paths) if before else []
    noted = stored.drift_notes(conn)
    known = {(note.kind, note.value) for note in noted}
    notes = [DriftNote(VANISHED_FIELD, path, None, api_version, pull_id) for path in gone
             if (VANISHED_FIELD, path) not in known]
    # Settled: a field records carry that this model has after all, a field that left an earlier model and is
    # back; each is warned again should it drift again.
    resolved = [(note.kind, note.value) for note in noted
                if (note.kind == UNKNOWN_FIELD and model.covers(note.value))
                or (note.kind == VANISHED_FIELD and note.value in paths)]
    saved = stored.save_model(conn, api_version, paths, pull_id, notes, resolved)
    for note in notes:  # only a model stored before has fields to lose
        warn(f"{PREFIX}{note.value} left the API's data model of apiVersion {api_version} (apiVersion "
             f"{before.api_version} had it)")
    return saved


def warning_line(note: DriftNote) -> str:
    """The one line that warns of ``note``, a field or a status a record carries."""
    if note.kind == UNKNOWN_STATUS:
        return (f"{PREFIX}{note.nct_id} has status {note.value}, not one of the 14 known; stored as sent "
                "(counted under its own name)")
    return (f"{PREFIX}{note.nct_id} carries {note.value}, a field the API's data model (apiVersion "
            f"{note.api_version}) lacks; stored as sent (raw keeps it)")
