"""Text from the registry made safe to print for a person: no control character reaches a terminal, a table,
the digest, markdown or plain text as such, so a record can neither drive the terminal (ESC, BEL) nor fake a
line of cron mail (CR, newlines). JSON and CSV are not passed through here: they keep each value exactly."""

from __future__ import annotations

import re

# Characters that end or break a line: a space in one-line text (a title, a cell, a digest line).
_LINE_BREAKS = "\n\r\t\v\f\x1c\x1d\x1e\x85\u2028\u2029"
# Every other C0 and C1 control character and DEL: shown as its escape, e.g. \x1b.
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")
_BREAKS = re.compile(f"[{re.escape(_LINE_BREAKS)}]+")
_UNSAFE = re.compile(f"[{re.escape(_LINE_BREAKS)}\x00-\x1f\x7f-\x9f]")


def _escape(match: re.Match) -> str:
    return f"\\x{ord(match.group(0)):02x}"


def visible(text: str) -> str:
    """``text`` on one line: where it breaks lines, its runs of white space one space; every other control character shown
    as its escape (``\\x1b``)."""
    if not _UNSAFE.search(text):
        return text
    if _BREAKS.search(text):
        text = " ".join(text.split())
    return _CONTROLS.sub(_escape, text)


def visible_lines(text: str) -> list[str]:
    """``text``'s lines (split at any line break, CR and CR LF included), each made ``visible``."""
    return [visible(line) for line in text.splitlines()]
