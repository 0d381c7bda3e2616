"""Text from the registry made safe to print for a person: no control character reaches a terminal, a table,
the digest, markdown or plain text as such, so a record can neither drive the terminal (ESC, BEL) nor fake a
line of cron mail (CR, newlines). JSON and CSV are not passed through here: they keep each value exactly."""

from __future__ import annotations

import re

# Characters that end or break a line: a space in one-line text (a title, a cell, a digest line).
_LINE_BREAKS = "\n\r\t\v\f\x1c\x1d\x1e\x85\u2028\u2029"
# Every other C0 and C1 control character and DEL, and the bidirectional embeddings, overrides and isolates that
# make a terminal show text in another order than it is (U+202A-U+202E, U+2066-U+2069): shown as their escape,
# e.g. \x1b, \u202e.
_BIDI = "\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(f"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f{_BIDI}]")
_BREAKS = re.compile(f"[{re.escape(_LINE_BREAKS)}]+")
_UNSAFE = re.compile(f"[{re.escape(_LINE_BREAKS)}\x00-\x1f\x7f-\x9f{_BIDI}]")


def _escape(match: re.Match) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` on one line: where it breaks lines, its runs of white space one space (the spaces it starts with,
    its indentation, kept); every other control character shown as its escape (``\\x1b``, ``\\u202e``)."""
    if not _UNSAFE.search(text):
        return text
    if _BREAKS.search(text):
        indent = text[:len(text) - len(text.lstrip(" "))]
        text = indent + " ".join(text.split())
    return _CONTROLS.sub(_escape, text)


def visible_lines(text: str) -> list[str]:
    """``text``'s lines (split at any line break, CR and CR LF included), each made ``visible``."""
    return [visible(line) for line in text.splitlines()]
