"""One pull of a topic: plan (from the topic's sync state and the API's data timestamp), fetch (page by
page, each written in one transaction), reconcile (membership from a provably complete listing only).

Progress goes to a callback; a stop request ends the pull at a page boundary (or at once while waiting).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .. import dates
from ..api import DEFAULT_PAGE_SIZE, LISTING_FIELDS, ApiClient, ListingTally, Page, iter_pages, listed_study
from ..change_kinds import SEARCH_CHANGED
from ..dates import ceiling_day, day_after, day_before, iso_day, utc_today, watermark_date
from ..defaults import DEFAULT_LIST_EVERY, DEFAULT_REFRESH_DAYS
from ..errors import ApiError, IncompleteListing, Interrupted, TrialsyncError
from ..store import db as store_db
from ..store.db import select_in
from ..store import history, membership, pulls, topics
from ..ids import NctIdSet
from ..store.studies import API, SaveContext, SaveCounts, stalest_members, stored_raw_and_date
from ..store.topics import TopicState
from ..transform import StudyRows
from ..vocab import plural
from .collector import fewer_collections
from .drift import DriftWatch, watch_drift
from .prepare import Flattened, RecordWorker, flatten_records
from .saving import save_counted
from .listing import LISTING_ATTEMPTS, Progress, complete_listing, id_batches, list_statuses, search_batches


def _no_progress(stage: str, done: int, total: int | None) -> None:
    pass


@dataclass
class PullOptions:
    """How to pull: ``full`` ignores the watermark; a large topic is listed whole (ids and statuses) every
    ``list_every`` incremental pulls, its membership settled between them from the registry's changed list;
    studies not fetched for ``refresh_days`` days are fetched again, a share of the topic each pull (0: never)."""

    full: bool = False
    page_size: int = 1000
    list_every: int = DEFAULT_LIST_EVERY
    refresh_days: int = DEFAULT_REFRESH_DAYS


@dataclass
class PullResult:
    """What one pull did."""

    topic: str
    pull_id: int
    outcome: str  # complete | unchanged
    mode: str  # full | incremental | skipped
    requests: int = 0
    counts: SaveCounts = field(default_factory=SaveCounts)
    left: int = 0
    refetched: int = 0  # studies fetched by id: missing from the store, or listed with another status
    refreshed: int = 0  # studies fetched again by id because they were fetched longest ago (the rolling refresh)
    reconciled: str | None = None  # how membership was settled: RECONCILED_BY_* (None: it was not)
    data_timestamp: str | None = None
    total_count: int | None = None
    membership_checked: bool = False
    search_changed: bool = False
    first_fill: bool = False
    missing_ids: list[str] = field(default_factory=list)  # a watchlist's ids the API has no study for


# How a pull settled its topic's membership (``pulls.reconciled``): from the full pull's own studies, from a
# listing of the topic's ids and statuses, or from the registry's list of the studies changed since the
# watermark (a member that changed but is not in the topic's own changed-since answer has left).
RECONCILED_BY_FULL, RECONCILED_BY_LISTING, RECONCILED_BY_CHANGES = "full", "listing", "changed"


@dataclass(frozen=True)
class Plan:
    """What a pull will do, decided before any study is fetched."""

    mode: str  # skipped | full | incremental
    params: dict[str, str]  # the data query
    log_membership: bool  # joining and leaving are news (not while a topic is first filled from the API)
    check_membership: bool  # the topic is listed whole (a full pull's studies, or its ids and statuses)
    search_changed: bool


def changed_since_filter(watermark: str, own_filter: str | None) -> str:
    """The ``filter.advanced`` of an incremental pull: updated on or after the day before ``watermark``
    (the API's dates have day granularity, so a day of overlap, harmless to save twice)."""
    changed = f"AREA[LastUpdatePostDate]RANGE[{day_before(watermark)},MAX]"
    return f"({own_filter}) AND {changed}" if own_filter else changed


def plan_pull(state: TopicState, data_timestamp: str | None, options: PullOptions, unlisted_pulls: int) -> Plan:
    """Decide how to pull a topic. Pure.

    Skipped when the API's data has not moved since the topic's last complete pull under the same search;
    incremental when that pull left a valid watermark; otherwise full. A changed search is pulled in full,
    and its membership difference is news (summed up); a topic's first pull from the API is not.
    ``unlisted_pulls``: the topic's complete pulls since its membership was last checked.
    """
    search = state.topic.search_params()
    pulled_before = state.synced_params is not None
    changed = state.search_changed
    if (pulled_before and not changed and not options.full and data_timestamp
            and data_timestamp == state.data_timestamp):
        return Plan("skipped", search, True, False, False)
    if pulled_before and not changed and not options.full and iso_day(state.watermark):
        params = {**search, "filter.advanced": changed_since_filter(state.watermark, search.get("filter.advanced"))}
        check = options.list_every <= 1 or unlisted_pulls >= options.list_every - 1
        return Plan("incremental", params, True, check, False)
    return Plan("full", search, pulled_before, True, changed)


def fetch_data_timestamp(client: ApiClient) -> tuple[str | None, str | None]:
    """``(dataTimestamp, apiVersion)`` from ``/version``; ``(None, None)`` when the API has no such endpoint."""
    try:
        version = client.version()
    except ApiError as exc:
        if exc.status == 404:
            return None, None
        raise
    stamp, api_version = version.get("dataTimestamp"), version.get("apiVersion")
    return (stamp if isinstance(stamp, str) else None), (api_version if isinstance(api_version, str) else None)


def pull_topic(conn: sqlite3.Connection, client: ApiClient, name: str, options: PullOptions | None = None,
               progress: Progress = _no_progress, warn: Callable[[str], None] | None = None) -> PullResult:
    """Bring the store up to date with what the API returns for the stored topic ``name``, and record the pull.

    Never marks a study as having left the topic unless a provably complete listing lacks it. Raises
    TrialsyncError (the pull is recorded as failed, with the error) or Interrupted when ``client.stop`` is
    set (recorded as interrupted; whole pages only were written). ``warn`` hears, once each page that holds
    them is written, the line of each number out of range stored as empty (also in ``result.counts.warnings``),
    and each schema drift warning (``sync.drift``).
    """
    options = options or PullOptions()
    state = topics.topic_state(conn, name)
    if state is None:
        raise TrialsyncError(f"topic {name!r} is not stored")
    if not state.topic.search_params():
        raise TrialsyncError(f"topic {name!r} holds imported studies only: it has no search to pull "
                             "(give it one with `trialsync topics add NAME --replace --condition ...`)")
    requests_before = client.requests_made
    with pulls.recorded_pull(conn, name, extra=lambda: {"requests": client.requests_made - requests_before}) as pull_id:
        run = _PullRun(conn, client, state, options, progress, PullResult(name, pull_id, "complete", "full"), warn)
        try:
            with fewer_collections():
                return run.execute()
        except Interrupted:
            row = conn.execute("SELECT received FROM pulls WHERE id = ?", [pull_id]).fetchone()
            received = row[0] if row else run.result.counts.received
            raise Interrupted(f"interrupted after {plural(received, 'study', 'studies')}; "
                              f"run `trialsync pull {name}` to finish (nothing was marked as left)") from None
        finally:
            run.close()


class _PullRun:
    """The state of one pull while it runs."""

    def __init__(self, conn: sqlite3.Connection, client: ApiClient, state: TopicState, options: PullOptions,
                 progress: Progress, result: PullResult, warn: Callable[[str], None] | None = None):
        self.conn, self.client, self.state, self.options, self.progress = conn, client, state, options, progress
        self.result = result
        self.warn = warn or (lambda line: None)
        self.requests_before = client.requests_made
        self.reader: sqlite3.Connection | None = None
        self.received = NctIdSet()  # every study received so far, in flat memory
        self.newest_update: str | None = None
        self.ceiling = ""
        self.api_version: str | None = None
        self.drift: DriftWatch | None = None

    def close(self) -> None:
        """Close the second connection that reads stored records while pages are written, if one was opened."""
        if self.reader is not None:
            self.reader.close()

    def execute(self) -> PullResult:
        """Plan the pull from the API's data timestamp and the topic's state, fetch and store, settle membership
        only on a provably complete answer, then fetch again the studies fetched longest ago. Returns the
        result; raises on a failure."""
        plan = self.plan()
        if plan.mode == "skipped":
            return self._finish(plan, "unchanged")
        context = self._save_context(plan)
        received = self.fetch(plan, context)
        if plan.mode == "full":
            self.reconcile(received, context)
            self.result.reconciled = RECONCILED_BY_FULL
        else:
            self.settle_membership(plan, context, received)
            self.refresh(context)
        return self._finish(plan, "complete")

    def plan(self) -> Plan:
        """Ask the API for its data timestamp and decide what this pull fetches (``plan_pull``)."""
        conn, state, result = self.conn, self.state, self.result
        result.data_timestamp, self.api_version = fetch_data_timestamp(self.client)
        self.ceiling = ceiling_day(result.data_timestamp)
        pulls.update_pull(conn, result.pull_id, data_timestamp=result.data_timestamp, api_version=self.api_version)
        self.drift = watch_drift(conn, self.client, self.api_version, result.pull_id, self.warn)
        recent = pulls.pulls_since(conn, state.topic.name, state.epoch, max(self.options.list_every - 1, 1))
        unlisted = next((i for i, p in enumerate(recent) if p["membership_checked"]), len(recent))
        plan = plan_pull(state, result.data_timestamp, self.options, unlisted)
        result.mode, result.search_changed = plan.mode, plan.search_changed
        result.first_fill = state.synced_params is None
        if plan.mode != "skipped":
            pulls.update_pull(conn, result.pull_id, mode=plan.mode)
        return plan

    def _save_context(self, plan: Plan) -> SaveContext:
        # A date a day past the data's is no error if the registry refreshes while this pull runs; a watermark
        # still never moves past the data's own day.
        return SaveContext(self.state.topic.name, self.result.pull_id, API, plan.log_membership,
                           day_after(self.ceiling), SEARCH_CHANGED if plan.search_changed else None,
                           latest=f"the API's data date {self.ceiling}")

    def fetch(self, plan: Plan, context: SaveContext) -> set[str]:
        """Fetch and store what the plan asks for (the topic's studies, or those changed since the watermark).
        Returns the ids of the complete answer."""
        state, name = self.state, self.state.topic.name
        self.reader = store_db.open_reader(self.conn)
        if plan.mode == "incremental":
            self.newest_update = watermark_date(state.watermark, self.ceiling)
        what = "the changed-since query" if plan.mode == "incremental" else f"the search of topic {name}"
        answers = [complete_listing(self.client, what,
                                    lambda tally, params=params: self._fetch_studies(params, context, tally))[1].ids
                   for params in search_batches(plan.params)]
        for more in answers[1:]:  # a long watchlist's batches
            answers[0].update(more)
        return answers[0]

    def settle_membership(self, plan: Plan, context: SaveContext, changed_in_topic: NctIdSet) -> None:
        """After an incremental fetch: list the topic whole (ids and statuses, fetching by id what the store
        lacks or holds with another status) when the plan says it is due or when that costs no more requests
        than the registry's changed list; else settle membership from that list: a member that changed since
        the watermark but is not in the topic's own changed-since answer (``changed_in_topic``) has left."""
        search = self.state.topic.search_params()
        listing_cost = self._listing_cost(search)
        changed = None
        if not plan.check_membership and listing_cost > 1:
            changed = self._registry_changes(listing_cost)
        if changed is None:
            statuses = list_statuses(self.client, search, self.progress)
            refetch = self._to_refetch(statuses)
            if refetch:
                self._fetch_by_id(refetch, context)
            self.reconcile(set(statuses), context)
            self.result.reconciled = RECONCILED_BY_LISTING
            return
        if fetch_data_timestamp(self.client)[0] != self.result.data_timestamp:
            # the registry refreshed its data between the two answers: settle it from a listing instead
            self.client.on_wait("the registry refreshed its data during the pull; listing the topic")
            self.settle_membership(replace(plan, check_membership=True), context, changed_in_topic)
            return
        name = self.state.topic.name
        leaving = [nct_id for nct_id in membership.present_members(self.conn, name)
                   if nct_id in changed and nct_id not in changed_in_topic and nct_id not in self.received]
        self._fetch_leaving(leaving, context)
        self.result.left = membership.mark_left(self.conn, name, leaving, self.result.pull_id, context.reason)
        self.result.reconciled = RECONCILED_BY_CHANGES

    def _listing_cost(self, search: dict[str, str]) -> int:
        """How many requests a listing of the topic's ids and statuses would take, by its present members (a
        watchlist: one per batch of its ids)."""
        batches = search_batches(search)
        if len(batches) > 1 or "filter.ids" in search:
            return len(batches)
        members = membership.count_present(self.conn, self.state.topic.name)
        return max(1, -(-members // DEFAULT_PAGE_SIZE))

    def _registry_changes(self, listing_cost: int) -> NctIdSet | None:
        """The ids of every study of the registry changed since the watermark (``fields=NCTId|OverallStatus``, no
        topic query), provably complete; None, after its first page, when it would take as many requests as a
        listing of the topic (``listing_cost``), which settles more."""
        params = {"filter.advanced": changed_since_filter(self.state.watermark, None), "fields": LISTING_FIELDS}

        class TooCostly(Exception):
            pass

        def run(tally: ListingTally) -> NctIdSet:
            ids = NctIdSet()
            for page in iter_pages(self.client, params):
                if tally.pages == 0 and page.total_count is not None \
                        and -(-page.total_count // DEFAULT_PAGE_SIZE) >= listing_cost:
                    raise TooCostly
                listed = [listed_study(raw)[0] for raw in page.raw_studies]
                tally.add(page, listed)
                ids.update(listed)
                if self.client.stop.is_set():
                    raise Interrupted("stopped")
            return ids

        try:
            return complete_listing(self.client, "the registry's changed-since list", run)[0]
        except TooCostly:
            return None

    def refresh(self, context: SaveContext) -> None:
        """Fetch again by id the topic's studies not received for ``refresh_days`` days, those fetched longest ago
        first, at most a ``refresh_days``-th of the topic: the registry changes some records without a new last
        update date, and this finds what changed like any fetch. A study the API no longer returns by id is left
        to the next listing."""
        days = self.options.refresh_days
        if days <= 0:
            return
        name = self.state.topic.name
        members = membership.count_present(self.conn, name)
        cutoff = (datetime.strptime(dates.utc_now(), "%Y-%m-%dT%H:%M:%SZ") - timedelta(days=days)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        stale = stalest_members(self.conn, name, cutoff, -(-members // days), self.received)
        again = replace(context, membership=False, counted=NctIdSet())
        for batch in id_batches(stale):
            rows, as_stored = self._batch_alone(batch, "studies fetched again by id")
            self._saved(save_counted(self.conn, rows, again, as_stored))
            self.result.refreshed += len(rows) + len(as_stored)
            if self.client.stop.is_set():
                raise Interrupted("stopped")

    def reconcile(self, listed: NctIdSet, context: SaveContext) -> None:
        """Settle membership from a complete listing of one release: members it lacks leave (fetched by id
        first, so that why they left is seen), watched ids the API lacks are noted."""
        conn, state, result, name = self.conn, self.state, self.result, self.state.topic.name
        listed = self._listing_of_one_release(listed, result.data_timestamp, context)
        result.membership_checked = True
        leaving = [nct_id for nct_id in membership.present_members(conn, name) if nct_id not in listed]
        self._fetch_leaving(leaving, context)
        result.left = membership.mark_left(conn, name, leaving, result.pull_id, context.reason)
        result.missing_ids = sorted({nct_id for nct_id in state.topic.watched_ids() if nct_id not in listed})
        history.warn_missing_ids(conn, name, result.pull_id, result.missing_ids)

    def _finish(self, plan: Plan, outcome: str) -> PullResult:
        """Record the pull's outcome: a skipped one as unchanged; a complete one with the topic's new state."""
        conn, state, result, name = self.conn, self.state, self.result, self.state.topic.name
        result.outcome = outcome
        result.requests = self.client.requests_made - self.requests_before
        if outcome == "unchanged":
            with store_db.transaction(conn):  # no record moved, but the days did: results may have become due
                history.note_results_due(conn, result.pull_id, utc_today())
                pulls.finish_pull(conn, result.pull_id, "unchanged", mode="skipped", requests=result.requests,
                                  watermark=state.watermark)
            return result
        watermark = self.newest_update
        with store_db.transaction(conn):
            history.note_results_due(conn, result.pull_id, utc_today())
            topics.record_complete_pull(conn, name, state.topic.search_params(), watermark,
                                        result.data_timestamp, self.api_version)
            if result.first_fill and not state.filled:  # a topic an import filled first keeps its digest
                topics.mark_filled(conn, name, history.last_change_id(conn))
            pulls.finish_pull(conn, result.pull_id, "complete", requests=result.requests, watermark=watermark,
                              membership_checked=int(result.membership_checked), reconciled=result.reconciled)
        if result.total_count is None and plan.mode == "full":
            result.total_count = result.counts.received
        return result

    # -- listings ---------------------------------------------------------------------------------------

    def _listing_of_one_release(self, listed: NctIdSet, started: str | None, context: SaveContext) -> NctIdSet:
        """``listed`` if the registry's data did not move while it was taken; else the topic listed again
        (ids and statuses, fetching by id what the new listing shows) until a listing begins and ends under
        one ``dataTimestamp``. A listing that straddles a data refresh can hold a study of neither release and
        lack one of both, though its count is right."""
        before = started
        for _ in range(LISTING_ATTEMPTS):
            now, _ = fetch_data_timestamp(self.client)
            if now == before:
                return listed
            self.client.on_wait("the registry refreshed its data during the pull; listing the topic again")
            before = now
            statuses = list_statuses(self.client, self.state.topic.search_params(), self.progress)
            refetch = self._to_refetch(statuses)
            if refetch:
                self._fetch_by_id(refetch, context)
            listed = NctIdSet(statuses)
        raise IncompleteListing(f"the registry's data kept changing while topic {self.state.topic.name} was listed "
                                f"({LISTING_ATTEMPTS} times); nothing was concluded from the listing")

    def _fetch_studies(self, params: dict[str, str], context: SaveContext, tally: ListingTally) -> None:
        result = self.result

        def page_written(counts: SaveCounts) -> None:
            self._saved(counts)
            # Kept current page by page, so that a pull killed midway still shows what it asked for.
            pulls.update_pull(self.conn, result.pull_id, requests=self.client.requests_made - self.requests_before)
            self.progress("studies", result.counts.received, result.total_count)
            if self.client.stop.is_set():
                raise Interrupted("stopped")

        def take(page: Page, rows: list[StudyRows], as_stored: dict[str, str | None]) -> None:
            tally.add(page, [study.nct_id for study in rows] + list(as_stored))
            self._note_received(rows, as_stored)
            # The previous page: ``add`` gives two at once when the worker fails on the one it held. Stopping here
            # drops this one unwritten.
            writer.wait_then(page_written)
            writer.start(save_counted, self.conn, rows, context, list(as_stored))

        with _PageWriter() as writer, _Flattener(self) as flattener:
            first = True
            for page in iter_pages(self.client, params, self.options.page_size):
                if first and page.total_count is not None:
                    # Only the first page carries a total, and nothing is being written yet.
                    result.total_count = page.total_count
                    pulls.update_pull(self.conn, result.pull_id, total_count=page.total_count)
                    if page.total_count >= WORKER_FROM_STUDIES:
                        flattener.start_worker()
                first = False
                # The page before is written before the worker's next rows come in: two pages of rows are
                # never held at once.
                writer.wait_then(page_written)
                for ready in flattener.add(page):
                    take(*ready)
                    del ready
                del page
            writer.wait_then(page_written)
            for ready in flattener.finish():
                take(*ready)
                del ready
            writer.wait_then(page_written)

    def _to_refetch(self, listed: dict[str, str | None]) -> list[str]:
        """Studies the listing holds that the store lacks for the topic, or holds with another status (the
        registry changes some data without a new last update date)."""
        stored_status = dict(self.conn.execute(
            "SELECT s.nct_id, s.overall_status FROM topic_studies t JOIN studies s ON s.nct_id = t.nct_id "
            "WHERE t.topic = ? AND t.present = 1", [self.state.topic.name]))
        refetch = []
        for nct_id, status in listed.items():
            if nct_id in self.received:
                continue
            if nct_id not in stored_status or stored_status[nct_id] != status:
                refetch.append(nct_id)
        return sorted(refetch)

    def _fetch_by_id(self, nct_ids: list[str], context: SaveContext) -> None:
        result = self.result
        result.refetched += len(nct_ids)
        done = 0
        for batch in id_batches(nct_ids):
            def fetch_batch(tally: ListingTally, batch: list[str] = batch) -> tuple[list[StudyRows], dict]:
                rows, as_stored = self._batch_by_id(batch, tally)
                got = {study.nct_id for study in rows} | set(as_stored)
                missing = [nct_id for nct_id in batch if nct_id not in got]
                if missing:
                    raise IncompleteListing(f"the API lists {', '.join(missing[:3])} in topic {context.topic} "
                                            "but does not return it by id")
                return rows, as_stored

            (rows, as_stored), _ = complete_listing(self.client, "studies fetched by id", fetch_batch)
            self._note_received(rows, as_stored)
            self._saved(save_counted(self.conn, rows, context, list(as_stored)))
            done += len(batch)
            self.progress("missing", done, len(nct_ids))
            if self.client.stop.is_set():
                raise Interrupted("stopped")

    def _batch_by_id(self, batch: list[str], tally: ListingTally) -> tuple[list[StudyRows], dict[str, str | None]]:
        """The studies of one ``filter.ids`` batch, counted on ``tally``: flattened rows, and those received byte
        for byte as stored (``{nct_id: last update posted}``)."""
        rows: list[StudyRows] = []
        as_stored: dict[str, str | None] = {}
        # One more than the batch: the API gives a full page a next token even at the end, which would cost an
        # empty request per batch.
        for page in iter_pages(self.client, {"filter.ids": ",".join(batch)}, page_size=len(batch) + 1):
            page_rows, page_as_stored = self._flatten_page(page)
            tally.add(page, [study.nct_id for study in page_rows] + list(page_as_stored))
            rows += page_rows
            as_stored.update(page_as_stored)
        return rows, as_stored

    def _batch_alone(self, batch: list[str], what: str) -> tuple[list[StudyRows], list[str]]:
        """One ``filter.ids`` batch, provably complete (``what`` names it if not), keeping only the batch's own
        studies: their rows, and the ids of those received byte for byte as stored."""
        (rows, as_stored), _ = complete_listing(self.client, what, lambda tally: self._batch_by_id(batch, tally))
        wanted = set(batch)
        return [study for study in rows if study.nct_id in wanted], [nct_id for nct_id in as_stored if nct_id in wanted]

    def _fetch_leaving(self, nct_ids: list[str], context: SaveContext) -> None:
        """Fetch by id the studies the API returned for the topic that its listing no longer holds, before they
        are called left: the change that took a study out of the topic (its status, say) is then seen by this
        pull, and is in the digest beside its leaving. A study the API no longer returns by id just leaves."""
        nct_ids = sorted(row[0] for row in select_in(
            self.conn, "SELECT nct_id FROM topic_studies WHERE topic = ? AND present = 1 AND api_seen = 1 "
            "AND nct_id IN ({marks})", sorted(set(nct_ids)), context.topic))
        if not nct_ids:
            return
        # Not counted as received, their membership left to the listing; nor do they move the watermark.
        leaving = replace(context, membership=False, counted=NctIdSet())
        for batch in id_batches(nct_ids):
            rows, as_stored = self._batch_alone(batch, "studies that left the topic, fetched by id")
            self._saved(save_counted(self.conn, rows, leaving, as_stored))
            if self.client.stop.is_set():
                raise Interrupted("stopped")

    def _saved(self, counts: SaveCounts) -> None:
        """Count a written page, say what it stored as empty, and note and warn the drift found so far."""
        self.result.counts.add(counts)
        for line in counts.warnings:
            self.warn(line)
        self.drift.flush()

    # -- pages ----------------------------------------------------------------------------------------------

    def _flatten_page(self, page: Page) -> tuple[list[StudyRows], dict[str, str | None]]:
        """Parse and flatten a page's studies one at a time, keeping each one's bytes as sent.

        Studies whose bytes equal the stored ones are not parsed at all (a re-pull of unchanged data, the
        day of overlap of an incremental pull): they come back as ``{nct_id: last update posted}``.
        """
        to_flatten, as_stored = self.records_to_flatten(page)
        return self.flatten_here(to_flatten), as_stored

    def records_to_flatten(self, page: Page) -> tuple[list[bytes], dict[str, str | None]]:
        """The records of ``page`` to flatten, and ``{nct_id: last update posted}`` of those whose bytes equal
        the stored ones."""
        guessed = [match.group(1).decode() if (match := _NCT_ID_IN_RAW.search(raw)) else None
                   for raw in page.raw_studies]
        stored = stored_raw_and_date(self.reader, [i for i in guessed if i]) if self.reader is not None else {}
        to_flatten: list[bytes] = []
        as_stored: dict[str, str | None] = {}
        for raw, nct_id in zip(page.raw_studies, guessed):
            known = stored.get(nct_id) if nct_id else None
            if known is not None and known[0] == raw:  # equal bytes: the very record stored
                as_stored[nct_id] = known[1]
            else:
                to_flatten.append(raw)
        return to_flatten, as_stored

    def flatten_here(self, raws: list[bytes]) -> list[StudyRows]:
        """Records flattened in this process, their drift kept as ``rows_of`` keeps it; raises for a bad record."""
        return self.rows_of(flatten_records(raws, self.drift.model if self.drift else None))

    def rows_of(self, flattened: list[Flattened]) -> list[StudyRows]:
        """The rows of flattened records, the drift they showed kept for the next ``flush``."""
        for _, found, nct_id in flattened:
            if found and self.drift is not None:
                self.drift.note(found, nct_id)
        return [rows for rows, _, _ in flattened]

    def _note_received(self, rows: list[StudyRows], as_stored: dict[str, str | None]) -> None:
        self.received.update(study.nct_id for study in rows)
        self.received.update(as_stored)
        days = [watermark_date(study.value("last_update_posted"), self.ceiling) for study in rows]
        days += [watermark_date(updated, self.ceiling) for updated in as_stored.values()]
        newest = max((day for day in days if day), default=None)
        if newest and (self.newest_update is None or newest > self.newest_update):
            self.newest_update = newest


_NCT_ID_IN_RAW = re.compile(rb'"nctId"\s*:\s*"([^"]+)"')


# A listing this long flattens its pages in a worker process (prepare.RecordWorker) while the pull writes: below
# it, the worker's start (a fresh interpreter) costs more than the overlap wins.
WORKER_FROM_STUDIES = 5000


class _Flattener:
    """A listing's pages flattened in order: here, one page at a time as each arrives; or, once
    ``start_worker`` is called, by the worker while the page before is written, so that ``add`` gives back
    the page before the one it is given. ``finish`` gives the last one."""

    def __init__(self, run: "_PullRun"):
        self._run = run
        self._worker: RecordWorker | None = None
        self._sent: tuple[Page, dict[str, str | None], list[bytes]] | None = None

    def start_worker(self) -> None:
        self._worker = RecordWorker(self._run.drift.paths if self._run.drift else None)

    def add(self, page: Page) -> Iterator[tuple[Page, list[StudyRows], dict[str, str | None]]]:
        """The pages ready to write once ``page`` is in: the one before it if the worker has it, else ``page``."""
        yield from self.finish()  # received before the next is sent: the worker's pipes are never both full
        to_flatten, as_stored = self._run.records_to_flatten(page)
        if self._worker is not None and not self._worker.gone:
            self._worker.send(to_flatten)
            self._sent = (page, as_stored, to_flatten)
            return
        yield page, self._run.flatten_here(to_flatten), as_stored

    def finish(self) -> Iterator[tuple[Page, list[StudyRows], dict[str, str | None]]]:
        """The page the worker still has, if any."""
        if self._sent is None:
            return
        (page, as_stored, to_flatten), self._sent = self._sent, None
        flattened = self._worker.receive()
        # A page the worker failed on is flattened here, where a bad record fails as it always has.
        rows = self._run.rows_of(flattened) if flattened is not None else self._run.flatten_here(to_flatten)
        yield page, rows, as_stored

    def __enter__(self) -> "_Flattener":
        return self

    def __exit__(self, *_) -> None:
        if self._worker is not None:
            self._worker.close()


class _PageWriter:
    """Writes one page in a background thread while the next is fetched and parsed; one page at most.

    SQLite does its work with the GIL released, so writing overlaps with parsing. The caller touches the
    database only after ``wait_then``, and leaving the block waits for the write under way.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trialsync-writer")
        self._pending: Future | None = None

    def start(self, save: Callable[..., SaveCounts], *args) -> None:
        self._pending = self._pool.submit(save, *args)

    def wait_then(self, page_written: Callable[[SaveCounts], None]) -> None:
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
