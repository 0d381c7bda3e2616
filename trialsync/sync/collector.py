"""How often Python's cycle collector runs while a bulk job (a pull, an import) turns records into rows."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 100_000  # container allocations between first-generation collections (Python's default: 700)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the body with the collector's first-generation threshold raised to BULK_THRESHOLD, then restore it.

    Parsing a page makes hundreds of thousands of dicts and tuples that live briefly and hold no reference
    cycles; at the default threshold the collector ran thousands of times per page and took a tenth of a
    pull's time (py-spy). Collections still happen, so memory held by a cycle is still freed.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(BULK_THRESHOLD, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
