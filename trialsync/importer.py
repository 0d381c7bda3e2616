"""Read study records from files a person already has, and load them into the store under a topic."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from . import store
from .errors import ImportFileError, TrialsyncError
from .topics import BUILTIN_TOPICS, Topic
from .transform import NotAStudyRecord, check_study_record

if TYPE_CHECKING:
    from sqlite_utils import Database

BATCH = 1000

KINDS = "a ctg-studies.json array, a ctg-studies.json.zip, a saved /studies page, JSON lines or one study record"


def read_records(path: str | Path) -> list[dict]:
    """Every study record in ``path``; raises ImportFileError naming the first thing that is not one."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"cannot import {path}: no such file")
    try:
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
    for index, record in enumerate(records, start=1):
        try:
            check_study_record(record)
        except NotAStudyRecord as exc:
            raise ImportFileError(f"{path}: item {index}: {exc}; expected {KINDS}") from None
    return records


def _zip_records(path: Path) -> Iterator[dict]:
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            if name.endswith("/"):
                continue
            if not name.lower().endswith(".json"):
                raise ImportFileError(f"{path}: member {name} is not a .json file; expected {KINDS}")
            yield from _json_records(Path(f"{path}:{name}"), archive.read(name))


def _json_records(path: Path, data: bytes) -> list[dict]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _json_lines(path, data)
    if isinstance(parsed, list):
        return parsed
    if isinstance(parsed, dict) and isinstance(parsed.get("studies"), list):
        return parsed["studies"]
    if isinstance(parsed, dict) and "protocolSection" in parsed:
        return [parsed]
    raise ImportFileError(f"{path} is JSON but not study records; expected {KINDS}")


def _json_lines(path: Path, data: bytes) -> list[dict]:
    records = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            raise ImportFileError(f"{path} is not valid JSON (line {number}); expected {KINDS}") from None
    return records


def import_records(db: Database, records: list[dict], topic_name: str, source: str) -> store.SaveCounts:
    """Save ``records`` into the store as members of ``topic_name``, all or nothing, recorded as an import.

    An unknown topic is created without search parameters: it holds imported studies only.
    """
    if store.get_stored_topic(db, topic_name) is None:
        store.save_topic(db, BUILTIN_TOPICS.get(topic_name) or Topic(topic_name, {}))
    record_new = store.last_complete_pull(db, topic_name, kinds=("pull", "import")) is not None
    pull_id = store.start_pull(db, topic_name, kind="import", mode="file", source=source)
    counts = store.SaveCounts()
    try:
        with db.atomic():
            for start in range(0, len(records), BATCH):
                counts.add(store.save_studies(db, records[start:start + BATCH], topic_name, pull_id, record_new))
    except (TrialsyncError, KeyboardInterrupt) as exc:
        store.finish_pull(db, pull_id, "failed", error=str(exc) or type(exc).__name__)
        raise
    store.finish_pull(db, pull_id, "complete", watermark=store.topic_watermark(db, topic_name))
    return counts
