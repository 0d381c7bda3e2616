"""One pull of a topic: sync state -> API -> transform -> store, page by page. Progress goes to a callback."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from . import store
from .api import ApiClient, Page, parse_study
from .errors import ApiError, PullInterrupted, TrialsyncError
from .topics import Topic
from .transform import NotAStudyRecord, StudyRows, study_rows

if TYPE_CHECKING:
    from sqlite_utils import Database

IDS_PER_REQUEST = 200  # studies fetched by filter.ids in one request; keeps the URL short

# progress(stage, received, total): stage is "studies", "listing" or "missing"
Progress = Callable[[str, int, "int | None"], None]


@dataclass
class PullOptions:
    """How to pull: ``full`` ignores the watermark; membership is checked every ``list_every`` pulls."""

    full: bool = False
    page_size: int = 1000
    list_every: int = 1


@dataclass
class PullResult:
    """What one pull did."""

    topic: str
    pull_id: int
    outcome: str  # complete | unchanged
    mode: str  # full | incremental | skipped
    requests: int
    counts: store.SaveCounts = field(default_factory=store.SaveCounts)
    left: int = 0
    data_timestamp: str | None = None
    total_count: int | None = None
    membership_checked: bool = False


def _no_progress(stage: str, received: int, total: int | None) -> None:
    pass


def changed_since_filter(watermark: str, own_filter: str | None) -> str:
    """The ``filter.advanced`` of an incremental pull: updated on or after the day before ``watermark``."""
    since = (date.fromisoformat(watermark[:10]) - timedelta(days=1)).isoformat()
    changed = f"AREA[LastUpdatePostDate]RANGE[{since},MAX]"
    return f"({own_filter}) AND {changed}" if own_filter else changed


def fetch_data_timestamp(client: ApiClient) -> tuple[str | None, str | None]:
    """``(dataTimestamp, apiVersion)`` from ``/version``; ``(None, None)`` when the API has no such endpoint."""
    try:
        version = client.version()
    except ApiError as exc:
        if exc.status == 404:
            return None, None
        raise
    return version.get("dataTimestamp"), version.get("apiVersion")


def _membership_due(db: Database, topic: str, every: int) -> bool:
    recent = db.execute(
        "SELECT membership_checked FROM pulls WHERE topic = ? AND kind = 'pull' AND outcome = 'complete' "
        "ORDER BY id DESC LIMIT ?", [topic, max(every - 1, 0)]).fetchall()
    return every <= 1 or not any(checked for (checked,) in recent)


def pull_topic(
    db: Database,
    client: ApiClient,
    topic: Topic,
    options: PullOptions | None = None,
    progress: Progress = _no_progress,
    stop_requested: Callable[[], bool] = lambda: False,
) -> PullResult:
    """Bring the store up to date with what the API returns for ``topic``, and record the pull.

    Asks ``/version`` first and stops there if the data has not moved since the last complete pull.
    After a first complete pull, asks only for studies updated since its watermark, then compares the
    topic's full id list to find studies that left it. Raises TrialsyncError (the pull is recorded
    as failed) or PullInterrupted (recorded as interrupted, at a page boundary).
    """
    options = options or PullOptions()
    params = topic.search_params()
    if not params:
        raise TrialsyncError(f"topic {topic.name!r} has no search parameters; it only holds imported studies")
    requests_before = client.requests_made
    pull_id = store.start_pull(db, topic.name)
    result = PullResult(topic.name, pull_id, "complete", "full", 0)

    def requests_made() -> int:
        return client.requests_made - requests_before

    reader = None
    try:
        previous = store.last_complete_pull(db, topic.name)
        result.data_timestamp, api_version = fetch_data_timestamp(client)
        store.update_pull(db, pull_id, data_timestamp=result.data_timestamp, api_version=api_version)
        if (previous and not options.full and result.data_timestamp
                and previous["data_timestamp"] == result.data_timestamp):
            result.outcome, result.mode, result.requests = "unchanged", "skipped", requests_made()
            store.finish_pull(db, pull_id, "unchanged", mode="skipped", requests=result.requests,
                              watermark=previous["watermark"], total_count=previous["total_count"])
            return result

        incremental = bool(previous and previous["watermark"] and not options.full)
        result.mode = "incremental" if incremental else "full"
        store.update_pull(db, pull_id, mode=result.mode)
        if incremental:
            params["filter.advanced"] = changed_since_filter(previous["watermark"], params.get("filter.advanced"))
        record_new = previous is not None or store.last_complete_pull(db, topic.name, kinds=("import",)) is not None
        present_before = store.present_ids(db, topic.name)
        reader = store.open_reader(db)
        check_membership = not incremental or _membership_due(db, topic.name, options.list_every)

        received: set[str] = set()
        newest_update = previous["watermark"] if incremental else None

        def note_received(rows: list[StudyRows], same: list[str]) -> None:
            nonlocal newest_update
            received.update(study.nct_id for study in rows)
            received.update(same)  # unchanged records: their dates are already behind the watermark
            newest_update = max([newest_update or "", *(study.value("last_update_posted") or "" for study in rows)]) or None

        def page_written(counts: store.SaveCounts) -> None:
            result.counts.add(counts)
            progress("studies", result.counts.received, result.total_count)
            if stop_requested():
                raise PullInterrupted(
                    f"interrupted after {result.counts.received} studies; run `trialsync pull {topic.name}` to finish")

        with _PageWriter() as writer:
            for page in client.iter_pages(params, options.page_size):
                if page.total_count is not None and result.total_count is None:
                    # Only the first page carries a total, and nothing is being written yet.
                    result.total_count = page.total_count
                    store.update_pull(db, pull_id, total_count=page.total_count)
                rows, same = _prepare(page, reader)
                del page
                note_received(rows, same)
                writer.wait_then(page_written)  # the previous page; stopping here drops this one unwritten
                writer.start(store.save_rows, db, rows, topic.name, pull_id, record_new, same)
                del rows
            if check_membership:  # a full pull's studies are the listing; else list while the last page is written
                listed = _list_ids(client, topic, progress, stop_requested) if incremental else received
                result.membership_checked = True
            writer.wait_then(page_written)

        if incremental and result.membership_checked:
            missing = sorted(listed - present_before - received)
            if missing:
                result.counts.add(_fetch_missing(db, client, topic.name, pull_id, missing, record_new, progress,
                                                 note_received))
        if result.membership_checked:
            result.left = store.mark_left(db, topic.name, (present_before | received) - listed, pull_id)

        result.requests = requests_made()
        store.finish_pull(db, pull_id, "complete", requests=result.requests, watermark=newest_update,
                          membership_checked=int(result.membership_checked))
        if result.total_count is None and not incremental:
            result.total_count = result.counts.received
        return result
    except PullInterrupted as exc:
        store.finish_pull(db, pull_id, "interrupted", error=str(exc), requests=requests_made())
        raise
    except TrialsyncError as exc:
        store.finish_pull(db, pull_id, "failed", error=str(exc), requests=requests_made())
        raise
    except KeyboardInterrupt:
        store.finish_pull(db, pull_id, "interrupted", error="stopped by a second Ctrl-C", requests=requests_made())
        raise
    finally:
        if reader is not None:
            reader.close()


class _PageWriter:
    """Writes one page in a background thread while the next is fetched and parsed; one page at most.

    SQLite does its work with the GIL released, so writing overlaps with parsing. The caller touches the
    database only after ``wait_then``, and leaving the block waits for the write under way.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trialsync-writer")
        self._pending: Future | None = None

    def start(self, save: Callable[..., store.SaveCounts], *args) -> None:
        self._pending = self._pool.submit(save, *args)

    def wait_then(self, page_written: Callable[[store.SaveCounts], None]) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            page_written(pending.result())

    def __enter__(self) -> "_PageWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._pending is not None:
            wait([self._pending])  # the page being written commits or rolls back before anything else
            if exc_type is None:
                self._pending.result()
        self._pool.shutdown(wait=True)


