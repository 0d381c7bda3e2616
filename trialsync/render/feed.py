"""A topic's changes as an Atom feed (RFC 4287): one entry per study and pull, its changes as a small old/new
HTML table, and the file the feed is written to, rewritten only when its bytes would change.

Every time in the feed comes from the data (when each pull finished), never from the clock, so the same
changes always give the same bytes. Record text is untrusted: it is XML-escaped everywhere, and escaped as
HTML too inside an entry's HTML content, so a title holding ``<script>`` stays text in any feed reader.
"""

from __future__ import annotations

import html
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from ..change_kinds import FIELD_NAMES
from ..errors import UsageError
from ..ids import study_url
from ..topics import validate_topic_name
from .export import check_export_target, write_whole
from .visible import visible
from .words import describe_change, plural, show_value

ATOM = "http://www.w3.org/2005/Atom"
ID_PREFIX = "tag:trialsync,2026:"  # RFC 4151 tag URIs, minted from stable data: the topic, pull id and NCT id
DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'
# How every feed trialsync writes begins: a file that begins otherwise is not one of ours, and is never replaced.
FEED_HEAD = f'{DECLARATION}<feed xmlns="{ATOM}">\n  <id>{ID_PREFIX}'
# Characters XML 1.0 cannot hold at all (not even escaped); ``visible`` has already shown the C0 and C1 controls.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value) -> str:
    """Record text on one line, every control character shown as its escape, nothing XML cannot hold."""
    return _NOT_XML.sub(lambda match: f"\\u{ord(match.group(0)):04x}", visible(str(value)))


def feed_id(topic: str) -> str:
    """The feed's id: the same for a topic's feed wherever and whenever it is written."""
    return f"{ID_PREFIX}{quote(topic, safe='')}"


def entry_id(topic: str, pull_id: int, nct_id: str) -> str:
    """An entry's id, from the topic, the pull that observed its changes and the study: rewriting the feed
    gives each entry the id it had, so a feed reader never shows one twice."""
    return f"{feed_id(topic)}/{int(pull_id)}/{quote(nct_id, safe='')}"


def _entry_title(entry: dict) -> str:
    changes = entry["changes"]
    if len(changes) == 1:
        summary = describe_change(changes[0])
    else:
        names = dict.fromkeys(FIELD_NAMES.get(c["field"], c["field"]) for c in changes)
        summary = f"{entry['nct_id']}: {plural(len(changes), 'change')} ({', '.join(names)})"
    return _text(f"{summary} ({entry['brief_title']})" if entry.get("brief_title") else summary)


def _what(change: dict) -> str:
    name = FIELD_NAMES.get(change["field"], change["field"])
    return f"{name}: {change['item']}" if change.get("item") else name


def _entry_html(entry: dict) -> str:
    """The entry's content: a link to the study page, then one row per change (what, old, new); every value
    HTML-escaped (the whole is XML-escaped again when written)."""
    cell = lambda value: html.escape(_text(value), quote=True)  # noqa: E731
    heading = entry["nct_id"] + (f" {entry['brief_title']}" if entry.get("brief_title") else "")
    rows = "".join(f"<tr><td>{cell(_what(c))}</td><td>{cell(show_value(c['field'], c['old']))}</td>"
                   f"<td>{cell(show_value(c['field'], c['new']))}</td></tr>" for c in entry["changes"])
    return (f'<p><a href="{cell(study_url(entry["nct_id"]))}">{cell(heading)}</a></p>'
            f"<table><tr><th>Change</th><th>Old</th><th>New</th></tr>{rows}</table>")


