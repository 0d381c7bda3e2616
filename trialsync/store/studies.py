"""Saving studies: a pure "what changed" diff of each incoming record against the stored one, then the
writes of a whole page in one transaction, so that a pull killed at any moment leaves the database as
it was before that page or after it, never in between."""

from __future__ import annotations

import re
import sqlite3
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson

from .. import dates, jsontext
from ..dates import iso_day, watermark_date
from ..ids import NctIdSet
from ..results_rule import is_due
from ..transform import CHILD_COLUMNS, RESULT_COLUMNS, STUDY_COLUMNS, TRACKED_FIELDS, StudyRows, site_points
from . import history, membership
from .db import select_in, transaction
from .migrations import forget_search_text, index_search_text
from ..change_kinds import (
    ADDED, LEFT, MEMBERSHIP, PRESENT, REFERENCE_ADDED, SITE_ADDED, SITE_REMOVED, SITE_STATUS, WARNING,
)

API, FILE = "api", "file"  # where a record came from: the API is the truth; a file never makes the store older
NEW, SAME, REFRESHED, CHANGED, OLDER = "new", "same", "refreshed", "changed", "older"


@dataclass(frozen=True)
class StoredStudy:
    """What the diff needs of a stored study."""

    raw: bytes
    last_update_posted: str | None
    version_holder: str | None
    tracked: tuple  # the values of TRACKED_FIELDS
    rowid: int | None = None  # its row's key in ``studies`` (the full-text index and ``site_points`` use it)


@dataclass(frozen=True)
class StudyDiff:
    """The verdict on one incoming record: new, same, refreshed (only ``versionHolder`` or formatting
    moved), changed (with its tracked field changes), or older (a file's record behind the stored one)."""

    verdict: str
    changes: tuple[tuple[str, object, object], ...] = ()


# versionHolder is the date of the registry's data release: it moves for every study at each refresh, so two
# records that differ only there describe the same study state.
_VERSION_HOLDER = re.compile(rb'"versionHolder"\s*:\s*"[^"]*"')


def same_content(stored_raw: bytes, new_raw: bytes) -> bool:
    """Whether two records hold the same data, ``versionHolder`` and JSON formatting aside."""
    if _VERSION_HOLDER.sub(b"", stored_raw) == _VERSION_HOLDER.sub(b"", new_raw):
        return True
    return _without_version_holder(jsontext.loads(stored_raw)) == _without_version_holder(jsontext.loads(new_raw))


def _without_version_holder(record: dict) -> dict:
    misc = (record.get("derivedSection") or {}).get("miscInfoModule")
    if isinstance(misc, dict) and "versionHolder" in misc:
        record["derivedSection"]["miscInfoModule"] = {k: v for k, v in misc.items() if k != "versionHolder"}
    return record


def is_earlier_state(new_updated, new_release, old_updated, old_release) -> bool:
    """Whether a record last updated ``new_updated`` in data release ``new_release`` is an earlier state of
    its study than one of ``old_updated`` and ``old_release``. Dates that are not dates decide nothing."""
    new_day, old_day = iso_day(new_updated), iso_day(old_updated)
    if new_day and old_day and new_day != old_day:
        return new_day < old_day
    new_release, old_release = iso_day(new_release), iso_day(old_release)
    return bool(new_release and old_release and new_release < old_release)


def is_older(incoming: StudyRows, stored: StoredStudy) -> bool:
    """Whether ``incoming`` is an earlier state of the study than ``stored`` (see ``is_earlier_state``)."""
    return is_earlier_state(incoming.value("last_update_posted"), incoming.value("version_holder"),
                            stored.last_update_posted, stored.version_holder)


def diff_study(stored: StoredStudy | None, incoming: StudyRows, source: str) -> StudyDiff:
    """What saving ``incoming`` over ``stored`` would change. Pure: reads and writes nothing."""
    if stored is None:
        return StudyDiff(NEW)
    new_raw = incoming.value("raw")
    if stored.raw == new_raw:
        return StudyDiff(SAME)
    if same_content(stored.raw, new_raw):
        # From the API the bytes are stored as sent; a file's copy of the same data changes nothing.
        return StudyDiff(REFRESHED if source == API else SAME)
    if source == FILE and is_older(incoming, stored):
        return StudyDiff(OLDER)
    changes = tuple((name, old, incoming.value(name)) for name, old in zip(TRACKED_FIELDS, stored.tracked)
                    if old != incoming.value(name))
    return StudyDiff(CHANGED, changes)


