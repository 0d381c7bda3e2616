"""Listings that must be provably complete before anything is concluded from them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..api import LISTING_FIELDS, ApiClient, ListingTally, iter_pages, listed_study
from ..errors import IncompleteListing, Interrupted

T = TypeVar("T")
LISTING_ATTEMPTS = 3  # a listing that is not provably complete is asked for again, this many times in all

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


def list_statuses(client: ApiClient, search: dict[str, str], progress: Progress) -> dict[str, str | None]:
    """Every study ``search`` selects, with its overall status (``fields=NCTId|OverallStatus``, 1,000 a request),
    from a provably complete listing."""

    def run(tally: ListingTally) -> dict[str, str | None]:
        statuses: dict[str, str | None] = {}
        for page in iter_pages(client, {**search, "fields": LISTING_FIELDS}):
            listed = [listed_study(raw) for raw in page.raw_studies]
            tally.add(page, [nct_id for nct_id, _ in listed])
            statuses.update(listed)
            progress("listing", len(statuses), tally.total)
            if client.stop.is_set():
                raise Interrupted("stopped")
        return statuses

    return complete_listing(client, "the id listing", run)[0]
