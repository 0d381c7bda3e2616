"""Saving a page of studies for a pull or an import: the store's save and the pull row's counts, together."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ..store import pulls
from ..store.db import transaction
from ..store.studies import SaveContext, SaveCounts, save_studies
from ..transform import StudyRows


def save_counted(conn: sqlite3.Connection, rows: Sequence[StudyRows], context: SaveContext,
                 same_ids: Sequence[str] = ()) -> SaveCounts:
    """``save_studies``, and the counts it returns added to the pull's row, in one transaction: a pull
    killed at any moment shows exactly what it stored."""
    with transaction(conn):
        counts = save_studies(conn, rows, context, list(same_ids))
        pulls.add_counts(conn, context.pull_id, received=counts.received, new=counts.new, updated=counts.updated,
                         unchanged=counts.unchanged, rejoined=counts.rejoined)
    return counts
