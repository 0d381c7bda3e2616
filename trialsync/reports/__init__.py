"""Read-only queries returning plain data: ``status`` (counts by status, history), ``breakdowns``,
``changes`` (change log, digests, pulls), ``studies`` (one study, lists, exports), ``asof`` (a topic as it
stood after an earlier pull)."""

from .changes import Digest, list_changes, list_pulls, unreported_changes
from .status import every_topic, history, status_report, status_summary
from .studies import study_facts, study_raw, topic_rows

__all__ = ["Digest", "every_topic", "history", "list_changes", "list_pulls", "status_report", "status_summary",
           "study_facts", "study_raw", "topic_rows", "unreported_changes"]
