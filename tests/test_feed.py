"""The Atom feed of a topic's changes (``feed``, ``pull --feed DIR``), read back with feedparser as a feed
reader would and with the standard library's strict XML parser: each change of a pull listed with its old
and new value, one entry per study and pull, ids that survive rewrites, the newest 100 entries, record text
that stays text, and a file left untouched when nothing changed. Pulls run against the stand-in API."""

from __future__ import annotations

import os
import sqlite3
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record, table_dump, with_status
from fakeapi import Corpus, FakeApi, clone_id

ATOM = "{http://www.w3.org/2005/Atom}"
TERMINATED = "NCT05489822"  # recruiting in its real record; terminated by the second pull here
GONE = "NCT04056520"  # no longer served at the second pull
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
LONG_AGO = 1_000_000_000  # a modification time no write could give the file


@pytest.fixture
def clock(monkeypatch):
    """The time trialsync reads: ``clock['now']``."""
    from trialsync import dates

    now = {"now": "2026-11-20T10:00:00Z"}
    monkeypatch.setattr(dates, "utc_now", lambda: now["now"])
    return now


@pytest.fixture
def spine():
    """The stand-in API serving the 13 spine records."""
    with FakeApi(Corpus([fixture_record(nct_id) for nct_id in SPINE_CONDITION_IDS])) as server:
        yield server


class _Cells(HTMLParser):
    """An entry's HTML content: its tags, its links and the text of each table row's cells."""

    def __init__(self):
        super().__init__()
        self.tags, self.links, self.rows, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "a":
            self.links.append(dict(attrs)["href"])
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self.rows[-1].append("")

    def handle_data(self, data):
        self.text.append(data)
        if self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def raw_entries(path: Path) -> dict[str, _Cells]:
    """Each entry's id -> its HTML content as parsed, from the file read by a strict XML parser."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{ATOM}feed"
    found = {}
    for entry in root.iter(f"{ATOM}entry"):
        content = entry.find(f"{ATOM}content")
        assert content.get("type") == "html"
        cells = _Cells()
        cells.feed(content.text)
        cells.close()
        found[entry.findtext(f"{ATOM}id")] = cells
    return found


def read_feed(path: Path):
    """The feed as a feed reader sees it; it must be well-formed Atom."""
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def pull(cli, server, *topics: str, feeds: Path) -> None:
    result = cli("pull", *topics, "--api-url", server.url, "--feed", str(feeds), "--quiet")
    assert result.code == 0, result


def first_fill(cli, server, feeds: Path) -> None:
    assert cli("topics", "add", "spine", "--condition", "spine").code == 0
    pull(cli, server, feeds=feeds)


def change_the_spine(server, clock) -> None:
    """The second pull's news: TERMINATED terminated and GONE no longer served, on 2026-11-22."""
    clock["now"] = "2026-11-22T10:00:00Z"
    server.data_timestamp = "2026-11-22T09:00:00"
    server.corpus.put(with_status(fixture_record(TERMINATED), "TERMINATED", updated="2026-11-22"))
    server.corpus.remove(GONE)


def test_the_feed_lists_each_change_of_a_pull_with_old_and_new_one_entry_per_study(cli, spine, clock, tmp_path):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    first_fill(cli, spine, feeds)
    before = read_feed(feeds / "spine.atom")
    assert before.feed.id == "tag:trialsync,2026:spine"
    assert before.entries == []  # a first pull is no news, as in the digest
    assert before.feed.updated == "2026-11-20T10:00:00Z"  # when the topic was added: an empty feed has a time too

    change_the_spine(spine, clock)
    pull(cli, spine, feeds=feeds)
    after = read_feed(feeds / "spine.atom")
    assert [e.id for e in after.entries] == [f"tag:trialsync,2026:spine/2/{TERMINATED}", f"tag:trialsync,2026:spine/2/{GONE}"]
    assert after.feed.updated == "2026-11-22T10:00:00Z"
    for entry in after.entries:
        assert entry.updated == "2026-11-22T10:00:00Z"  # the pull's finished time
        assert entry.link == f"https://clinicaltrials.gov/study/{entry.id.rsplit('/', 1)[1]}"
    assert after.entries[0].title.startswith(f"{TERMINATED} status: Recruiting -> Terminated (PMCF Study")
    assert after.entries[1].title.startswith(f"{GONE} left the topic (")

    # every status change of the last pull, as `changes --pulls 1` lists it, is in the feed with old and new
    import json

    changes = json.loads(cli("changes", "spine", "--pulls", "1", "--format", "json").out)
    statuses = [c for c in changes if c["field"] == "overall_status"]
    assert statuses and all(c["old"] and c["new"] for c in statuses)
    contents = raw_entries(feeds / "spine.atom")
    for change in statuses:
        rows = contents[f"tag:trialsync,2026:spine/2/{change['nct_id']}"].rows
        assert rows[0] == ["Change", "Old", "New"]
        assert ["status", change["old"].title(), change["new"].title()] in rows[1:]
    assert contents[f"tag:trialsync,2026:spine/2/{GONE}"].rows[1:] == [["topic membership", "present", "left"]]

    # `feed` writes the very same feed; without -o, to standard output
    assert cli("feed", "spine").out == (feeds / "spine.atom").read_text()