def site_label(location: tuple) -> str:
    """How a site is named in the change log: 'Facility, City, State, Country', leaving out what is missing."""
    facility, city, state, country = location[:4]
    return ", ".join(part for part in (facility, city, state, country) if part) or "unnamed site"


def diff_sites(old: Sequence[tuple], new: Sequence[tuple]) -> list[tuple[str, str, object, object]]:
    """Sites added, removed, or changing recruitment status between two lists of location rows (facility,
    city, state, country, status, ...), as ``(field, site, old status, new status)``. Pure."""
    before = {tuple(row[:4]): row[4] for row in reversed(old)}  # a site listed twice: its first entry counts
    after = {tuple(row[:4]): row[4] for row in reversed(new)}
    changes = [(SITE_ADDED, site_label(key), None, after[key]) for key in after if key not in before]
    changes += [(SITE_REMOVED, site_label(key), before[key], None) for key in before if key not in after]
    changes += [(SITE_STATUS, site_label(key), before[key], after[key]) for key in after
                if key in before and before[key] != after[key]]
    return changes


def diff_references(old: Sequence[tuple], new: Sequence[tuple]) -> list[tuple[str, str, object, object]]:
    """Publications (references with a PubMed id) added between two lists of reference rows (pmid, type), as
    ``(field, PubMed id, None, type)``. Pure."""
    before = {row[0] for row in old if row[0]}
    added = {}
    for pmid, kind in new:
        if pmid and pmid not in before and pmid not in added:
            added[pmid] = kind
    return [(REFERENCE_ADDED, pmid, None, kind) for pmid, kind in added.items()]


def date_warning(last_update_posted, ceiling: str, latest: str | None = None) -> str | None:
    """Why a study's last update posted date cannot move a watermark, or None if it can (or is absent).
    ``latest`` says in words the day the date is later than (default: ``ceiling``)."""
    if last_update_posted is None or watermark_date(last_update_posted, ceiling):
        return None
    if iso_day(last_update_posted) is None:
        return f"last update posted {last_update_posted!r} is not a YYYY-MM-DD date; it does not move the watermark"
    return f"last update posted {last_update_posted} is after {latest or ceiling}; it does not move the watermark"


