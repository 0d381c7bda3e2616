"""Exports, written as they are read: flattened studies as CSV, JSON or JSON lines, or raw records as a
``ctg-studies.json`` array."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

import orjson


def write_export(items: Iterable, kind: str, out: TextIO) -> int:
    """Write ``items`` to ``out``: dicts as ``csv``, ``json`` (an array) or ``nl`` (JSON lines), or raw record
    texts as ``raw`` (a JSON array holding each record exactly as stored). Returns how many were written."""
    count = 0
    if kind == "csv":
        writer = None
        for row in items:
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
                writer.writeheader()
            writer.writerow(row)
            count += 1
        return count
    if kind == "nl":
        for row in items:
            out.write(orjson.dumps(row).decode() + "\n")
            count += 1
        return count
    out.write("[")
    for item in items:
        out.write(",\n" if count else "\n")
        out.write(item if kind == "raw" else orjson.dumps(item).decode())
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