def test_a_pull_without_changes_leaves_the_feed_byte_identical_and_unwritten(cli, spine, clock, tmp_path):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    first_fill(cli, spine, feeds)
    change_the_spine(spine, clock)
    pull(cli, spine, feeds=feeds)
    path = feeds / "spine.atom"
    written = path.read_bytes()
    os.utime(path, (LONG_AGO, LONG_AGO))

    clock["now"] = "2026-11-23T10:00:00Z"  # a new day and a new release of the API's data, but no change
    spine.data_timestamp = "2026-11-23T09:00:00"
    pull(cli, spine, feeds=feeds)
    pull(cli, spine, feeds=feeds)  # and once more: the API data unchanged
    assert path.read_bytes() == written
    assert path.stat().st_mtime == LONG_AGO  # compared and skipped, not rewritten with the same bytes
    result = cli("feed", "spine", "-o", str(path))
    assert result.code == 0 and "left as it was" in result.err
    assert path.stat().st_mtime == LONG_AGO
    assert sorted(p.name for p in feeds.iterdir()) == ["spine.atom"]  # no partial file left behind


def test_entry_ids_stay_the_same_across_rewrites_and_no_entry_is_repeated(cli, spine, clock, tmp_path):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    first_fill(cli, spine, feeds)
    change_the_spine(spine, clock)
    pull(cli, spine, feeds=feeds)
    before = read_feed(feeds / "spine.atom")
    contents = raw_entries(feeds / "spine.atom")

    # the same study changes again: a new entry for the new pull, the old one kept as it was
    clock["now"] = "2026-11-25T10:00:00Z"
    spine.data_timestamp = "2026-11-25T09:00:00"
    spine.corpus.put(with_status(fixture_record(TERMINATED), "COMPLETED", updated="2026-11-25"))
    pull(cli, spine, feeds=feeds)
    after = read_feed(feeds / "spine.atom")
    ids = [e.id for e in after.entries]
    assert len(ids) == len(set(ids)) == 3
    assert ids[0] == f"tag:trialsync,2026:spine/3/{TERMINATED}"
    assert ids[1:] == [e.id for e in before.entries]
    assert [(e.title, e.updated) for e in after.entries[1:]] == [(e.title, e.updated) for e in before.entries]
    rewritten = raw_entries(feeds / "spine.atom")
    assert all(rewritten[i].rows == contents[i].rows for i in contents)
    assert rewritten[ids[0]].rows[1:] == [["status", "Terminated", "Completed"]]
    assert after.entries[0].updated == after.feed.updated == "2026-11-25T10:00:00Z"


def test_pull_feed_writes_one_feed_per_topic_it_pulled(cli, spine, clock, tmp_path):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    first_fill(cli, spine, feeds)
    assert cli("topics", "add", "mine", "--ids", TERMINATED).code == 0
    change_the_spine(spine, clock)
    pull(cli, spine, feeds=feeds)  # every stored topic
    assert sorted(p.name for p in feeds.iterdir()) == ["mine.atom", "spine.atom"]
    # mine's first pull (pull 2) saw the shared study's change: news in both topics, each feed with its own ids
    assert [e.id for e in read_feed(feeds / "mine.atom").entries] == [f"tag:trialsync,2026:mine/2/{TERMINATED}"]
    assert [e.id for e in read_feed(feeds / "spine.atom").entries] == [
        f"tag:trialsync,2026:spine/3/{GONE}", f"tag:trialsync,2026:spine/2/{TERMINATED}"]  # newest pull first
    clock["now"] = "2026-11-25T10:00:00Z"
    spine.data_timestamp = "2026-11-25T09:00:00"
    spine.corpus.put(with_status(fixture_record(TERMINATED), "COMPLETED", updated="2026-11-25"))
    pull(cli, spine, "spine", feeds=feeds)  # one topic: the other's feed waits for its own pull
    assert [e.id for e in read_feed(feeds / "spine.atom").entries][0] == f"tag:trialsync,2026:spine/4/{TERMINATED}"
    assert len(read_feed(feeds / "mine.atom").entries) == 1
    pull(cli, spine, "mine", feeds=feeds)
    assert [e.id for e in read_feed(feeds / "mine.atom").entries] == [
        f"tag:trialsync,2026:mine/4/{TERMINATED}", f"tag:trialsync,2026:mine/2/{TERMINATED}"]


