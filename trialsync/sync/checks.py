"""Checks of the store against the API: ``verify`` compares a topic's counts by status and its members."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from ..api import ApiClient
from ..errors import NotFound, TrialsyncError
from ..statuses import NO_STATUS, status_sort_key
from ..store import topics
from .listing import Progress, list_statuses, search_batches


@dataclass
class Verification:
    """How a topic in the store compares with what the API lists for it now."""

    topic: str
    api_total: int
    store_total: int
    by_status: list[tuple[str, int, int]]  # (status, API count, store count), every status either side has
    only_in_api: list[str] = field(default_factory=list)
    only_in_store: list[str] = field(default_factory=list)
    status_differs: list[tuple[str, str, str]] = field(default_factory=list)  # (nct_id, API status, store status)

    @property
    def agrees(self) -> bool:
        """Whether the store holds exactly the API's studies for the topic, each with the API's status."""
        return not (self.only_in_api or self.only_in_store or self.status_differs)


def verify_topic(conn: sqlite3.Connection, client: ApiClient, name: str,
                 progress: Progress = lambda stage, done, total: None) -> Verification:
    """List the topic's studies with their status (one request per 1,000 studies, a long watchlist's ids in
    the batches ``pull`` sends, provably complete) and compare them, one by one and counted by status, with the store. Writes nothing."""
    state = topics.topic_state(conn, name)
    if state is None:
        raise NotFound(f"topic {name!r} is not stored: pull it first (`trialsync pull {name}`)")
    search = state.topic.search_params()
    if not search:
        raise TrialsyncError(f"topic {name!r} holds imported studies only: there is no search to verify it against")
    listed = {nct_id: status or NO_STATUS for nct_id, status in list_statuses(client, search, progress).items()}
    stored = {nct_id: status or NO_STATUS for nct_id, status in conn.execute(
        "SELECT s.nct_id, s.overall_status FROM topic_studies t JOIN studies s ON s.nct_id = t.nct_id "
        "WHERE t.topic = ? AND t.present = 1", [name])}
    api_counts: dict[str, int] = {}
    store_counts: dict[str, int] = {}
    for status in listed.values():
        api_counts[status] = api_counts.get(status, 0) + 1
    for status in stored.values():
        store_counts[status] = store_counts.get(status, 0) + 1
    statuses = sorted(set(api_counts) | set(store_counts), key=status_sort_key)
    return Verification(
        topic=name,
        api_total=len(listed),
        store_total=len(stored),
        by_status=[(status, api_counts.get(status, 0), store_counts.get(status, 0)) for status in statuses],
        only_in_api=sorted(set(listed) - set(stored)),
        only_in_store=sorted(set(stored) - set(listed)),
        status_differs=sorted((nct_id, listed[nct_id], stored[nct_id]) for nct_id in set(listed) & set(stored)
                              if listed[nct_id] != stored[nct_id]),
    )


def count_matches(client: ApiClient, topic) -> int:
    """How many studies the API holds for ``topic``'s search: one request (``countTotal``, one id), or for a
    long watchlist one per batch of its ids, as ``pull`` sends them (the batches hold each id once)."""
    from ..api.pages import read_page

    count = 0
    for search in search_batches(topic.search_params()):
        page = client.send("/studies", {**search, "countTotal": "true", "pageSize": "1", "fields": "NCTId"}, read_page)
        if page.total_count is None:
            raise TrialsyncError("the API did not say how many studies match (no totalCount in its answer)")
        count += page.total_count
    return count
