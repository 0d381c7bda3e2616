"""Charts in the terminal, drawn with characters: sparklines (▁▂▃▄▅▆▇█) and horizontal bars. Pure functions from
counts to lines of text, or to rich Text (coloured on a terminal; rich writes no escape code elsewhere)."""

from __future__ import annotations

from collections.abc import Sequence

from .visible import visible

SPARKS = "▁▂▃▄▅▆▇█"
BAR = "█"
BAR_STYLE = "cyan"
MIN_BAR_WIDTH = 10


def sparkline(values: Sequence[int]) -> str:
    """One character per value, its height proportional to the value on a scale from 0 to the largest one:
    ``▁`` is nothing, ``█`` the largest; any value above 0 is at least ``▂``."""
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[0] * len(values)
    steps = len(SPARKS) - 1
    return "".join(SPARKS[0 if v <= 0 else max(1, round(v * steps / top))] for v in values)


def bar_length(count: int, largest: int, width: int) -> int:
    """How many characters the bar of ``count`` takes when the bar of ``largest`` takes ``width``; at least
    one for any count above 0."""
    if count <= 0 or largest <= 0:
        return 0
    return max(1, round(count * width / largest))


def bar_lines(items: Sequence[tuple[str, int]], width: int) -> list[tuple[str, str, str]]:
    """``(label, bar, count)`` for each ``(label, count)``, padded so that the lines, joined with a space,
    are at most ``width`` characters (the bars at least ``MIN_BAR_WIDTH``); bars are proportional to the
    counts, the largest filling the room left."""
    if not items:
        return []
    labels = [visible(label) for label, _ in items]
    counts = [count for _, count in items]
    label_width = max(len(label) for label in labels)
    count_width = max(len(str(count)) for count in counts)
    room = max(MIN_BAR_WIDTH, width - label_width - count_width - 2)
    largest = max(counts)
    return [(label.ljust(label_width), (BAR * bar_length(count, largest, room)).ljust(room), str(count).rjust(count_width))
            for label, count in zip(labels, counts)]


def bar_chart(items: Sequence[tuple[str, int]], width: int) -> list[str]:
    """Horizontal bars as plain text: one line per ``(label, count)``, label, bar, count."""
    return [f"{label} {bar} {count}" for label, bar, count in bar_lines(items, width)]


def bar_chart_rich(items: Sequence[tuple[str, int]], width: int):
    """The lines of ``bar_chart`` as one rich Text, the bars coloured."""
    from rich.text import Text

    text = Text()
    for index, (label, bar, count) in enumerate(bar_lines(items, width)):
        if index:
            text.append("\n")
        text.append(f"{label} ")
        text.append(bar, style=BAR_STYLE)
        text.append(f" {count}")
    return text


def trend_lines(series: Sequence[tuple[str, Sequence[int]]], width: int) -> tuple[int, list[tuple[str, str, str]]]:
    """For each ``(label, counts over time)``: ``(label, sparkline, "first → last")``, the sparklines of the
    newest values that fit ``width``. Returns how many values each sparkline shows, and the lines."""
    if not series:
        return 0, []
    labels = [visible(label) for label, _ in series]
    label_width = max(len(label) for label in labels)
    digits = max(len(str(v)) for _, values in series for v in [0, *values])
    room = max(MIN_BAR_WIDTH, width - label_width - (2 * digits + 3) - 2)
    shown = min(room, max(len(values) for _, values in series))
    windows = [list(values)[-shown:] for _, values in series]
    ends = [f"{window[0]} → {window[-1]}" if window else "" for window in windows]
    end_width = max(len(end) for end in ends)
    return shown, [(label.ljust(label_width), sparkline(window).ljust(shown), end.rjust(end_width))
                   for label, window, end in zip(labels, windows, ends)]


def trend_chart(series: Sequence[tuple[str, Sequence[int]]], width: int) -> tuple[int, list[str]]:
    """``trend_lines`` as plain text lines: label, sparkline, first and last count."""
    shown, lines = trend_lines(series, width)
    return shown, [f"{label} {spark} {ends}".rstrip() for label, spark, ends in lines]


def trend_chart_rich(series: Sequence[tuple[str, Sequence[int]]], width: int):
    """``trend_lines`` as how many values are shown and one rich Text, the sparklines coloured."""
    from rich.text import Text

    shown, lines = trend_lines(series, width)
    text = Text()
    for index, (label, spark, ends) in enumerate(lines):
        if index:
            text.append("\n")
        text.append(f"{label} ")
        text.append(spark, style=BAR_STYLE)
        text.append(f" {ends}")
    return shown, text
