"""Listings that must be provably complete before anything is concluded from them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..api import LISTING_FIELDS, ApiClient, ListingTally, iter_pages, listed_study
from ..errors import IncompleteListing, Interrupted

T = TypeVar("T")
LISTING_ATTEMPTS = 3  # a listing that is not provably complete is asked for again, this many times in all
# NCT ids in one ``filter.ids`` request: about 4,200 characters of URL (an id and its encoded comma are 14),
# half the 8 KB of request line that front ends such as the API's refuse with HTTP 414.
IDS_PER_REQUEST = 300

# progress(stage, done, total)
Progress = Callable[[str, int, "int | None"], None]


def complete_listing(client: ApiClient, what: str, run_listing: Callable[[ListingTally], T]) -> tuple[T, ListingTally]:
    """Run ``run_listing`` until its tally is provably complete, at most LISTING_ATTEMPTS times.

    Returns its value and the tally of the complete run; raises IncompleteListing after the last try.
    """
    for attempt in range(1, LISTING_ATTEMPTS + 1):
        tally = ListingTally(what)
        try:
            value = run_listing(tally)
            tally.check()
            return value, tally
        except IncompleteListing as exc:
            if attempt == LISTING_ATTEMPTS:
                raise IncompleteListing(f"{exc} (asked {LISTING_ATTEMPTS} times)") from None
            client.on_wait("incomplete answer, asking again")
    raise AssertionError("unreachable")


def id_batches(nct_ids: list[str]) -> list[list[str]]:
    """``nct_ids`` in order, IDS_PER_REQUEST at a time: each batch fits one request's URL."""
    return [nct_ids[start:start + IDS_PER_REQUEST] for start in range(0, len(nct_ids), IDS_PER_REQUEST)]


def search_batches(params: dict[str, str]) -> list[dict[str, str]]:
    """``params`` as one search, or as several when a watchlist's ``filter.ids`` would make a URL too long:
    the same search over consecutive batches of its ids, which together select each id once. Every request
    that sends a topic's search (pull, verify, topics add --dry-run) goes through this."""
    ids = [i for i in params.get("filter.ids", "").split(",") if i]
    if len(ids) <= IDS_PER_REQUEST:
        return [params]
    return [{**params, "filter.ids": ",".join(batch)} for batch in id_batches(ids)]


def list_statuses(client: ApiClient, search: dict[str, str], progress: Progress) -> dict[str, str | None]:
    """Every study ``search`` selects, with its overall status (``fields=NCTId|OverallStatus``, 1,000 a request;
    a long watchlist in batches of its ids, each listed provably completely)."""
    statuses: dict[str, str | None] = {}
    for params in search_batches(search):
        before = len(statuses)

        def run(tally: ListingTally, params: dict[str, str] = params) -> dict[str, str | None]:
            batch: dict[str, str | None] = {}
            for page in iter_pages(client, {**params, "fields": LISTING_FIELDS}):
                listed = [listed_study(raw) for raw in page.raw_studies]
                tally.add(page, [nct_id for nct_id, _ in listed])
                batch.update(listed)
                progress("listing", before + len(batch), None if tally.total is None else before + tally.total)
                if client.stop.is_set():
                    raise Interrupted("stopped")
            return batch

        statuses.update(complete_listing(client, "the id listing", run)[0])
    return statuses