@dataclass
class SaveCounts:
    """What saving some studies did, by study."""

    received: int = 0
    new: int = 0  # new to the topic
    updated: int = 0
    unchanged: int = 0
    rejoined: int = 0
    older: int = 0  # of those received, a file's record older than the stored one: skipped (counted besides)
    # The out-of-range warnings (StudyRows.warnings) of the studies whose rows were written: said once per
    # time a study is stored, never for a record received unchanged.
    warnings: list[str] = field(default_factory=list, compare=False)

    def add(self, other: "SaveCounts") -> None:
        """Add ``other``'s counts (and warnings) to these."""
        for name in ("received", "new", "updated", "unchanged", "rejoined", "older"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.warnings += other.warnings


@dataclass(frozen=True)
class SaveContext:
    """How a batch of studies joins its topic: from the API or a file; whether joining is news (false while a
    topic is first filled); the reason membership events carry; the last day a real update can carry."""

    topic: str
    pull_id: int
    source: str
    log_membership: bool
    ceiling: str
    reason: str | None = None
    # The day a later date is after, in words, for warnings ("the API's data date 2026-11-25").
    latest: str | None = None
    # Studies this pull has counted already: a listing asked for again sends them again, and each study
    # counts once in what a pull received.
    counted: NctIdSet = field(default_factory=NctIdSet, compare=False)
    # False for records fetched only to learn why they left the topic: their membership is the listing's to
    # settle, and they are not counted as received.
    membership: bool = True


@dataclass
class _Writes:
    studies: list[tuple] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # studies whose child rows go first
    old_points: list[tuple] = field(default_factory=list)  # (cell, study rowid) of the replaced studies' sites
    children: list[StudyRows] = field(default_factory=list)
    refreshed: list[tuple] = field(default_factory=list)
    versions: list[tuple] = field(default_factory=list)
    changes: list[tuple] = field(default_factory=list)
    joined: list[tuple] = field(default_factory=list)
    rejoined: list[tuple] = field(default_factory=list)
    seen_by_api: list[tuple] = field(default_factory=list)
    due_already: list[tuple] = field(default_factory=list)  # (nct_id, due date) of new studies whose results are due
    fetched: list[tuple] = field(default_factory=list)  # (nct_id, when) of each study received from the API


# raw arrives as the UTF-8 bytes the API sent; SQLite turns them into TEXT without a copy through Python.
_INSERT_STUDY = (f"INSERT INTO studies ({', '.join(STUDY_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * (len(STUDY_COLUMNS) - 1))}, CAST(? AS TEXT))")
# Every table of a study's lists: its record's lists (``children``) and its results (``results``).
_LIST_TABLES = {**CHILD_COLUMNS, **RESULT_COLUMNS}
_INSERT_CHILD = {
    table: f"INSERT INTO {table} (nct_id, seq, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 2))})"
    for table, cols in _LIST_TABLES.items()
}
_DELETE_CHILD = {table: f"DELETE FROM {table} WHERE nct_id = ?" for table in _LIST_TABLES}
_STORED_SELECT = ("SELECT nct_id, rowid, CAST(raw AS BLOB), last_update_posted, version_holder, "
                  f"{', '.join(TRACKED_FIELDS)} FROM studies WHERE nct_id IN ({{marks}})")


def stored_studies(conn: sqlite3.Connection, nct_ids: Sequence[str]) -> dict[str, StoredStudy]:
    """The stored state of those of ``nct_ids`` the store holds."""
    return {row[0]: StoredStudy(row[2], row[3], row[4], tuple(row[5:]), row[1])
            for row in select_in(conn, _STORED_SELECT, nct_ids)}


def stored_raw_and_date(conn: sqlite3.Connection, nct_ids: Sequence[str]) -> dict[str, tuple[bytes, str | None]]:
    """The stored raw JSON bytes and last update posted date of those of ``nct_ids`` the store holds."""
    rows = select_in(conn, "SELECT nct_id, CAST(raw AS BLOB), last_update_posted FROM studies "
                           "WHERE nct_id IN ({marks})", nct_ids)
    return {nct_id: (raw, updated) for nct_id, raw, updated in rows}


def save_studies(conn: sqlite3.Connection, incoming: Sequence[StudyRows], context: SaveContext,
                 same_ids: Sequence[str] = ()) -> SaveCounts:
    """Save studies into ``context.topic`` in one transaction, and count what that changed.

    A record identical to the stored one writes nothing. A changed one keeps the replaced record in
    ``versions`` and logs its tracked fields in ``changes``. A study new to the topic, or back in it, is
    logged as a membership event when ``context.log_membership``. ``same_ids`` are studies received byte
    for byte as stored: only their membership is looked at. Saving the same records twice changes nothing.
    """
    incoming = list({study.nct_id: study for study in incoming}.values())  # a study twice: the later copy wins
    ids = [study.nct_id for study in incoming]
    in_incoming = set(ids)
    same_ids = list(dict.fromkeys(nct_id for nct_id in same_ids if nct_id not in in_incoming))
    stored = stored_studies(conn, ids)
    members = membership.member_states(conn, context.topic, ids + same_ids)
    now = dates.utc_now()
    writes = _Writes()
    diffs = {study.nct_id: diff_study(stored.get(study.nct_id), study, context.source) for study in incoming}
    changed = [nct_id for nct_id, diff in diffs.items() if diff.verdict == CHANGED]
    old_children = {table: _rows_by_study(conn, table, changed) for table in ("locations", "study_references")}
    outcomes = {}
    for study in incoming:
        _plan_study(study, stored.get(study.nct_id), diffs[study.nct_id], old_children, context, now, writes)
        if context.membership:
            outcomes[study.nct_id] = _plan_membership(study.nct_id, members.get(study.nct_id),
                                                      diffs[study.nct_id].verdict, context, now, writes)
    for nct_id in same_ids if context.membership else ():
        outcomes[nct_id] = _plan_membership(nct_id, members.get(nct_id), SAME, context, now, writes)
    if context.source == API:
        # The API is the truth whatever its record's dates say (only a file's copy can be OLDER).
        writes.fetched = [(nct_id, now) for nct_id in [*ids, *same_ids]]
    del stored
    counts = SaveCounts()
    for nct_id, outcome in outcomes.items():
        if nct_id not in context.counted:
            counts.received += 1
            setattr(counts, outcome, getattr(counts, outcome) + 1)
            counts.older += nct_id in diffs and diffs[nct_id].verdict == OLDER
    context.counted.update(outcomes)
    counts.warnings = [line for study in writes.children for line in study.warnings]
    with transaction(conn):
        _write(conn, writes)
    return counts


def _rows_by_study(conn: sqlite3.Connection, table: str, nct_ids: Sequence[str]) -> dict[str, list[tuple]]:
    columns = ", ".join(CHILD_COLUMNS[table])
    rows: dict[str, list[tuple]] = {}
    for nct_id, *values in select_in(conn, f"SELECT nct_id, {columns} FROM {table} WHERE nct_id IN ({{marks}}) "
                                           "ORDER BY nct_id, seq", nct_ids):
        rows.setdefault(nct_id, []).append(tuple(values))
    return rows


def _plan_study(study: StudyRows, stored: StoredStudy | None, diff: StudyDiff, old_children: dict[str, dict],
                context: SaveContext, now: str, writes: _Writes) -> None:
    nct_id = study.nct_id
    if diff.verdict == REFRESHED:
        writes.refreshed.append((study.value("raw"), study.value("version_holder"), nct_id))
    elif diff.verdict in (NEW, CHANGED):
        writes.studies.append(study.study)
        writes.children.append(study)
        due_date = study.value("results_due_date")
        if diff.verdict == NEW and is_due(study.value("results_state"), due_date, now[:10]):
            writes.due_already.append((nct_id, due_date))
        if diff.verdict == CHANGED:
            writes.replaced.append(nct_id)
            old_sites = old_children["locations"].get(nct_id, [])
            writes.old_points += sorted({(cell, stored.rowid) for cell, _ in site_points(old_sites)})
            writes.versions.append((nct_id, context.pull_id, now, stored.last_update_posted, zlib.compress(stored.raw, 1)))
            item_changes = diff_sites(old_children["locations"].get(nct_id, []), study.children["locations"])
            item_changes += diff_references(old_children["study_references"].get(nct_id, []),
                                            study.children["study_references"])
            writes.changes += [(context.pull_id, None, nct_id, name, old, new, now, None, None)
                               for name, old, new in diff.changes]
            writes.changes += [(context.pull_id, None, nct_id, name, old, new, now, None, item)
                               for name, item, old, new in item_changes]
        updated = study.value("last_update_posted")
        warning = date_warning(updated, context.ceiling, context.latest)
        if warning and (stored is None or stored.last_update_posted != updated):
            writes.changes.append((context.pull_id, None, nct_id, WARNING, None, warning, now, None, None))


def _plan_membership(nct_id: str, member: tuple[int, int] | None, verdict: str, context: SaveContext, now: str,
                     writes: _Writes) -> str:
    """Plan a received study's membership writes; return what it counts as (a SaveCounts field)."""
    api_seen = int(context.source == API)
    if member is None:
        writes.joined.append((context.topic, nct_id, context.pull_id, api_seen))
        if context.log_membership:
            writes.changes.append((context.pull_id, context.topic, nct_id, MEMBERSHIP, None, ADDED, now, context.reason,
                                   None))
        return "new"
    present, seen = member
    if not present:
        writes.rejoined.append((api_seen, context.topic, nct_id))
        writes.changes.append((context.pull_id, context.topic, nct_id, MEMBERSHIP, LEFT, PRESENT, now, context.reason,
                               None))
        return "rejoined"
    if api_seen and not seen:
        writes.seen_by_api.append((context.topic, nct_id))
    return "updated" if verdict == CHANGED else "unchanged"


def _write(conn: sqlite3.Connection, writes: _Writes) -> None:
    if writes.studies:
        _replace_studies(conn, writes)
    if writes.refreshed:  # no indexed text moves: the triggers see that and leave the index alone
        conn.executemany("UPDATE studies SET raw = CAST(? AS TEXT), version_holder = ? WHERE nct_id = ?", writes.refreshed)
    if writes.versions:
        history.insert_versions(conn, writes.versions)
    membership.write_joins(conn, writes.joined, writes.rejoined, writes.seen_by_api)
    if writes.changes:
        history.insert_changes(conn, writes.changes)
    if writes.due_already:
        history.note_due_quietly(conn, writes.due_already)
    if writes.fetched:
        conn.executemany("INSERT OR REPLACE INTO study_fetches (nct_id, fetched_at) VALUES (?, ?)", writes.fetched)


def _replace_studies(conn: sqlite3.Connection, writes: _Writes) -> None:
    # The full-text triggers stand aside inside this transaction (migration 10), and the page's studies are
    # indexed in two statements: the replaced ones forgotten while their old row and lists are there, and every
    # saved one indexed once its new row and lists are in, each from the view the index mirrors.
    conn.execute("INSERT INTO search_index_deferred (deferred) VALUES (1)")
    if writes.replaced:
        replaced = orjson.dumps(writes.replaced).decode()
        conn.execute(forget_search_text("nct_id IN (SELECT value FROM json_each(?))"), [replaced])
        conn.execute("DELETE FROM studies WHERE nct_id IN (SELECT value FROM json_each(?))", [replaced])
    if writes.old_points:
        conn.executemany("DELETE FROM site_points WHERE cell = ? AND study = ?", writes.old_points)
    for table in _LIST_TABLES:
        if writes.replaced:
            conn.executemany(_DELETE_CHILD[table], [(nct_id,) for nct_id in writes.replaced])
        conn.executemany(_INSERT_CHILD[table], [
            (study.nct_id, seq, *child) for study in writes.children
            for seq, child in enumerate(study.children[table] if table in CHILD_COLUMNS else study.results[table])])
    conn.executemany(_INSERT_STUDY, writes.studies)
    # A replaced study's row has a new rowid: site_points and the full-text index are keyed by the new one.
    rowids = dict(conn.execute("SELECT nct_id, rowid FROM studies WHERE nct_id IN (SELECT value FROM json_each(?))",
                               [orjson.dumps([study.nct_id for study in writes.children]).decode()]))
    conn.executemany("INSERT INTO site_points (cell, study, seq) VALUES (?, ?, ?)",
                     [(cell, rowids[study.nct_id], seq) for study in writes.children for cell, seq in study.site_points])
    conn.execute(index_search_text("rowid IN (SELECT value FROM json_each(?))"),
                 [orjson.dumps(list(rowids.values())).decode()])
    conn.execute("DELETE FROM search_index_deferred")


def search_index_set_aside(conn: sqlite3.Connection) -> bool:
    """Whether ``search_index_deferred`` holds a row outside a writer's transaction: the full-text triggers
    stand aside, so text written since may be missing from the index (only something other than trialsync
    leaves such a row: the writer deletes its own before it commits)."""
    return conn.execute("SELECT 1 FROM search_index_deferred LIMIT 1").fetchone() is not None


def heal_search_index(conn: sqlite3.Connection) -> bool:
    """When the full-text index was set aside (``search_index_set_aside``), clear that and rebuild the index
    whole from the view it mirrors, in one transaction. Returns whether it did."""
    if not search_index_set_aside(conn):
        return False
    with transaction(conn):
        conn.execute("DELETE FROM search_index_deferred")
        conn.execute("INSERT INTO studies_fts (studies_fts) VALUES ('rebuild')")
    return True


def stalest_members(conn: sqlite3.Connection, topic: str, fetched_before: str, limit: int,
                    skip: set[str] = frozenset()) -> list[str]:
    """Up to ``limit`` of the topic's present studies last received from the API before ``fetched_before`` (never,
    for one only imported or stored before fetch times were kept), those received longest ago first and by NCT
    id among equals; none of ``skip``."""
    if limit <= 0:
        return []
    never = [row[0] for row in conn.execute(
        "SELECT m.nct_id FROM topic_studies m WHERE m.topic = ? AND m.present = 1 "
        "AND NOT EXISTS (SELECT 1 FROM study_fetches f WHERE f.nct_id = m.nct_id) ORDER BY m.nct_id", [topic])
        if row[0] not in skip][:limit]
    if len(never) >= limit:
        return never
    found = list(never)
    cursor = conn.execute(
        "SELECT f.nct_id FROM study_fetches f INDEXED BY study_fetches_by_age WHERE f.fetched_at < ? AND EXISTS "
        "(SELECT 1 FROM topic_studies m WHERE m.topic = ? AND m.nct_id = f.nct_id AND m.present = 1) "
        "ORDER BY f.fetched_at, f.nct_id", [fetched_before, topic])
    for (nct_id,) in cursor:
        if nct_id not in skip:
            found.append(nct_id)
            if len(found) == limit:
                break
    return found
