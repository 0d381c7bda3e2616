"""Read commands that stay instant however large a topic: what they read, not how long they take (timing is the
benchmark's). Against real records imported or pulled from the stand-in API."""

from __future__ import annotations

import sqlite3

from conftest import SPINE_CONDITION_IDS, fixture_record, with_status
from fakeapi import Corpus, FakeApi
from trialsync import reports, store
from trialsync.api import ApiClient
from trialsync.errors import ApiError
from trialsync.sync.pull import pull_topic
from trialsync.topics import Topic

import pytest

TOPIC = Topic("spine", {"query.cond": "spine"})


def statements(conn: sqlite3.Connection, call) -> list[str]:
    """The SQL statements ``call()`` runs on ``conn``."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    return seen


def test_topics_list_counts_from_the_last_pulls_snapshot_unless_something_was_written_since(db):
    with FakeApi(Corpus([fixture_record(i) for i in SPINE_CONDITION_IDS])) as server:
        store.save_topic(db, TOPIC)
        client = ApiClient(base_url=server.url, rate=0)
        pull_topic(db, client, TOPIC.name)
        read = statements(db, lambda: reports.topic_rows(db))
        assert not any("FROM topic_studies" in sql for sql in read)  # no walk over the members
        assert [r["studies"] for r in reports.topic_rows(db)] == [13]
        # a pull that failed after writing a page: the snapshot may be stale, so the members are counted
        server.data_timestamp = "2026-11-25T09:00:00"
        server.corpus.put(with_status(fixture_record(SPINE_CONDITION_IDS[0]), "COMPLETED", updated="2026-11-25"))
        server.corpus.remove(SPINE_CONDITION_IDS[1])
        server.inject("listing", "500", times=10)
        with pytest.raises(ApiError):
            pull_topic(db, ApiClient(base_url=server.url, rate=0, attempts=1), TOPIC.name)
        read = statements(db, lambda: reports.topic_rows(db))
        assert any("count(*) FROM topic_studies" in sql for sql in read)
        assert [r["studies"] for r in reports.topic_rows(db)] == [13]
        server.clear_faults()
        pull_topic(db, client, TOPIC.name)
        assert [r["studies"] for r in reports.topic_rows(db)] == [12]
        assert not any("FROM topic_studies" in sql for sql in statements(db, lambda: reports.topic_rows(db)))
