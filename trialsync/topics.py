"""Topics: a name plus the API search parameters that define which studies belong to it. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import UsageError

DEFAULT_TOPIC_NAME = "stem-cell-spine"

# Command-line option name -> API parameter, in the order they are shown and sent.
SEARCH_PARAMETERS: dict[str, str] = {
    "cond": "query.cond",
    "intr": "query.intr",
    "term": "query.term",
    "titles": "query.titles",
    "spons": "query.spons",
    "locn": "query.locn",
    "status": "filter.overallStatus",
    "advanced": "filter.advanced",
    "geo": "filter.geo",
}

_TOPIC_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Topic:
    """A named search: ``params`` maps API parameter names (``query.cond``...) to their values."""

    name: str
    params: dict[str, str] = field(default_factory=dict)

    def search_params(self) -> dict[str, str]:
        """The API parameters in their canonical order, empty values left out."""
        return {api: self.params[api] for api in SEARCH_PARAMETERS.values() if self.params.get(api)}


BUILTIN_TOPICS: dict[str, Topic] = {
    DEFAULT_TOPIC_NAME: Topic(
        DEFAULT_TOPIC_NAME,
        {
            "query.cond": '"back pain" OR "degenerative disc disease" OR "intervertebral disc degeneration"'
            ' OR "disc herniation" OR "spinal cord injury" OR "spinal stenosis"',
            "query.intr": '"stem cell" OR mesenchymal OR "progenitor cell" OR "bone marrow concentrate"'
            ' OR "bone marrow aspirate" OR "adipose derived" OR "stromal vascular fraction"',
        },
    )
}


def validate_topic_name(name: str) -> str:
    """Return ``name`` if it is a usable topic name (lowercase letters, digits, ``-_.``), else raise UsageError."""
    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name):
        raise UsageError(
            f"invalid topic name {name!r}: use 1-64 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name


def make_topic(name: str, options: dict[str, str | None]) -> Topic:
    """Build a Topic from command-line option values (keys of SEARCH_PARAMETERS); at least one is required."""
    validate_topic_name(name)
    unknown = set(options) - set(SEARCH_PARAMETERS)
    if unknown:
        raise UsageError(f"unknown search option(s): {', '.join(sorted(unknown))}")
    params = {SEARCH_PARAMETERS[opt]: value.strip() for opt, value in options.items() if value and value.strip()}
    if not params:
        raise UsageError("a topic needs at least one search option, e.g. --cond 'spinal cord injury'")
    if "filter.overallStatus" in params:
        statuses = [s.strip().upper() for s in re.split(r"[,|]", params["filter.overallStatus"]) if s.strip()]
        params["filter.overallStatus"] = ",".join(statuses)
    return Topic(name, params)
