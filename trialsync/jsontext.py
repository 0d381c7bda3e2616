"""Reading JSON text: orjson, and the standard library for the numbers orjson cannot hold.

orjson refuses a number beyond a double's range (an integer of 310 digits, ``1e400``), which is valid JSON.
Such a record is read with ``json`` instead: its integers exact, a float past the range as infinity, so that
the transform can call the value out of range instead of the record unreadable. NaN and Infinity, which are
not JSON, stay refused.
"""

from __future__ import annotations

import json

import orjson


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def loads(data: bytes | str):
    """``data`` parsed; orjson.JSONDecodeError when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "infinity" not in str(exc):
            raise
        try:
            return json.loads(data, parse_constant=_not_json)
        except (ValueError, RecursionError):
            raise exc from None


class NumberAsSent(float):
    """A JSON number with a fraction or exponent that also keeps its text as sent (``1e999`` is infinity as a
    float, and a message should name what the API sent)."""

    text: str

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


def exact(data: bytes | str):
    """``data`` parsed by the standard library: integers exact whatever their size (orjson reads an integer
    past 64 bits as a float), other numbers as NumberAsSent. For naming a value in a message, not for bulk work."""
    return json.loads(data, parse_constant=_not_json, parse_float=NumberAsSent)
