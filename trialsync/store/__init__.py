"""The SQLite store: ``db`` (open, ownership, lock), ``migrations`` (frozen DDL), ``topics`` (topics and their
sync state), ``pulls`` (the pull log), ``studies`` (diff, then write), ``membership``, ``history`` and ``drift``
(the API's data models and the drift noted against them). Knows no HTTP."""

from .db import (
    SCHEMA_VERSION, default_db_path, describe_error, open_for_reading, open_for_writing, open_unchanged, transaction,
    write_lock,
)
from .history import MEMBERSHIP, WARNING, last_change_id
from .membership import mark_left, present_ids
from .pulls import COMPLETE_OUTCOMES, COUNT_BY_STATUS, finish_pull, mark_abandoned_pulls, start_pull
from .studies import FILE, SaveContext, SaveCounts, save_studies
from .topics import (
    TopicState, default_topic_name, get_stored_topic, get_topic, list_topics, mark_filled, mark_reported,
    remove_topic, save_topic, topic_state,
)

__all__ = [
    "COMPLETE_OUTCOMES", "COUNT_BY_STATUS", "FILE", "MEMBERSHIP", "SCHEMA_VERSION", "SaveContext", "SaveCounts",
    "TopicState", "WARNING", "default_db_path", "default_topic_name", "describe_error", "finish_pull",
    "get_stored_topic", "get_topic", "last_change_id", "list_topics", "mark_abandoned_pulls", "mark_filled",
    "mark_left", "mark_reported", "open_for_reading", "open_for_writing", "open_unchanged", "present_ids",
    "remove_topic", "save_studies", "save_topic", "start_pull", "topic_state", "transaction", "write_lock",
]