def test_the_feed_keeps_the_newest_100_entries(cli, clock, tmp_path):
    corpus = Corpus(clones=120)
    with FakeApi(corpus) as server:
        assert cli("topics", "add", "many", "--condition", "x").code == 0
        assert cli("pull", "many", "--api-url", server.url, "--quiet").code == 0
        for day, clones in (("2026-11-21", range(0, 60)), ("2026-11-22", range(60, 120))):
            clock["now"] = f"{day}T10:00:00Z"
            server.data_timestamp = f"{day}T09:00:00"
            for index in clones:
                record = corpus.get(clone_id(index))
                status = record["protocolSection"]["statusModule"]["overallStatus"]
                corpus.put(with_status(record, "WITHDRAWN" if status != "WITHDRAWN" else "SUSPENDED", updated=day))
            assert cli("pull", "many", "--api-url", server.url, "--quiet").code == 0
    path = tmp_path / "many.atom"
    assert cli("feed", "many", "-o", str(path)).code == 0
    entries = read_feed(path).entries
    assert len(entries) == 100
    studies = [e.id.rsplit("/", 1)[1] for e in entries]
    # the last pull's 60, then the 40 newest-observed of the one before, in the order `changes` lists them
    assert studies == [clone_id(i) for i in range(60, 120)] + [clone_id(i) for i in range(0, 40)]
    assert [e.updated for e in entries] == ["2026-11-22T10:00:00Z"] * 60 + ["2026-11-21T10:00:00Z"] * 40


def test_record_text_stays_text_in_the_feed(cli, spine, clock, tmp_path):
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    first_fill(cli, spine, feeds)
    clock["now"] = "2026-11-22T10:00:00Z"
    spine.data_timestamp = "2026-11-22T09:00:00"
    hostile = with_status(fixture_record(TERMINATED), "TERMINATED", updated="2026-11-22")
    # a real record whose title holds markup, a terminal escape and a character XML cannot hold at all
    hostile["protocolSection"]["identificationModule"]["briefTitle"] = f"{HOSTILE} \x1b[31mred\ufffe"
    spine.corpus.put(hostile)
    pull(cli, spine, feeds=feeds)

    path = feeds / "spine.atom"
    parsed = read_feed(path)  # well-formed: the strict parser below would refuse it otherwise too
    (entry,) = parsed.entries
    assert HOSTILE in entry.title and "\\x1b[31mred\\ufffe" in entry.title
    (cells,) = raw_entries(path).values()
    assert set(cells.tags) == {"p", "a", "table", "tr", "th", "td"}  # no script, no img: the title stayed text
    assert cells.links == [f"https://clinicaltrials.gov/study/{TERMINATED}"]
    assert f"{TERMINATED} {HOSTILE} \\x1b[31mred\\ufffe" in "".join(cells.text)
    assert "<script>" not in path.read_text()


def test_feed_errors_are_one_line_with_their_exit_code(cli, spine, clock, tmp_path):
    first_fill(cli, spine, tmp_path)
    spine.reset_log()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    for target, code, words in ((tmp_path / "missing", 2, "does not exist"), (a_file, 2, "is not a directory")):
        result = cli("pull", "spine", "--api-url", spine.url, "--feed", str(target))
        assert (result.code, result.out) == (code, ""), result
        assert result.err.count("\n") == 1 and words in result.err, result
    assert spine.requests == []  # refused before pulling
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "spine.atom").write_text("mine\n")  # the file the pull would write is not a feed
    before = table_dump(sqlite3.connect(tmp_path / "cli.db"))
    result = cli("pull", "spine", "--api-url", spine.url, "--feed", str(feeds))
    assert (result.code, result.out) == (2, "") and "spine.atom exists and is not a trialsync feed" in result.err, result
    assert spine.requests == [] and (feeds / "spine.atom").read_text() == "mine\n"
    assert table_dump(sqlite3.connect(tmp_path / "cli.db")) == before
    result = cli("feed", "nosuch")
    assert result.code == 1 and result.err.count("\n") == 1 and "unknown topic 'nosuch'" in result.err
    result = cli("feed", "spine", "-o", str(a_file))  # a file that is not a feed is never replaced
    assert result.code == 2 and result.err.count("\n") == 1 and "is not a trialsync feed" in result.err
    assert a_file.read_text() == "mine\n"
    result = cli("feed", "spine", "-o", str(tmp_path / "cli.db"))
    assert result.code == 2 and "part of the database" in result.err
    result = cli("feed", "spine", "-o", str(tmp_path / "no" / "such" / "dir.atom"))
    assert result.code == 2 and result.err.count("\n") == 1 and "cannot write" in result.err


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs /sys, a directory no one may create files in")
def test_a_feed_directory_no_file_can_be_created_in_is_refused(cli, tmp_path):
    result = cli("pull", "--feed", "/sys")
    assert result.code == 2 and result.err.count("\n") == 1 and "cannot write in /sys" in result.err, result


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "/etc/passwd", "", "UPPER"])
def test_a_feed_file_name_cannot_leave_its_directory(tmp_path, name):
    from trialsync.errors import UsageError
    from trialsync.render.feed import feed_path

    with pytest.raises(UsageError):
        feed_path(tmp_path, name)
    assert feed_path(tmp_path, "spine-2.x") == tmp_path / "spine-2.x.atom"
