"""One renderer for every list: a rich table on a terminal, aligned plain text, markdown, CSV, JSON or JSON
lines. Tables fit the width they are given without splitting an NCT id, a date or a number: titles are
shortened with an ellipsis first, then the least needed columns are left out."""

from __future__ import annotations

import csv
import re
import io
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .formats import to_json, to_json_lines
from .visible import visible

ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """One column: the row key, its header, alignment, how to show a value, and how it gives way.

    ``flex`` columns (titles, names) may be shortened with an ellipsis down to ``min_width``; every other
    column keeps its values whole. When shortening is not enough, columns with the highest ``drop`` go first
    (0: never dropped).
    """

    key: str
    header: str
    numeric: bool = False
    show: Callable[[object], str] | None = None
    flex: bool = False
    min_width: int = 12
    drop: int = 0

    def cell(self, row: dict) -> str:
        """The column's value in ``row`` as display text, on one line."""
        value = row.get(self.key)
        text = self.show(value) if self.show is not None else ("" if value is None else str(value))
        return visible(text)

    def cells(self, rows: Sequence[dict]) -> list[str]:
        """``cell`` of every row (the common cases without a call per row)."""
        key, show = self.key, self.show
        values = [row.get(key) for row in rows]
        texts = [show(v) for v in values] if show is not None else ["" if v is None else str(v) for v in values]
        return [visible(t) for t in texts]


def terminal_width() -> int:
    """The width tables are fitted to: ``COLUMNS``, else the terminal's, else 80."""
    return shutil.get_terminal_size((80, 24)).columns


def sentence(text: str, width: int | None = None) -> str:
    """``text`` wrapped to the terminal's width (or ``width``), never splitting a word or an id; its own
    new lines kept, any other control character made ``visible``."""
    import textwrap

    return "\n".join(textwrap.fill(visible(line), width or terminal_width(), break_long_words=False,
                                   break_on_hyphens=False) for line in text.split("\n"))


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + ELLIPSIS


def fit(columns: Sequence[Column], cells: list[list[str]], width: int, overhead: Callable[[int], int]
        ) -> tuple[list[int], list[int]]:
    """Which columns to keep (their indexes) and the width of each, so that the widths plus
    ``overhead(number of columns)`` fit ``width``."""
    natural = [max([len(c.header)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    kept = list(range(len(columns)))
    while True:
        widths = {i: natural[i] for i in kept}
        excess = sum(widths.values()) + overhead(len(kept)) - width
        for i in sorted(kept, key=lambda i: -columns[i].drop):  # shorten the most dispensable columns first
            if excess <= 0:
                break
            if columns[i].flex:
                floor = max(columns[i].min_width, len(columns[i].header))
                give = min(excess, max(widths[i] - floor, 0))
                widths[i] -= give
                excess -= give
        if excess <= 0:
            return kept, [widths[i] for i in kept]
        droppable = [i for i in kept if columns[i].drop]
        if not droppable:
            return kept, [widths[i] for i in kept]  # as narrow as it can be without splitting a value
        kept.remove(max(droppable, key=lambda i: (columns[i].drop, i)))


def rows_as(rows: Sequence[dict], columns: Sequence[Column], fmt: str, title: str | None = None,
            width: int | None = None, data: Sequence[dict] | None = None) -> list:
    """Render ``rows`` in ``fmt``. JSON and JSON lines give ``data`` (default: the rows themselves) as they
    are; CSV the columns' keys and raw values; the others the columns' display text."""
    if fmt == "json":
        return [to_json(list(data if data is not None else rows))]
    if fmt == "nl":
        return [to_json_lines(data if data is not None else rows)] if (data if data is not None else rows) else []
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([c.key for c in columns])
        writer.writerows([[csv_value(row.get(c.key)) for c in columns] for row in rows])
        return [buffer.getvalue().rstrip("\n")]
    cells = [list(line) for line in zip(*(c.cells(rows) for c in columns))] if rows else []
    columns = [replace(c, header=visible(c.header)) for c in columns]  # a header may be a record's value
    title = visible(title) if title else title
    if fmt == "markdown":
        lines = ["| " + " | ".join(markdown_text(c.header) for c in columns) + " |",
                 "| " + " | ".join("---:" if c.numeric else "---" for c in columns) + " |"]
        lines += ["| " + " | ".join(markdown_text(v) for v in line) + " |" for line in cells]
        return [(f"**{markdown_text(title)}**\n\n" if title else "") + "\n".join(lines)]
    width = width or terminal_width()
    if fmt == "table":
        kept, widths = fit(columns, cells, width, lambda n: 3 * n + 1)
        from rich import box
        from rich.table import Table

        from rich.text import Text

        # Text, not str: rich would read "[bold]" or "[link=...]" in a record's title as markup.
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
        for i, w in zip(kept, widths):
            table.add_column(Text(columns[i].header), justify="right" if columns[i].numeric else "left",
                             no_wrap=True, min_width=w, max_width=w, overflow="ellipsis")
        for line in cells:
            table.add_row(*(Text(shorten(line[i], w)) for i, w in zip(kept, widths)))
        return ([sentence(title, width)] if title else []) + [table]
    kept, widths = fit(columns, cells, width, lambda n: 2 * (n - 1))
    text = plain_table([shorten(columns[i].header, w) for i, w in zip(kept, widths)],
                       [[shorten(line[i], w) for i, w in zip(kept, widths)] for line in cells],
                       [columns[i].numeric for i in kept], widths)
    return [f"{sentence(title, width)}\n{text}" if title else text]


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<|])")


def markdown_text(text: str) -> str:
    """``text`` as literal markdown: a record's ``*``, `` ` ``, ``[link](...)``, ``<b>`` or ``|`` stays text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def plain_table(headers: Sequence[str], cells: Sequence[Sequence[str]], numeric: Sequence[bool],
                widths: Sequence[int] | None = None) -> str:
    """Columns aligned with spaces, numbers to the right; no colour, no box drawing."""
    widths = widths or [max([len(h)] + [len(line[i]) for line in cells]) for i, h in enumerate(headers)]

    def fmt_line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    return "\n".join([fmt_line(headers)] + [fmt_line(line) for line in cells])


def csv_value(value):
    """A value as a CSV cell: a list joined with "; ", a flag as true/false, anything else as it is."""
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