def render_feed(feed: dict) -> str:
    """The Atom feed of ``feed`` (as ``reports.changes.feed_entries`` gives it: ``topic``, ``updated``,
    ``entries``), as text beginning with ``FEED_HEAD``; the same data always gives the same text."""
    topic = feed["topic"]
    root = ET.Element("feed", xmlns=ATOM)
    ET.SubElement(root, "id").text = feed_id(topic)
    ET.SubElement(root, "title").text = _text(f"trialsync: changes in {topic}")
    ET.SubElement(root, "subtitle").text = _text(
        f"What changed in the ClinicalTrials.gov studies of topic {topic}, one entry per study and pull")
    ET.SubElement(root, "updated").text = feed["updated"]
    ET.SubElement(ET.SubElement(root, "author"), "name").text = "trialsync"
    ET.SubElement(root, "generator").text = "trialsync"
    for entry in feed["entries"]:
        element = ET.SubElement(root, "entry")
        ET.SubElement(element, "id").text = entry_id(topic, entry["pull_id"], entry["nct_id"])
        ET.SubElement(element, "title").text = _entry_title(entry)
        ET.SubElement(element, "updated").text = entry["updated"]
        ET.SubElement(element, "link", rel="alternate", type="text/html", href=study_url(entry["nct_id"]))
        ET.SubElement(element, "content", type="html").text = _entry_html(entry)
    ET.indent(root)
    return DECLARATION + ET.tostring(root, encoding="unicode") + "\n"


def feed_path(directory: Path, topic: str) -> Path:
    """``DIR/<topic>.atom``; UsageError for a topic name that is not a plain one (which could name a file
    outside ``directory``: a stored name is checked again, whatever wrote it)."""
    validate_topic_name(topic)
    path = directory / f"{topic}.atom"
    if path.parent != directory or path.name != f"{topic}.atom":
        raise UsageError(f"topic name {topic!r} cannot name a feed file")
    return path


def check_feed_directory(directory: Path) -> None:
    """UsageError unless ``directory`` is a directory a file can be created in (tried, not guessed from the
    permission bits, which say nothing of a read-only file system or of root)."""
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise UsageError(f"--feed: {directory} {what}; name a directory for the feeds")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".trialsync-", suffix=".partial"):
            pass
    except OSError as exc:
        raise UsageError(f"--feed: cannot write in {directory}: {exc.strerror or exc}") from None


def write_feed_file(output: Path, text: str, protected: Iterable[Path] = ()) -> bool:
    """Write the feed ``text`` to ``output`` whole or not at all (as ``render.export.write_whole``), unless the
    file already holds exactly these bytes: then it is not touched at all (nor its modification time).
    Returns whether it was written. An existing file that is not a trialsync feed (by its first bytes) or
    is one of ``protected`` (the database's files) is refused with UsageError."""
    check_export_target(output, force=True, protected=protected)
    data = text.encode("utf-8")
    held = _held_bytes(output, len(data) + 1)
    if held == data:
        return False
    _refuse_if_not_a_feed(output, held)
    write_whole(output, lambda out: out.write(text))
    return True


def _held_bytes(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of the file at ``path`` (none when there is no such file); UsageError when it
    cannot be read."""
    if not path.is_file():
        return b""
    try:
        with open(path, "rb") as existing:
            return existing.read(size)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _refuse_if_not_a_feed(path: Path, held: bytes) -> None:
    """UsageError when ``held``, the first bytes of an existing file, are not those of a trialsync feed."""
    if held and not held.startswith(FEED_HEAD.encode()):
        raise UsageError(f"{path} exists and is not a trialsync feed; choose another file or remove it")


def check_feed_files(directory: Path, topic_names: Iterable[str], protected: Iterable[Path] = ()) -> None:
    """UsageError, before the work that fills them, for a feed of ``topic_names`` that could not be written in
    ``directory``: a name that cannot name a file there, one of ``protected``, or an existing file that is
    not a trialsync feed (so that cron never hears of a usage error after a pull that did its work)."""
    protected = list(protected)
    for name in topic_names:
        path = feed_path(directory, name)
        check_export_target(path, force=True, protected=protected)
        _refuse_if_not_a_feed(path, _held_bytes(path, len(FEED_HEAD.encode())))


def write_feeds(directory: Path, feeds: Iterable[dict], protected: Iterable[Path] = ()) -> list[Path]:
    """Write each of ``feeds`` (as ``render_feed`` takes them) to ``DIR/<topic>.atom`` with ``write_feed_file``:
    a file whose feed did not change is left as it is. Returns the files written. Check ``directory`` with
    ``check_feed_directory`` before the work that fills the feeds."""
    protected = list(protected)
    written = []
    for feed in feeds:
        path = feed_path(directory, feed["topic"])
        if write_feed_file(path, render_feed(feed), protected):
            written.append(path)
    return written
