"""Machine-readable formats: indented JSON, JSON lines."""

from __future__ import annotations

from collections.abc import Iterable

import orjson


def to_json(data) -> str:
    """``data`` as indented JSON text."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def to_json_lines(items: Iterable) -> str:
    """Each item as one line of compact JSON."""
    return "\n".join(orjson.dumps(item).decode() for item in items)
