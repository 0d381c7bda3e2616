"""Files a person already has: reading study records from them, and importing them into a topic.

An import never makes the store older: a record older than the stored one is skipped and counted, and a
record with the same content as the stored one changes nothing.
"""

from __future__ import annotations

import sqlite3
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from .. import jsontext
from ..api.pages import split_page
from ..dates import utc_today
from ..errors import ImportFileError, Interrupted, RecordError
from ..store import db as store_db
from ..store import history, pulls, topics
from ..store.studies import FILE, SaveContext, SaveCounts, is_earlier_state
from ..topics import BUILTIN_TOPICS, Topic
from ..transform import StudyRows, check_study_record, serialize, study_rows
from .collector import fewer_collections
from .saving import save_counted

BATCH = 1000
KINDS = "a ctg-studies.json array, a ctg-studies.json.zip, a saved /studies page, JSON lines or one study record"


def read_records(path: str | Path) -> list[tuple[dict, bytes]]:
    """Every study record in ``path``, each with the exact bytes the file holds for it (so that a file
    exported from trialsync imports back byte for byte); ImportFileError names the first thing that is not
    a study record."""
    path = Path(path)
    if path.is_dir():
        raise ImportFileError(f"cannot import {path}: it is a directory")
    if path.exists() and not path.is_file():
        raise ImportFileError(f"cannot import {path}: it is not a regular file")
    if not path.is_file():
        raise ImportFileError(f"cannot import {path}: no such file")
    try:
        with fewer_collections():
            if zipfile.is_zipfile(path):
                records = list(_zip_records(path))
            else:
                records = _json_records(path, path.read_bytes())
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except zipfile.BadZipFile as exc:
        raise ImportFileError(f"cannot import {path}: damaged zip file ({exc})") from None
    if not records:
        raise ImportFileError(f"{path} holds no study records")
    for index, (record, _) in enumerate(records, start=1):
        try:
            check_study_record(record)
        except RecordError as exc:
            raise ImportFileError(f"{path}: item {index}: {exc}; expected {KINDS}") from None
    return records


def _zip_records(path: Path) -> Iterator[tuple[dict, bytes]]:
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            if name.endswith("/"):
                continue
            if not name.lower().endswith(".json"):
                raise ImportFileError(f"{path}: member {name} is not a .json file; expected {KINDS}")
            yield from _json_records(Path(f"{path}:{name}"), archive.read(name))


def _json_records(path: Path, data: bytes) -> list[tuple[dict, bytes]]:
    data = data.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark some editors write first
    try:
        parsed = jsontext.loads(data)
    except orjson.JSONDecodeError:
        return _json_lines(path, data)
    if isinstance(parsed, list):
        return _with_bytes(parsed, b'{"studies":' + data + b"}")
    if isinstance(parsed, dict) and isinstance(parsed.get("studies"), list):
        return _with_bytes(parsed["studies"], data)
    if isinstance(parsed, dict) and "protocolSection" in parsed:
        return [(parsed, data.strip())]
    raise ImportFileError(f"{path} is JSON but not study records; expected {KINDS}")


def _with_bytes(records: list, body: bytes) -> list[tuple[dict, bytes]]:
    """Each record with its own bytes cut out of ``body`` (a ``{"studies": [...]}`` page), or re-serialised
    when the body does not cut cleanly."""
    split = split_page(body)
    if split is not None and len(split[1]) == len(records):
        return list(zip(records, split[1]))
    return [(record, serialize(record) if isinstance(record, dict) else b"") for record in records]


def _json_lines(path: Path, data: bytes) -> list[tuple[dict, bytes]]:
    records = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((jsontext.loads(line), line.strip()))
        except orjson.JSONDecodeError:
            raise ImportFileError(f"{path} is not valid JSON (line {number}); expected {KINDS}") from None
    return records


def flatten_records(records: list, source: str) -> list[StudyRows]:
    """Each record (a dict, or a ``(dict, bytes it was read from)`` pair) as rows; the newest copy of a study
    listed twice; ImportFileError naming a bad record."""
    newest: dict[str, StudyRows] = {}
    pairs = [(item, None) if isinstance(item, dict) else item for item in records]
    for index, (record, raw) in enumerate(pairs, start=1):
        try:
            rows = study_rows(record, raw)
        except RecordError as exc:
            raise ImportFileError(f"{source}: item {index}: {exc}") from None
        kept = newest.get(rows.nct_id)
        if kept is None or not is_earlier_state(rows.value("last_update_posted"), rows.value("version_holder"),
                                                kept.value("last_update_posted"), kept.value("version_holder")):
            newest[rows.nct_id] = rows
    return list(newest.values())


@dataclass
class ImportResult:
    """What an import did."""

    topic: str
    pull_id: int
    counts: SaveCounts


def import_records(conn: sqlite3.Connection, records: list, topic_name: str, source: str,
                   stop: threading.Event | None = None) -> ImportResult:
    """Save ``records`` (dicts, or ``(dict, bytes)`` pairs as ``read_records`` gives them) into the store as
    members of ``topic_name``: all or nothing, recorded as an import.

    An unknown topic is created without search parameters (it holds imported studies only), or with the
    built-in search of that name. A stop request rolls the whole import back and raises Interrupted.
    """
    with fewer_collections():
        flattened = flatten_records(records, source)
    state = topics.topic_state(conn, topic_name)
    if state is None:
        topics.save_topic(conn, BUILTIN_TOPICS.get(topic_name) or Topic(topic_name, {}))
        state = topics.topic_state(conn, topic_name)
    counts = SaveCounts()
    with pulls.recorded_pull(conn, topic_name, kind="import", mode="file", source=source) as pull_id:
        context = SaveContext(topic_name, pull_id, FILE, state.filled, utc_today(), latest=f"today ({utc_today()})")
        with store_db.transaction(conn), fewer_collections():
            for start in range(0, len(flattened), BATCH):
                if stop is not None and stop.is_set():
                    raise Interrupted(f"import of {source} interrupted; nothing was imported")
                counts.add(save_counted(conn, flattened[start:start + BATCH], context))
        with store_db.transaction(conn):
            history.note_results_due(conn, pull_id, utc_today())
            if not state.filled:
                topics.mark_filled(conn, topic_name, history.last_change_id(conn))
            pulls.finish_pull(conn, pull_id, "complete")
    return ImportResult(topic_name, pull_id, counts)
