"""Text from the registry cannot forge output: control characters in a record (ESC sequences, BEL, CR, new
lines, C1, DEL) never reach a table, plain text, markdown, the digest or show as such; JSON and CSV keep the
value exactly. The record is a real one with its texts changed here, so the change is visible."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from conftest import fixture_record, with_status
from fakeapi import Corpus, FakeApi

NCT = "NCT05489822"
# An OSC that retitles the terminal, a bell, a CR LF that starts a fake line of cron mail, a screen clear,
# a C1 CSI and DEL.
EVIL_TITLE = "Spine\x1b]0;pwned\x07 study\r\ntrialsync: 0 changes in watch\x1b[2J\x9b31m end\x7f"
EVIL_SPONSOR = "Evil\x1b[31m Sponsor\x08\x08"
EVIL_CONDITION = "Back\x1bpain\x0b"
EVIL_CITY = "Chi\x07cago\u2028Fake"
# What may never reach human output: every C0 but new line, DEL, every C1; and the fake line at a line start.
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028]")


def evil(record: dict) -> dict:
    p = record["protocolSection"]
    p["identificationModule"]["briefTitle"] = EVIL_TITLE
    p["sponsorCollaboratorsModule"]["leadSponsor"]["name"] = EVIL_SPONSOR
    p["conditionsModule"]["conditions"][0] = EVIL_CONDITION
    p["contactsLocationsModule"]["locations"][0]["city"] = EVIL_CITY
    p["descriptionModule"]["briefSummary"] = "Line one\x1b[2J\rline two\n\x9b\x07three"
    return record


@pytest.fixture
def watched(cli, monkeypatch):
    """A watchlist of the changed record, pulled twice from the stand-in: the second pull sees its status
    change, so its digest names the title."""
    monkeypatch.setenv("COLUMNS", "100")
    record = evil(fixture_record(NCT))
    corpus = Corpus([record])
    with FakeApi(corpus) as server:
        assert cli("topics", "add", "watch", "--ids", NCT).code == 0
        assert cli("pull", "watch", "--api-url", server.url).code == 0
        corpus.put(with_status(record, "SUSPENDED", updated="2026-11-25"))
        server.data_timestamp = "2026-11-25T09:00:00"
        cli.digest = cli("pull", "watch", "--api-url", server.url)
    assert cli.digest.code == 0, cli.digest
    return cli


HUMAN_COMMANDS = [("list", "watch"), ("list", "watch", "--near", "41.85,-87.65"), ("show", NCT),
                  ("show", NCT, "--near", "41.85,-87.65", "--sites", "all"), ("changes", "watch"),
                  ("status-report", "watch"), ("status-report", "watch", "--by", "sponsor"),
                  ("status-report", "watch", "--by", "condition"), ("history", "watch"), ("topics", "list"),
                  ("pulls",)]


def assert_clean(text: str, where) -> None:
    found = FORBIDDEN.findall(text)
    assert not found, (where, found)
    assert not re.search(r"^trialsync: 0 changes", text, re.M), where


def test_the_digest_of_a_pull_shows_control_characters_visibly(watched):
    out = watched.digest.out
    assert_clean(out + watched.digest.err, "pull digest")
    assert "Recruiting -> Suspended" in out
    assert "Spine\\x1b]0;pwned\\x07 study trialsync: 0 changes in watch\\x1b[2J\\x9b31m end\\x7f" in " ".join(
        out.split())


@pytest.mark.parametrize("fmt", ["table", "text", "markdown"])
@pytest.mark.parametrize("terminal", [True, False])
def test_no_control_character_reaches_a_human_format(watched, monkeypatch, fmt, terminal):
    from trialsync.cli import options

    monkeypatch.setattr(options, "is_terminal", lambda: terminal)
    for args in HUMAN_COMMANDS:
        if args[0] == "show" and fmt == "markdown":
            continue  # show prints table or text for a person, json for scripts
        result = watched(*args, "-f", fmt)
        assert result.code == 0, (args, result)
        assert_clean(result.out + result.err, (args, fmt))
    listed = " ".join(watched("list", "watch", "-f", fmt).out.split())
    assert "\\x1b" in listed or "…" in listed  # shown visibly (or shortened away), not dropped silently


def test_show_keeps_the_words_around_the_control_characters(watched):
    out = watched("show", NCT, "-f", "text").out
    assert_clean(out, "show")
    flat = " ".join(out.split())
    assert "Evil\\x1b[31m Sponsor\\x08\\x08" in flat
    assert "Back\\x1bpain" in flat
    summary = out.split("Summary:\n")[1].split("\n\n")[0].splitlines()
    assert [line.strip() for line in summary] == ["Line one\\x1b[2J", "line two", "\\x9b\\x07three"]
    assert all(line.startswith("  ") for line in summary)  # a record's new line cannot start a line of ours


def test_json_and_csv_keep_the_values_exactly(watched):
    for args in (("list", "watch"), ("export", "watch")):
        rows = json.loads(watched(*args, "-f", "json").out)
        assert rows[0]["brief_title"] == EVIL_TITLE and rows[0]["lead_sponsor"] == EVIL_SPONSOR, args
        lines = [json.loads(line) for line in watched(*args, "-f", "nl").out.splitlines()]
        assert lines[0]["brief_title"] == EVIL_TITLE, args
        cells = list(csv.DictReader(io.StringIO(watched(*args, "-f", "csv").out, newline="")))
        assert cells[0]["brief_title"] == EVIL_TITLE and cells[0]["lead_sponsor"] == EVIL_SPONSOR, args
    exported = json.loads(watched("export", "watch", "-f", "json").out)[0]
    assert exported["conditions"][0] == EVIL_CONDITION
    changes = json.loads(watched("changes", "watch", "-f", "json").out)
    assert any(c.get("brief_title") == EVIL_TITLE for c in changes)
    near = json.loads(watched("list", "watch", "--near", "41.85,-87.65", "-f", "json").out)
    assert near[0]["nearest_site"]["city"] in (EVIL_CITY, "Chicago")


def test_an_error_naming_record_text_is_one_visible_line(watched):
    result = watched("list", "watch", "--near", "Chi\x07cago\u2028Fake, Nowhere")
    assert result.code == 2
    assert result.err.count("\n") == 1 and not FORBIDDEN.search(result.err)
