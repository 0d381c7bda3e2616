"""Pulling several topics in one go, as cron does: which topics a bare ``pull`` means, one outcome each."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..api import ApiClient
from ..errors import ApiUnreachable, Interrupted, StoreError, TrialsyncError
from ..store import topics
from ..topics import DEFAULT_TOPIC_NAME
from .pull import Progress, PullOptions, PullResult, pull_topic


@dataclass
class TopicOutcome:
    """How one topic's turn ended: a result, an error, or a note saying why it was not pulled."""

    topic: str
    result: PullResult | None = None
    error: TrialsyncError | None = None
    note: str | None = None


def topics_to_pull(conn: sqlite3.Connection, names: list[str] | None) -> list[tuple[str, bool]]:
    """``(name, named)`` of each topic to pull: those named (stored or built in; NotFound for others), else
    every stored topic, else the built-in one. Stores a built-in topic that is named but not stored yet."""
    if names:
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            topic = topics.get_topic(conn, name)
            if topics.topic_state(conn, name) is None:
                topics.save_topic(conn, topic)
        return [(name, True) for name in wanted]
    stored = [topic.name for topic in topics.list_topics(conn)]
    if not stored:
        topics.save_topic(conn, topics.get_topic(conn, DEFAULT_TOPIC_NAME))
        return [(DEFAULT_TOPIC_NAME, False)]
    return [(name, False) for name in stored]


def pull_topics(conn: sqlite3.Connection, client: ApiClient, names: list[str] | None, options: PullOptions,
                progress_for: Callable[[str], Progress],
                warn: Callable[[str], None] | None = None) -> Iterator[TopicOutcome]:
    """Pull each topic ``topics_to_pull`` gives, yielding its outcome before the next one starts.

    A topic that holds imported studies only is skipped with a note when not named. One topic's failure
    does not stop the others; a stop request (Interrupted), a database that fails (StoreError) or an API that
    cannot be reached at all (ApiUnreachable: offline) does.
    """
    for name, named in topics_to_pull(conn, names):
        state = topics.topic_state(conn, name)
        if not state.topic.search_params() and not named:
            yield TopicOutcome(name, note=f"{name}: holds imported studies only; not pulled")
            continue
        try:
            yield TopicOutcome(name, result=pull_topic(conn, client, name, options, progress_for(name), warn))
        except (Interrupted, StoreError, ApiUnreachable):
            raise  # a stop request, a database that cannot be written, or no network ends every topic's turn
        except TrialsyncError as exc:
            yield TopicOutcome(name, error=exc)