_NCT_ID_IN_RAW = re.compile(rb'"nctId"\s*:\s*"([^"]+)"')


def _prepare(page: Page, reader: sqlite3.Connection | None) -> tuple[list[StudyRows], list[str]]:
    """Parse and flatten a page's studies one at a time, keeping each one's bytes as sent.

    Studies whose bytes equal the stored ones are not parsed at all (a re-pull of unchanged data, the
    day of overlap of an incremental pull): their ids come back in the second list.
    """
    guessed = [match.group(1).decode() if (match := _NCT_ID_IN_RAW.search(raw)) else None for raw in page.raw_studies]
    stored = store.stored_raw(reader, [i for i in guessed if i]) if reader is not None else {}
    rows, same = [], []
    try:
        for raw, nct_id in zip(page.raw_studies, guessed):
            if nct_id and stored.get(nct_id) == raw:  # equal bytes: the very record stored
                same.append(nct_id)
            else:
                rows.append(study_rows(parse_study(raw), raw))
    except NotAStudyRecord as exc:
        raise ApiError(f"the API sent something that is not a study record: {exc}") from None
    return rows, same


def _list_ids(client: ApiClient, topic: Topic, progress: Progress, stop_requested: Callable[[], bool]) -> set[str]:
    listed: set[str] = set()
    for ids in client.iter_ids(topic.search_params()):
        if not all(ids):
            raise ApiError("the API's id listing holds a study without an NCT id")
        listed.update(ids)
        progress("listing", len(listed), None)
        if stop_requested():
            raise PullInterrupted(f"interrupted while listing {topic.name}'s studies; nothing was marked as left")
    return listed


def _fetch_missing(db: Database, client: ApiClient, topic: str, pull_id: int, missing: list[str],
                   record_new: bool, progress: Progress, note_received: Callable) -> store.SaveCounts:
    """Fetch studies the listing shows in the topic but the store lacks or holds as having left."""
    counts = store.SaveCounts()
    for start in range(0, len(missing), IDS_PER_REQUEST):
        batch = missing[start:start + IDS_PER_REQUEST]
        for page in client.iter_pages({"filter.ids": ",".join(batch)}, page_size=len(batch)):
            rows, same = _prepare(page, None)
            note_received(rows, same)
            counts.add(store.save_rows(db, rows, topic, pull_id, record_new, same))
            progress("missing", counts.received, len(missing))
    return counts
