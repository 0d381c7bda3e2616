"""Dates as the API writes them, and which of them may move a pull's watermark. No I/O."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

_PARTIAL_DATE = re.compile(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_today() -> str:
    """Today's UTC date as ``YYYY-MM-DD``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


def iso_day(text) -> str | None:
    """``text`` if it is a real calendar day written ``YYYY-MM-DD``, else None."""
    if not isinstance(text, str) or not _ISO_DAY.fullmatch(text):
        return None
    try:
        date.fromisoformat(text)
    except ValueError:
        return None
    return text


def sortable_date(text) -> str | None:
    """``YYYY-MM-DD`` for an API date; partial dates (``2019-03``, ``2019``) take the first day. Else None."""
    match = _PARTIAL_DATE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        return None
    year, month, day = match.groups()
    candidate = f"{year}-{month or '01'}-{day or '01'}"
    return candidate if iso_day(candidate) else None


def day_before(day: str) -> str:
    """The day before the ``YYYY-MM-DD`` day ``day``."""
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def day_after(day: str) -> str:
    """The day after the ``YYYY-MM-DD`` day ``day``."""
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def ceiling_day(data_timestamp: str | None) -> str:
    """The last day a study's update can carry: the day of the API's ``dataTimestamp``, or today (UTC)
    when the API gave none (or an unreadable one)."""
    return iso_day((data_timestamp or "")[:10]) or utc_today()


def watermark_date(text, ceiling: str) -> str | None:
    """``text`` if it may move a watermark: a valid ISO day no later than ``ceiling``; else None."""
    day = iso_day(text)
    return day if day is not None and day <= ceiling else None
