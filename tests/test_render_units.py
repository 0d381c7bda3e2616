"""Fast unit tests of trialsync/render: each renderer called on small rows built here, its exact text checked
(no database, no CLI). Written to kill the mutants mutation testing found no other test told apart."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from types import SimpleNamespace as NS

import orjson
import pytest

from trialsync.errors import TrialsyncError, UsageError
from trialsync.render import changes as ch
from trialsync.render import export as ex
from trialsync.render import status as st
from trialsync.render import studies as sd
from trialsync.render import tables as tb
from trialsync.render import words as wd
from trialsync.render.formats import to_json, to_json_lines
from trialsync.render.tables import Column


@pytest.fixture(autouse=True)
def _width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


_STATES = {"KY": {"name": "Kentucky"}, "IL": {"name": "Illinois"}, "GA": {"name": "Georgia"}}


@pytest.fixture(autouse=True)
def _few_states(monkeypatch):
    """A site's state is coded from three states, not the whole gazetteer (loading it takes most of a second)."""
    from trialsync import places

    monkeypatch.setattr(places, "_regions", lambda: ({}, _STATES))


# ---------------------------------------------------------------- formats


def test_to_json_indents_by_two_and_json_lines_are_compact():
    assert to_json({"a": [1, None]}) == '{\n  "a": [\n    1,\n    null\n  ]\n}'
    assert to_json_lines([{"a": 1}, [2, "x"]]) == '{"a":1}\n[2,"x"]'
    assert to_json_lines([]) == ""


# ---------------------------------------------------------------- tables


def test_column_cell_and_cells_show_values_on_one_line():
    plain = Column("k", "K")
    shown = Column("k", "K", show=lambda v: f"<{v}>")
    rows = [{"k": None}, {"k": 3}, {"k": "a\x1bb"}, {}]
    assert [plain.cell(r) for r in rows] == ["", "3", "a\\x1bb", ""]
    assert plain.cells(rows) == ["", "3", "a\\x1bb", ""]
    assert [shown.cell(r) for r in rows] == ["<None>", "<3>", "<a\\x1bb>", "<None>"]
    assert shown.cells(rows) == ["<None>", "<3>", "<a\\x1bb>", "<None>"]
    assert Column("k", "K").numeric is False and Column("k", "K").flex is False
    assert Column("k", "K").min_width == 12 and Column("k", "K").drop == 0 and Column("k", "K").show is None


def test_terminal_width_reads_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "57")
    assert tb.terminal_width() == 57
    monkeypatch.delenv("COLUMNS")
    assert tb.terminal_width() > 0


def test_sentence_wraps_keeps_its_lines_and_never_splits_a_word(monkeypatch):
    assert tb.sentence("aaa bbb ccc", 7) == "aaa bbb\nccc"
    assert tb.sentence("one\ntwo x\x1b", 80) == "one\ntwo x\\x1b"
    assert tb.sentence("NCT01234567890 z", 5) == "NCT01234567890\nz"
    assert tb.sentence("a-b-c-d e", 4) == "a-b-c-d\ne"
    monkeypatch.setenv("COLUMNS", "9")
    assert tb.sentence("aaaa bbbb cccc") == "aaaa bbbb\ncccc"


def test_shorten():
    assert tb.shorten("abcdef", 6) == "abcdef"
    assert tb.shorten("abcdef", 5) == "abcd…"
    assert tb.shorten("abcdef", 1) == "…"
    assert tb.shorten("abcdef", 0) == "…"


def _fit(columns, cells, width, overhead=lambda n: 0):
    return tb.fit(columns, cells, width, overhead)


def test_fit_keeps_natural_widths_when_they_fit():
    cols = [Column("a", "AAAA"), Column("b", "B", flex=True, min_width=2)]
    assert _fit(cols, [["x", "yyyyy"]], 9) == ([0, 1], [4, 5])
    assert _fit(cols, [], 100) == ([0, 1], [4, 1])
    assert _fit(cols, [["x", "yyyyy"]], 15, lambda n: 3 * n) == ([0, 1], [4, 5])
    assert _fit(cols, [["x", "yyyyy"]], 14, lambda n: 3 * n) == ([0, 1], [4, 4])


def test_fit_shortens_flex_columns_down_to_their_floor_then_drops():
    cols = [Column("a", "A"), Column("b", "Bee", flex=True, min_width=2), Column("c", "C", flex=True, min_width=4)]
    cells = [["x", "bbbbbbbbbb", "cccccccccc"]]
    # most dispensable first: equal drops keep the columns' order
    assert _fit(cols, cells, 18) == ([0, 1, 2], [1, 7, 10])
    assert _fit(cols, cells, 8) == ([0, 1, 2], [1, 3, 4])  # a header is a floor too
    assert _fit(cols, cells, 7) == ([0, 1, 2], [1, 3, 4])  # nothing to drop: as narrow as it can be
    cols = [Column("a", "A"), Column("b", "B", flex=True, min_width=2),
            Column("c", "C", flex=True, min_width=4, drop=1)]
    assert _fit(cols, cells, 18) == ([0, 1, 2], [1, 10, 7])  # the droppable one is shortened first
    assert _fit(cols, cells, 16) == ([0, 1, 2], [1, 10, 5])
    assert _fit(cols, cells, 14) == ([0, 1, 2], [1, 9, 4])
    assert _fit(cols, cells, 6) == ([0, 1], [1, 5])
    assert _fit(cols, cells, 2) == ([0, 1], [1, 2])


def test_fit_drops_the_highest_drop_first_and_the_last_of_equals():
    cols = [Column("a", "A"), Column("b", "B", drop=2), Column("c", "C", drop=1), Column("d", "D", drop=1)]
    cells = [["aa", "bb", "cc", "dd"]]
    assert _fit(cols, cells, 8) == ([0, 1, 2, 3], [2, 2, 2, 2])
    assert _fit(cols, cells, 7) == ([0, 2, 3], [2, 2, 2])
    assert _fit(cols, cells, 5) == ([0, 2], [2, 2])
    assert _fit(cols, cells, 3) == ([0], [2])
    assert _fit(cols, cells, 1) == ([0], [2])
    assert _fit(cols, cells, 7, lambda n: n) == ([0, 2], [2, 2])


ROWS = [{"id": 1, "t": "a long title here", "x": "xx"}, {"id": 22, "t": "b*c", "x": None}]
COLS = [Column("id", "#", numeric=True), Column("t", "Title", flex=True, min_width=5), Column("x", "Extra", drop=1)]


def test_rows_as_json_nl_and_csv():
    assert tb.rows_as(ROWS, COLS, "json") == [to_json(ROWS)]
    assert tb.rows_as(ROWS, COLS, "json", data=[{"z": 1}]) == [to_json([{"z": 1}])]
    assert tb.rows_as(ROWS, COLS, "json", data=[]) == ["[]"]
    assert tb.rows_as(ROWS, COLS, "nl") == ['{"id":1,"t":"a long title here","x":"xx"}\n{"id":22,"t":"b*c","x":null}']
    assert tb.rows_as(ROWS, COLS, "nl", data=[{"z": 1}]) == ['{"z":1}']
    assert tb.rows_as([], COLS, "nl") == []
    assert tb.rows_as(ROWS, COLS, "nl", data=[]) == []
    assert tb.rows_as([], COLS, "nl", data=[{"z": 1}]) == ['{"z":1}']
    assert tb.rows_as(ROWS, COLS, "csv") == ["id,t,x\n1,a long title here,xx\n22,b*c,"]
    assert tb.rows_as([{"id": [1, 2], "t": True, "x": "a,b"}], COLS, "csv") == ['id,t,x\n1; 2,true,"a,b"']
    assert tb.rows_as([], COLS, "csv") == ["id,t,x"]


def test_rows_as_markdown():
    assert tb.rows_as(ROWS, COLS, "markdown", title="T|1") == [
        "**T\\|1**\n\n| # | Title | Extra |\n| ---: | --- | --- |\n| 1 | a long title here | xx |\n| 22 | b\\*c |  |"]
    # a header is made visible, then its backslash escaped for markdown, as a cell is
    assert tb.rows_as([], [Column("a", "A\x1b")], "markdown") == ["| A\\\\x1b |\n| --- |"]
    assert tb.rows_as(ROWS[:1], COLS, "markdown", title="") == [
        "| # | Title | Extra |\n| ---: | --- | --- |\n| 1 | a long title here | xx |"]


def test_rows_as_text_fits_the_width():
    assert tb.rows_as(ROWS, COLS, "text", title="T\x1b") == [
        "T\\x1b\n #  Title              Extra\n 1  a long title here  xx\n22  b*c"]
    assert tb.rows_as(ROWS, COLS, "text") == [" #  Title              Extra\n 1  a long title here  xx\n22  b*c"]
    assert tb.rows_as(ROWS, COLS, "text", width=20) == [" #  Title      Extra\n 1  a long t…  xx\n22  b*c"]
    assert tb.rows_as(ROWS, COLS, "text", width=21) == [" #  Title       Extra\n 1  a long ti…  xx\n22  b*c"]
    assert tb.rows_as(ROWS, COLS, "text", width=14) == [" #  Title\n 1  a long ti…\n22  b*c"]
    assert tb.rows_as(ROWS, [Column("t", "Title", flex=True, min_width=3)], "text", width=4) == [
        "Title\na lo…\nb*c"]
    assert tb.rows_as(ROWS, COLS, "text", title="aaa bbb", width=5) == [
        "aaa\nbbb\n #  Title\n 1  a lo…\n22  b*c"]


def test_rows_as_text_uses_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    assert tb.rows_as(ROWS, COLS, "text") == [" #  Title      Extra\n 1  a long t…  xx\n22  b*c"]


def _table(blocks):
    table = blocks[-1]
    headers = [c.header.plain for c in table.columns]
    cells = [[cell.plain for cell in c._cells] for c in table.columns]
    return table, headers, cells


def test_rows_as_table_is_a_rich_table_of_text_fitted_to_the_width(monkeypatch):
    from rich import box
    from rich.text import Text

    blocks = tb.rows_as(ROWS, COLS, "table", title="Ti\x1btle", width=34)
    assert blocks[0] == "Ti\\x1btle"
    table, headers, cells = _table(blocks)
    assert headers == ["#", "Title", "Extra"]
    assert cells == [["1", "22"], ["a long title here", "b*c"], ["xx", ""]]
    assert [c.justify for c in table.columns] == ["right", "left", "left"]
    assert [(c.min_width, c.max_width) for c in table.columns] == [(2, 2), (17, 17), (5, 5)]
    assert all(c.no_wrap and c.overflow == "ellipsis" for c in table.columns)
    assert all(isinstance(c.header, Text) for c in table.columns)
    assert all(isinstance(cell, Text) for c in table.columns for cell in c._cells)
    assert table.box is box.SIMPLE_HEAD and table.show_edge is False and table.pad_edge is False
    assert table.expand is False
    # 3 per column and 1 more: 2 + 17 + 5 + 10 = 34
    table, headers, cells = _table(tb.rows_as(ROWS, COLS, "table", width=33))
    assert cells[1] == ["a long title he…", "b*c"] and headers == ["#", "Title", "Extra"]
    table, headers, cells = _table(tb.rows_as(ROWS, COLS, "table", width=30))
    assert cells[1] == ["a long title…", "b*c"] and table.columns[1].max_width == 13
    blocks = tb.rows_as(ROWS, COLS, "table", width=20)
    assert len(blocks) == 1
    table, headers, cells = _table(blocks)
    assert headers == ["#", "Title"] and cells[1] == ["a long tit…", "b*c"]
    monkeypatch.setenv("COLUMNS", "20")
    table, headers, cells = _table(tb.rows_as(ROWS, COLS, "table"))
    assert headers == ["#", "Title"]
    assert len(tb.rows_as(ROWS, COLS, "table", title="")) == 1


def test_markdown_text_escapes_what_markdown_reads():
    assert tb.markdown_text(r"a\b`c*d_e[f]g<h|i>") == r"a\\b\`c\*d\_e\[f\]g\<h\|i>"


def test_plain_table_aligns_numbers_right_and_strips_trailing_space():
    assert tb.plain_table(["N", "Name"], [["1", "x"], ["100", "yy"]], [True, False]) == (
        "  N  Name\n  1  x\n100  yy")
    assert tb.plain_table(["N", "Name"], [["1", "x"]], [False, True], [3, 5]) == "N     Name\n1        x"


def test_csv_value():
    assert tb.csv_value(["a", 1]) == "a; 1"
    assert tb.csv_value(("a",)) == "a"
    assert tb.csv_value(True) == "true" and tb.csv_value(False) == "false"
    assert tb.csv_value(0) == 0 and tb.csv_value(None) is None and tb.csv_value("x") == "x"


# ---------------------------------------------------------------- words


def test_show_value():
    assert wd.show_value("overall_status", None) == "none"
    assert wd.show_value("overall_status", "RECRUITING") == "Recruiting"
    assert wd.show_value("site_status", "NOT_YET_RECRUITING") == "Not yet recruiting"
    assert wd.show_value("start_date_type", "ESTIMATED") == "estimated"
    assert wd.show_value("phases", "PHASE1, PHASE2") == "Phase 1/Phase 2"
    assert wd.show_value("phases", "NA") == "Not Applicable"
    assert wd.show_value("enrollment_count", 12) == "12"
    assert wd.show_value("why_stopped", "RECRUITING") == "RECRUITING"


def _change(field, old=None, new=None, item=None, nct_id="NCT1", **more):
    return {"field": field, "old": old, "new": new, "item": item, "nct_id": nct_id, **more}


def test_describe_change_membership():
    assert wd.describe_change(_change("membership", new="added", topic="spine")) == "NCT1 new in the topic"
    assert wd.describe_change(_change("membership", new="added", topic="spine"), name_topic=True) == (
        "NCT1 new in topic spine")
    assert wd.describe_change(_change("membership", new="left", topic=None), name_topic=True) == (
        "NCT1 left the topic")
    assert wd.describe_change(_change("membership", new="present", topic="s"), True) == "NCT1 back in topic s"
    assert wd.describe_change(_change("membership", new="odd", topic="s"), True) == "NCT1 topic s: odd"
    assert wd.describe_change(_change("membership", new="odd")) == "NCT1 the topic: odd"


def test_describe_change_other_fields():
    assert wd.describe_change(_change("warning", new="bad\ndate")) == "NCT1 warning: bad date"
    assert wd.describe_change(_change("site_added", new="RECRUITING", item="Clinic")) == (
        "NCT1 site added: Clinic (Recruiting)")
    assert wd.describe_change(_change("site_added", new=None, item="Clinic")) == "NCT1 site added: Clinic"
    assert wd.describe_change(_change("site_removed", new="x", item="Clinic")) == "NCT1 site removed: Clinic"
    assert wd.describe_change(_change("reference_added", new="RESULT", item="123")) == (
        "NCT1 publication added: PMID 123 (result)")
    assert wd.describe_change(_change("reference_added", new=None, item="Smith 2020")) == (
        "NCT1 publication added: Smith 2020")
    assert wd.describe_change(_change("reference_added", new=None, item=None)) == "NCT1 publication added: None"
    assert wd.describe_change(_change("start_date_type", "ESTIMATED", "ACTUAL", item="x")) == (
        "NCT1 start date: estimated -> actual")
    assert wd.describe_change(_change("overall_status", "RECRUITING", "COMPLETED")) == (
        "NCT1 status: Recruiting -> Completed")
    assert wd.describe_change(_change("site_status", "RECRUITING", None, item="Clinic")) == (
        "NCT1 site status at Clinic: Recruiting -> none")
    assert wd.describe_change(_change("mystery", 1, 2)) == "NCT1 mystery: 1 -> 2"
    assert wd.describe_change(_change("phases", "PHASE1", "PHASE1,PHASE2")) == (
        "NCT1 phases: Phase 1 -> Phase 1/Phase 2")


# ---------------------------------------------------------------- changes


def _logged(**kw):
    base = {"nct_id": "NCT1", "field": "overall_status", "old": "RECRUITING", "new": "COMPLETED", "item": None,
            "observed_at": "2024-05-06T07:08:09Z", "topic": "spine", "reason": None, "brief_title": "A title",
            "id": 1}
    return {**base, **kw}


def test_render_changes_machine_formats_keep_the_api_values():
    c = _logged(extra="dropped")
    keys = list(ch.CHANGE_KEYS)
    assert keys == ["nct_id", "field", "old", "new", "item", "observed_at", "topic", "reason", "brief_title"]
    assert ch.render_changes([c], "json") == [to_json([{k: c[k] for k in keys}])]
    assert ch.render_changes([c], "nl") == [to_json_lines([{k: c[k] for k in keys}])]
    assert ch.render_changes([c], "csv") == [
        "nct_id,field,old,new,item,observed_at,topic,reason,brief_title\n"
        "NCT1,overall_status,RECRUITING,COMPLETED,,2024-05-06T07:08:09Z,spine,,A title"]
    assert ch.render_changes([], "csv") == ["nct_id,field,old,new,item,observed_at,topic,reason,brief_title"]
    assert ch.render_changes([], "json") == ["[]"]


def test_render_changes_for_a_person():
    assert ch.render_changes([], "text") == ["No changes recorded."]
    c = _logged(field="membership", new="left", observed_at=None)
    assert ch.render_changes([_logged(), c], "text") == [
        "Observed    NCT ID  Change                           Title\n"
        "2024-05-06  NCT1    status: Recruiting -> Completed  A title\n"
        "            NCT1    left topic spine                 A title"]


def test_render_changes_gives_way_date_first_then_the_title(monkeypatch):
    monkeypatch.setenv("COLUMNS", "44")
    assert ch.render_changes([_logged()], "text") == [
        "NCT ID  Change                       Title\nNCT1    status: Recruiting -> Comp…  A title"]
    monkeypatch.setenv("COLUMNS", "40")
    assert ch.render_changes([_logged()], "text") == ["NCT ID  Change\nNCT1    status: Recruiting -> Completed"]
    monkeypatch.setenv("COLUMNS", "33")
    assert ch.render_changes([_logged()], "text") == ["NCT ID  Change\nNCT1    status: Recruiting -> Co…"]
    monkeypatch.setenv("COLUMNS", "30")
    assert ch.render_changes([_logged()], "text") == ["NCT ID  Change\nNCT1    status: Recruiting -> C…"]


def test_duration():
    assert ch._duration({"finished_at": None, "started_at": "x"}) == ""
    assert ch._duration({"started_at": "x"}) == ""
    assert ch._duration({"started_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-01T00:00:59Z"}) == "59s"
    assert ch._duration({"started_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-01T00:01:00Z"}) == "1m00s"
    assert ch._duration({"started_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-01T02:03:05Z"}) == "123m05s"
    # a killed pull's finished_at is when the next run found it dead, hours or a night later: no duration
    killed = {"started_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-02T00:00:00Z", "outcome": "killed"}
    assert ch._duration(killed) == ""
    assert ch._duration({**killed, "outcome": "failed"}) == "1440m00s"


PULL = {"id": 7, "topic": "spine", "started_at": "2024-01-02T03:04:05Z", "finished_at": "2024-01-02T03:05:10Z",
        "mode": "full", "outcome": "ok", "requests": 3, "received": 20, "new": 5, "updated": 2, "left_topic": 1,
        "error": None, "reconciled": "changed"}


def test_render_pulls():
    assert ch.render_pulls([], "text") == ["No pulls recorded yet."]
    assert ch.render_pulls([], "csv") == ["id"]
    assert ch.render_pulls([], "json") == ["[]"]
    assert ch.render_pulls([PULL], "json") == [to_json([{**PULL, "duration": "1m05s"}])]
    assert ch.render_pulls([PULL], "csv")[0].splitlines() == [
        "id,topic,started_at,finished_at,mode,outcome,requests,received,new,updated,left_topic,error,reconciled,duration",
        "7,spine,2024-01-02T03:04:05Z,2024-01-02T03:05:10Z,full,ok,3,20,5,2,1,,changed,1m05s"]
    assert ch.render_pulls([PULL], "text") == [
        "#  Topic  Started            Took  Mode  Members  Outcome  Requests  Received\n"
        "7  spine  2024-01-02 03:04  1m05s  full  changes  ok              3        20"]
    assert ch.render_pulls([{**PULL, "reconciled": None}], "text")[0].splitlines()[1].split()[5:7] == ["full", "ok"]


def test_render_pulls_drops_columns_in_their_order(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    lines = ch.render_pulls([{**PULL, "error": "boom"}], "text")[0].splitlines()
    assert lines[0].split() == ["#", "Topic", "Started", "Took", "Mode", "Members", "Outcome", "Requests", "Received",
                                "New", "Updated", "Left", "Error"]
    assert lines[1].split() == ["7", "spine", "2024-01-02", "03:04", "1m05s", "full", "changes", "ok", "3", "20", "5",
                                "2", "1", "boom"]
    assert lines[1].startswith("7  spine  2024-01-02 03:04  1m05s")
    order = ["#", "Topic", "Started", "Took", "Mode", "Members", "Outcome", "Requests", "Received", "New", "Updated",
             "Left", "Error"]
    for width, shown in ((30, "# Topic Started Outcome Received"), (48, "# Topic Started Outcome Received"),
                         (54, "# Topic Started Took Outcome Received"),
                         (60, "# Topic Started Took Mode Outcome Received"),
                         (70, "# Topic Started Took Mode Outcome Requests Received"),
                         (80, "# Topic Started Took Mode Members Outcome Requests Received"),
                         (85, "# Topic Started Took Mode Members Outcome Requests Received New"),
                         (100, "# Topic Started Took Mode Members Outcome Requests Received New Updated Left")):
        monkeypatch.setenv("COLUMNS", str(width))
        header = ch.render_pulls([{**PULL, "error": "boom"}], "text")[0].splitlines()[0].split()
        assert header == shown.split(), width
        assert header == [h for h in order if h in header]


def test_render_pulls_numbers_align_right(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    lines = ch.render_pulls([PULL, {**PULL, "id": 10, "started_at": None, "finished_at": None}], "text")[0]
    lines = lines.splitlines()
    assert lines[1].startswith(" 7  spine")
    assert lines[2].startswith("10  spine                   ")
    assert lines[0].index("Took") + 4 == lines[1].index("1m05s") + 5


def _pull(**kw):
    counts = NS(received=20, new=5, updated=2, unchanged=13, rejoined=0)
    base = dict(outcome="ok", topic="spine", data_timestamp="2024-01-01", requests=3, counts=counts, mode="full",
                search_changed=False, first_fill=False, refetched=0, left=1)
    base.update(kw)
    return NS(**base)


def test_pull_summary():
    assert ch.pull_summary(_pull(outcome="unchanged", requests=1)) == (
        "spine: API data unchanged since the last pull (2024-01-01); nothing fetched (1 request).")
    assert ch.pull_summary(_pull()) == (
        "spine: full pull, 20 studies received (5 new, 2 updated, 13 unchanged), 1 left the topic; 3 requests.")
    counts = NS(received=1, new=1, updated=0, unchanged=0, rejoined=2)
    assert ch.pull_summary(_pull(counts=counts, search_changed=True, first_fill=True, refetched=4, requests=1,
                                 missing_ids=["N1", "N2", "N3", "N4", "N5", "N6"])) == (
        "spine: full pull under the topic's new search (first pull), 1 study received (1 new, 0 updated, "
        "0 unchanged, 2 back, 4 fetched by id), 1 left the topic; 1 request; 6 ids not found on "
        "ClinicalTrials.gov: N1, N2, N3, N4, N5.")
    assert ch.pull_summary(_pull(missing_ids=["N1"])).endswith("3 requests; 1 id not found on ClinicalTrials.gov: N1.")
    assert ch.pull_summary(_pull(missing_ids=[])).endswith("; 3 requests.")


def test_import_summary():
    counts = NS(received=3, new=1, updated=1, unchanged=1, older=0)
    assert ch.import_summary(NS(topic="spine", counts=counts), "f.json") == (
        "spine: imported 3 studies from f.json (1 new, 1 updated, 1 unchanged)")
    counts = NS(received=1, new=0, updated=0, unchanged=1, older=1)
    assert ch.import_summary(NS(topic="s", counts=counts), "a\nb") == (
        "s: imported 1 study from a b (0 new, 0 updated, 1 unchanged; 1 of them was older than the stored record, "
        "which was kept)")
    counts = NS(received=2, new=0, updated=0, unchanged=2, older=2)
    assert "; 2 of them were older than the stored record, which was kept)" in ch.import_summary(
        NS(topic="s", counts=counts), "x")


def test_names_in_words():
    assert ch.names_in_words(["a"]) == "a"
    assert ch.names_in_words(["a", "b"]) == "a and b"
    assert ch.names_in_words(["a", "b", "c"]) == "a, b and c"


def test_render_digest_empty_and_groups():
    assert ch.render_digest("spine", []) == ""
    changes = [
        _logged(id=1, field="membership", new="added", brief_title=None),
        _logged(id=2, field="membership", new="left", brief_title=None),
        _logged(id=3, field="membership", new="present", brief_title=None),
        _logged(id=4, brief_title=None),
        _logged(id=5, field="why_stopped", old=None, new="money", brief_title=None),
        _logged(id=6, field="last_known_status", brief_title=None),
        _logged(id=7, field="start_date", old="2024-01", new="2024-02", brief_title=None),
        _logged(id=8, field="start_date_type", old="ESTIMATED", new="ACTUAL", brief_title=None),
        _logged(id=9, field="site_status", item="Clinic", brief_title=None),
        _logged(id=10, field="site_added", item="Clinic", new=None, brief_title=None),
        _logged(id=11, field="reference_added", item="12", new=None, brief_title=None),
        _logged(id=12, field="enrollment_count", old=1, new=2, brief_title=None),
        _logged(id=13, field="warning", new="odd", brief_title=None, observed_at="2024-05-01T00:00:00Z"),
    ]
    assert ch.render_digest("spine", changes) == "\n".join([
        "trialsync: 13 changes in spine",
        "", "New studies:", "  NCT1",
        "", "Status changes:", "  NCT1 status: Recruiting -> Completed", "  NCT1 why stopped: none -> money",
        "  NCT1 last known status: Recruiting -> Completed",
        "", "Left the topic:", "  NCT1 left the topic",
        "", "Back in the topic:", "  NCT1 back in the topic",
        "", "Dates:", "  NCT1 start date: 2024-01 -> 2024-02", "  NCT1 start date: estimated -> actual",
        "", "Sites:", "  NCT1 site status at Clinic: Recruiting -> Completed", "  NCT1 site added: Clinic",
        "", "Publications:", "  NCT1 publication added: PMID 12",
        "", "Other changes:", "  NCT1 enrollment: 1 -> 2",
        "", "Warnings:", "  NCT1 warning: odd",
    ])


def test_render_digest_titles_search_changes_and_long_groups(monkeypatch):
    one = [_logged(id=1, brief_title="Short\x1b")]
    assert ch.render_digest("spine", one, ["spine", "neck"]) == (
        "trialsync: 1 change in spine and neck\n\nStatus changes:\n"
        "  NCT1 status: Recruiting -> Completed (Short\\x1b)")
    title = "x" * 39  # 38 + 2 + 39 + 1 = 80 fits; 81 does not
    assert ch.render_digest("s", [_logged(brief_title=title)]).splitlines()[-1] == (
        f"  NCT1 status: Recruiting -> Completed ({title})")
    lines = ch.render_digest("s", [_logged(brief_title=title + "y")]).splitlines()
    assert lines[-2:] == ["  NCT1 status: Recruiting -> Completed", f"    {title}y"]
    monkeypatch.setenv("COLUMNS", "30")
    lines = ch.render_digest("s", [_logged(brief_title="word " * 10)]).splitlines()
    assert lines[-1] == "    " + "word " * 5 + "…"
    monkeypatch.setenv("COLUMNS", "10")
    lines = ch.render_digest("s", [_logged(brief_title="word " * 10)]).splitlines()
    assert lines[-1] == "    " + "word " * 3 + "word…"  # never narrower than 20
    monkeypatch.setenv("COLUMNS", "80")
    search = [_logged(id=i, field="membership", new=new, reason="search", observed_at=f"2024-0{i}-01T00:00:00Z")
              for i, new in ((2, "added"), (3, "present"), (4, "left"))]
    assert ch.render_digest("s", search) == (
        "trialsync: 3 changes in s\n\nThe topic's search changed: 2 studies joined it and 1 left it.")
    assert ch.render_digest("s", search[:1]) == (
        "trialsync: 1 change in s\n\nThe topic's search changed: 1 study joined it and 0 left it.")
    assert ch.render_digest("s", search[2:]) == (
        "trialsync: 1 change in s\n\nThe topic's search changed: 0 studies joined it and 1 left it.")
    many = [_logged(id=i, nct_id=f"NCT{i}", brief_title=None, observed_at=f"2024-02-{i % 28 + 1:02d}T00:00:00Z")
            for i in range(1, ch.DIGEST_LINES + 3)]
    lines = ch.render_digest("s", many).splitlines()
    assert ch.DIGEST_LINES == 50
    assert lines[0] == "trialsync: 52 changes in s"
    assert len(lines) == 3 + 50 + 1
    assert lines[-2] == "  NCT50 status: Recruiting -> Completed"
    assert lines[-1] == "  ... and 2 more: `trialsync changes s --since 2024-02-01` lists them all"
    assert len(ch.render_digest("s", many[:50]).splitlines()) == 3 + 50


def test_render_digests_prints_each_change_once():
    a = _logged(id=1, nct_id="NCT1", brief_title=None)
    b = _logged(id=2, nct_id="NCT2", brief_title=None)
    c = _logged(id=3, nct_id="NCT3", brief_title=None)
    assert ch.render_digests([]) == ""
    assert ch.render_digests([("x", []), ("y", [])]) == ""
    text = ch.render_digests([("zeta", [a, b]), ("alpha", [b, c]), ("mid", [])])
    assert text == (
        "trialsync: 1 change in zeta\n\nStatus changes:\n  NCT1 status: Recruiting -> Completed\n\n"
        "trialsync: 1 change in zeta and alpha\n\nStatus changes:\n  NCT2 status: Recruiting -> Completed\n\n"
        "trialsync: 1 change in alpha\n\nStatus changes:\n  NCT3 status: Recruiting -> Completed")
    text = ch.render_digests([("zeta", [c]), ("alpha", [b, a])])
    assert text == (
        "trialsync: 1 change in zeta\n\nStatus changes:\n  NCT3 status: Recruiting -> Completed\n\n"
        "trialsync: 2 changes in alpha\n\nStatus changes:\n  NCT1 status: Recruiting -> Completed\n"
        "  NCT2 status: Recruiting -> Completed")
    first = _logged(id=5, nct_id="NCT5", new="TERMINATED", brief_title=None)
    second = _logged(id=5, nct_id="NCT5", new="WITHDRAWN", brief_title=None)
    assert ch.render_digests([("b", [first]), ("a", [second])]) == (
        "trialsync: 1 change in b and a\n\nStatus changes:\n  NCT5 status: Recruiting -> Terminated")


# ---------------------------------------------------------------- status


def _report(**kw):
    base = {"topic": "spine", "total": 3, "as_of": "2024-01-02", "data_timestamp": "2024-01-01T00:00:00",
            "statuses": [{"status": "COMPLETED", "count": 1}, {"status": "RECRUITING", "count": 2}],
            "unknown_by_last_known": {}, "left_since_previous": 0, "previous": None}
    base.update(kw)
    return base


def test_percent_and_signed():
    assert st._percent(1, 3) == "33.3%" and st._percent(0, 0) == "0.0%" and st._percent(2, 2) == "100.0%"
    assert st._signed(None) == "" and st._signed(0) == "0" and st._signed(3) == "+3" and st._signed(-2) == "-2"


def test_status_rows():
    assert st.status_rows(_report()) == [
        {"status": "RECRUITING", "label": "Recruiting", "count": 2, "percent": "66.7%", "previous_count": None,
         "change": ""},
        {"status": "COMPLETED", "label": "Completed", "count": 1, "percent": "33.3%", "previous_count": None,
         "change": ""}]
    previous = {"as_of": "2023", "statuses": [{"status": "RECRUITING", "count": 2}, {"status": "WITHDRAWN", "count": 4}]}
    assert st.status_rows(_report(previous=previous)) == [
        {"status": "RECRUITING", "label": "Recruiting", "count": 2, "percent": "66.7%", "previous_count": 2,
         "change": "0"},
        {"status": "COMPLETED", "label": "Completed", "count": 1, "percent": "33.3%", "previous_count": 0,
         "change": "+1"},
        {"status": "WITHDRAWN", "label": "Withdrawn", "count": 0, "percent": "0.0%", "previous_count": 4,
         "change": "-4"}]


def test_render_status_report_machine_formats():
    report = _report(extra="not shown")
    data = {k: report[k] for k in ("topic", "total", "as_of", "statuses", "unknown_by_last_known", "data_timestamp",
                                   "left_since_previous", "previous")}
    assert st.render_status_report(report, "x", "json") == [to_json(data)]
    assert list(orjson.loads(st.render_status_report(report, "x", "json")[0])) == list(data)
    assert st.render_status_report(report, "x", "csv") == [
        "status,label,count,percent,previous_count\nRECRUITING,Recruiting,2,66.7%,\nCOMPLETED,Completed,1,33.3%,"]
    assert st.render_status_report(report, "x", "nl") == [
        '{"status":"RECRUITING","label":"Recruiting","count":2,"percent":"66.7%","previous_count":null}\n'
        '{"status":"COMPLETED","label":"Completed","count":1,"percent":"33.3%","previous_count":null}']


def test_render_status_report_text():
    blocks = st.render_status_report(_report(), "3 studies", "text")
    assert blocks == [
        "spine: 3 studies.\nStatus      Studies   Share\nRecruiting        2   66.7%\nCompleted         1   33.3%\n"
        "Total             3  100.0%",
        "Data as of 2024-01-02 (last successful pull or import; API data of\n2024-01-01T00:00:00)."]
    previous = {"as_of": "2023-12-01", "statuses": [{"status": "RECRUITING", "count": 1}]}
    blocks = st.render_status_report(_report(previous=previous, left_since_previous=1, data_timestamp=None,
                                             unknown_by_last_known={"RECRUITING": 2, "NONE": 1}), "s", "text")
    assert blocks == [
        "spine: s.\nStatus      Studies   Share  Change\nRecruiting        2   66.7%      +1\n"
        "Completed         1   33.3%      +1\nTotal             3  100.0%      +2",
        "Data as of 2024-01-02 (last successful pull or import).",
        "Unknown status, by last known status\nLast known status  Studies\nRecruiting               2\n"
        "No status given          1",
        "1 study left the topic since the previous pull (2023-12-01)."]
    blocks = st.render_status_report(_report(previous={"as_of": "p", "statuses": [
        {"status": "RECRUITING", "count": 3}]}, left_since_previous=2), "s", "text")
    assert blocks[0].splitlines()[-1] == "Total             3  100.0%       0"
    assert blocks[-1] == "2 studies left the topic since the previous pull (p)."
    blocks = st.render_status_report(_report(total=0, statuses=[], as_of=None), "s", "text")
    assert blocks == ["spine: s.\nStatus  Studies  Share\nTotal         0",
                      "Not pulled yet: run `trialsync pull` (or `trialsync import FILE`)."]


def test_as_of_line():
    assert st._as_of_line({"as_of": None, "total": 2}) == (
        "No pull or import of this topic has completed yet: these are the studies its unfinished first pull "
        "stored so far. Run `trialsync pull` to finish it.")
    assert st._as_of_line({"as_of": "", "total": 0}) == "Not pulled yet: run `trialsync pull` (or `trialsync import FILE`)."
    assert st._as_of_line({"as_of": "d", "data_timestamp": ""}) == "Data as of d (last successful pull or import)."


def test_flat():
    row = {"value": "v", "total": 9, "statuses": {"RECRUITING": 2, "COMPLETED": 3, "WITHDRAWN": 4}}
    assert st._flat(row, ["RECRUITING", "SUSPENDED"]) == {"value": "v", "total": 9, "RECRUITING": 2, "SUSPENDED": 0}
    assert st._flat(row, ["RECRUITING", "OTHER"]) == {"value": "v", "total": 9, "RECRUITING": 2, "OTHER": 7}
    assert st._flat(row, []) == {"value": "v", "total": 9}


def _breakdown(**kw):
    base = {"topic": "spine", "by": "phase", "total": 5, "multi": False, "as_of": "2024-01-02",
            "rows": [{"value": "PHASE2", "total": 3, "statuses": {"RECRUITING": 2, "COMPLETED": 1}},
                     {"value": None, "total": 2, "statuses": {"WITHDRAWN": 2}}]}
    base.update(kw)
    return base


def test_render_breakdown_machine_formats():
    report = _breakdown()
    assert st.render_breakdown(report, "json") == [to_json(report)]
    assert st.render_breakdown(report, "csv") == [
        "value,total,RECRUITING,COMPLETED,WITHDRAWN\nPHASE2,3,2,1,0\n,2,0,0,2"]
    assert st.render_breakdown(report, "nl") == [
        '{"value":"PHASE2","total":3,"RECRUITING":2,"COMPLETED":1,"WITHDRAWN":0}\n'
        '{"value":null,"total":2,"RECRUITING":0,"COMPLETED":0,"WITHDRAWN":2}']


def test_render_breakdown_text_and_markdown():
    assert st.render_breakdown(_breakdown(), "text") == [
        "spine: 5 studies by phase and status, as of 2024-01-02.\n"
        "Phase    Studies  Recruiting  Completed  Withdrawn\n"
        "Phase 2        3           2          1          0\n"
        "(none)         2           0          0          2"]
    report = _breakdown(by="sponsor", multi=True, as_of=None, total=1,
                        rows=[{"value": "PHASE2", "total": 1, "statuses": {"MADE_UP": 1}}])
    table = ("**spine: 1 study by lead sponsor and status.**\n\n| Lead sponsor | Studies | MADE\\_UP |\n"
             "| --- | ---: | ---: |\n| PHASE2 | 1 | 1 |")
    assert st.render_breakdown(report, "markdown") == [table]  # one value each: nothing to explain
    report["rows"].append({"value": "PHASE3", "total": 1, "statuses": {"MADE_UP": 1}})
    for fmt in ("markdown", "text", "table"):  # the same study in both rows: 2 counted of 1
        assert st.render_breakdown(report, fmt)[-1] == (
            "A study with several values counts once in each: the rows add up to more than 1."), fmt
    for by, header in (("study-type", "Study type"), ("sponsor-class", "Sponsor class"), ("start-year", "Start year"),
                       ("country", "Country"), ("condition", "Condition")):
        text = st.render_breakdown(_breakdown(by=by), "text")[0]
        assert text.splitlines()[1].startswith(header + " "), by
        assert f"by {header.lower()} and status" in text
    text = st.render_breakdown(_breakdown(by="study-type", rows=[
        {"value": "INTERVENTIONAL", "total": 1, "statuses": {"RECRUITING": 1}}]), "text")[0]
    assert text.splitlines()[2].startswith("Interventional ")
    text = st.render_breakdown(_breakdown(by="sponsor-class", rows=[
        {"value": "FED", "total": 1, "statuses": {"RECRUITING": 1}}]), "text")[0]
    assert text.splitlines()[2].startswith("Other U.S. federal agency ")


def _wide_rows():
    statuses = ["NOT_YET_RECRUITING", "RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING", "SUSPENDED",
                "TERMINATED", "COMPLETED", "WITHDRAWN", "UNKNOWN"]
    return [{"value": "PHASE1", "total": 100, "statuses": {s: 10 + i for i, s in enumerate(statuses)}},
            {"value": "PHASE2", "total": 100, "statuses": {"WITHDRAWN": 50}}]


def test_a_breakdown_merges_the_rarest_statuses_into_other_until_it_fits():
    text = st.render_breakdown(_breakdown(rows=_wide_rows()), "text")[0]
    lines = text.splitlines()
    assert lines[1:] == [
        "Phase    Studies  Suspended  Terminated  Completed  Withdrawn  Unknown  Other",
        "Phase 1      100         14          15         16         17       18     46",
        "Phase 2      100          0           0          0         50        0      0"]
    assert max(len(line) for line in lines[1:]) <= 80
    blocks = st.render_breakdown(_breakdown(rows=_wide_rows()), "table")
    headers = [c.header.plain for c in blocks[-1].columns]
    assert headers == ["Phase", "Studies", "Terminated", "Completed", "Withdrawn", "Unknown", "Other"]
    assert [c._cells[0].plain for c in blocks[-1].columns] == ["Phase 1", "100", "15", "16", "17", "18", "60"]
    markdown = st.render_breakdown(_breakdown(rows=_wide_rows()), "markdown")[0]
    assert markdown.splitlines()[2].count("|") == 12


def test_status_columns_stop_at_two(monkeypatch):
    monkeypatch.setenv("COLUMNS", "20")
    rows = [{"shown": "x", "total": 1, "statuses": {"RECRUITING": 1, "COMPLETED": 2, "WITHDRAWN": 3}}]
    fixed = [Column("shown", "Value"), Column("total", "Studies", numeric=True)]
    shown, flat = st._status_columns(["RECRUITING", "COMPLETED", "WITHDRAWN"], rows, fixed, "text")
    assert shown == ["WITHDRAWN", "OTHER"]
    assert flat == [{"shown": "x", "total": 1, "WITHDRAWN": 3, "OTHER": 3}]
    shown, flat = st._status_columns(["RECRUITING", "COMPLETED", "WITHDRAWN"], rows, fixed, "markdown")
    assert shown == ["RECRUITING", "COMPLETED", "WITHDRAWN"]
    assert flat == [{"shown": "x", "total": 1, "RECRUITING": 1, "COMPLETED": 2, "WITHDRAWN": 3}]
    monkeypatch.setenv("COLUMNS", "40")
    shown, _ = st._status_columns(["RECRUITING", "COMPLETED", "WITHDRAWN"], rows, fixed, "text")
    assert shown == ["COMPLETED", "WITHDRAWN", "OTHER"][1:] or shown
    # ties of count are broken by the status's name
    rows = [{"shown": "x", "total": 1, "statuses": {"RECRUITING": 1, "COMPLETED": 1, "WITHDRAWN": 1}}]
    monkeypatch.setenv("COLUMNS", "20")
    shown, _ = st._status_columns(["RECRUITING", "COMPLETED", "WITHDRAWN"], rows, fixed, "text")
    assert shown == ["WITHDRAWN", "OTHER"]


def test_status_columns_fit_exactly(monkeypatch):
    rows = [{"shown": "x", "total": 1, "statuses": {"RECRUITING": 1, "COMPLETED": 2}}]
    fixed = [Column("shown", "Value"), Column("total", "Studies", numeric=True)]
    # text: Value 5 + Studies 7 + Recruiting 10 + Completed 9 = 31, and 2 * 3 between: 37
    monkeypatch.setenv("COLUMNS", "37")
    assert st._status_columns(["RECRUITING", "COMPLETED"], rows, fixed, "text")[0] == ["RECRUITING", "COMPLETED"]
    three = {"RECRUITING": 1, "COMPLETED": 2, "WITHDRAWN": 3}
    rows3 = [{"shown": "x", "total": 1, "statuses": three}]
    # 37 + 9 (Withdrawn) + 2 = 48
    monkeypatch.setenv("COLUMNS", "48")
    assert st._status_columns(list(three), rows3, fixed, "text")[0] == list(three)
    monkeypatch.setenv("COLUMNS", "47")
    assert st._status_columns(list(three), rows3, fixed, "text")[0] == ["COMPLETED", "WITHDRAWN", "OTHER"]
    # table: 3 per column and 1: 31 + 9 + 16 = 56
    monkeypatch.setenv("COLUMNS", "56")
    assert st._status_columns(list(three), rows3, fixed, "table")[0] == list(three)
    monkeypatch.setenv("COLUMNS", "55")
    assert st._status_columns(list(three), rows3, fixed, "table")[0] == ["COMPLETED", "WITHDRAWN", "OTHER"]
    # a flex column that shortens counts as fitting
    flex = [Column("shown", "Value", flex=True, min_width=5), Column("total", "Studies", numeric=True)]
    wide = [{"shown": "x" * 20, "total": 1, "statuses": three}]
    monkeypatch.setenv("COLUMNS", "48")
    assert st._status_columns(list(three), wide, flex, "text")[0] == list(three)
    # a dropped column does not fit
    drop = [Column("shown", "Value"), Column("total", "Studies", numeric=True, drop=1)]
    assert st._status_columns(list(three), rows3, drop, "text")[0] == list(three)
    monkeypatch.setenv("COLUMNS", "47")
    assert st._status_columns(list(three), rows3, drop, "text")[0] == ["COMPLETED", "WITHDRAWN", "OTHER"]


def test_render_history():
    assert st.render_history("spine", [], "text") == ["No complete pull of spine is recorded yet."]
    assert st.render_history("spine", [], "json") == [to_json({"topic": "spine", "pulls": []})]
    rows = [{"pull_id": 4, "finished_at": "2024-01-02T03:04:05Z", "kind": "pull", "mode": "full", "total": 2,
             "statuses": {"RECRUITING": 2}},
            {"pull_id": 9, "finished_at": None, "kind": "import", "mode": "file", "total": 1,
             "statuses": {"COMPLETED": 1, "MADE_UP": 0}}]
    assert st.render_history("spine", rows, "json") == [to_json({"topic": "spine", "pulls": rows})]
    assert st.render_history("spine", rows, "csv") == [
        "pull_id,finished_at,kind,mode,total,RECRUITING,COMPLETED,MADE_UP\n4,2024-01-02T03:04:05Z,pull,full,2,2,0,0\n"
        "9,,import,file,1,0,1,0"]
    assert st.render_history("spine", rows, "nl")[0].splitlines()[0] == (
        '{"pull_id":4,"finished_at":"2024-01-02T03:04:05Z","kind":"pull","mode":"full","total":2,"RECRUITING":2,'
        '"COMPLETED":0,"MADE_UP":0}')
    assert st.render_history("spine", rows, "text") == [
        "spine: counts by status at each complete pull.\n"
        "Pull finished        Studies  Recruiting  Completed  MADE_UP\n"
        "2024-01-02 03:04:05        2           2          0        0\n"
        "                           1           0          1        0"]


def test_render_history_merges_other(monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    rows = [{"finished_at": "2024-01-02T03:04:05Z", "kind": "pull", "total": 6,
             "statuses": {"RECRUITING": 1, "COMPLETED": 2, "WITHDRAWN": 3}}]
    assert st.render_history("s", rows, "text")[0].splitlines()[1:] == [
        "Pull finished        Studies  Withdrawn  Other", "2024-01-02 03:04:05        6          3      3"]


def test_render_every_topic():
    reports = [_report(), _report(topic="neck", total=0, statuses=[], as_of=None)]
    rows = [{"topic": "spine", "total": 3, "as_of": "2024-01-02", "statuses": {"COMPLETED": 1, "RECRUITING": 2}},
            {"topic": "neck", "total": 0, "as_of": None, "statuses": {}}]
    assert st.render_every_topic(reports, ["a", "b"], "json") == [to_json(rows)]
    assert st.render_every_topic(reports, ["a", "b"], "nl") == [to_json_lines(rows)]
    assert st.render_every_topic(reports, ["a", "b"], "csv") == [
        "topic,total,as_of,RECRUITING,COMPLETED\nspine,3,2024-01-02,2,1\nneck,0,,0,0"]
    assert st.render_every_topic([], [], "text") == ["No topics stored yet."]
    assert st.render_every_topic(reports, ["3 studies", "none"], "text") == ["spine: 3 studies.\nneck: none."]


def _check(**kw):
    base = dict(topic="spine", agrees=True, api_total=3, store_total=3,
                by_status=[("RECRUITING", 2, 2), ("COMPLETED", 1, 1)], only_in_api=[], only_in_store=[],
                status_differs=[])
    base.update(kw)
    return NS(**base)


def test_render_verification_machine_formats():
    check = _check(agrees=False, only_in_api=["NCT1"], only_in_store=["NCT2"],
                   status_differs=[("NCT3", "RECRUITING", "COMPLETED")])
    assert orjson.loads(st.render_verification(check, "json")[0]) == {
        "topic": "spine", "agrees": False, "api_total": 3, "store_total": 3,
        "statuses": [{"status": "RECRUITING", "label": "Recruiting", "api": 2, "store": 2},
                     {"status": "COMPLETED", "label": "Completed", "api": 1, "store": 1}],
        "only_in_api": ["NCT1"], "only_in_store": ["NCT2"],
        "status_differs": [{"nct_id": "NCT3", "api": "RECRUITING", "store": "COMPLETED"}]}
    assert st.render_verification(check, "csv") == [
        "status,label,api,store\nRECRUITING,Recruiting,2,2\nCOMPLETED,Completed,1,1"]
    assert st.render_verification(check, "nl")[0].splitlines()[0] == (
        '{"status":"RECRUITING","label":"Recruiting","api":2,"store":2}')


def test_render_verification_text():
    assert st.render_verification(_check(), "text") == [
        "spine: the store agrees with the API.\nStatus      API  Store  Difference\nRecruiting    2      2\n"
        "Completed     1      1\nTotal         3      3"]
    check = _check(agrees=False, store_total=4, by_status=[("RECRUITING", 2, 3), ("COMPLETED", 1, 1)],
                   only_in_api=["NCT1"], only_in_store=["NCT2", "NCT\x1b"],
                   status_differs=[("NCT3", "RECRUITING", "COMPLETED")])
    assert st.render_verification(check, "text") == [
        "spine: the store differs from the API.\nStatus      API  Store  Difference\nRecruiting    2      3          +1\n"
        "Completed     1      1\nTotal         3      4          +1",
        "NCT1 is in the API's listing, not in the store\nNCT2 is in the store, not in the API's listing\n"
        "NCT\\x1b is in the store, not in the API's listing\n"
        "NCT3: the API says Recruiting, the store says Completed",
        "`trialsync pull spine` brings the store up to date."]
    assert st.render_verification(_check(store_total=2, by_status=[("RECRUITING", 3, 2)]), "text")[0].splitlines()[
        -2:] == ["Recruiting    3      2          -1", "Total         3      2          -1"]


# ---------------------------------------------------------------- studies


def test_short_phase_and_places():
    assert sd._short_phase([]) == "" and sd._short_phase(None) == ""
    assert sd._short_phase(["EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA", "X"]) == (
        "Early 1/1/2/3/4/N/A/X")
    assert sd._site_place(None) == "" and sd._site_place({}) == ""
    assert sd._site_place({"city": "Paducah", "state": "Kentucky", "country": "United States"}) == "Paducah, KY"
    assert sd._site_place({"city": "Lyon", "state": "Rhône", "country": "France"}) == "Lyon, Rhône"
    assert sd._site_place({"city": "X", "state": "Nowhere", "country": "United States"}) == "X, Nowhere"
    assert sd._site_place({"city": "Lyon", "country": "France"}) == "Lyon, France"
    assert sd._site_place({"country": "France"}) == "France"
    assert sd._nearest_site_cell(None) == "" and sd._nearest_site_cell({}) == ""
    assert sd._nearest_site_cell({"status": "RECRUITING", "city": "Lyon"}) == "Recruiting · Lyon"
    assert sd._nearest_site_cell({"facility": "Clinic"}) == "Status not given · Clinic"
    assert sd._nearest_site_cell({"status": None, "seq": 1}) == "Status not given · unnamed site"


STUDY = {"nct_id": "NCT1", "brief_title": "A study", "overall_status": "RECRUITING", "last_known_status": None,
         "phases": ["PHASE2"], "study_type": "INTERVENTIONAL", "start_date": "2024-01-15",
         "last_update_posted": "2024-02-01", "enrollment_count": 10, "lead_sponsor": "Acme",
         "lead_sponsor_class": "INDUSTRY", "has_results": False, "url": "u", "other": 1}


def test_render_study_list_json_and_csv():
    keys = list(sd.LIST_JSON_KEYS)
    assert keys == ["nct_id", "brief_title", "overall_status", "last_known_status", "phases", "study_type",
                    "start_date", "last_update_posted", "enrollment_count", "lead_sponsor", "lead_sponsor_class",
                    "has_results", "url"]
    assert sd.render_study_list([STUDY], "json") == [to_json([{k: STUDY[k] for k in keys}])]
    assert sd.render_study_list([STUDY], "nl") == [to_json_lines([{k: STUDY[k] for k in keys}])]
    assert sd.render_study_list([], "json") == ["[]"]
    assert sd.render_study_list([STUDY], "csv") == [
        ",".join(keys) + "\nNCT1,A study,RECRUITING,,PHASE2,INTERVENTIONAL,2024-01-15,2024-02-01,10,Acme,INDUSTRY,"
        "false,u"]
    site = {"facility": "Clinic", "city": "Lyon", "state": None, "country": "France", "status": "RECRUITING",
            "contact": "c"}
    near = {**STUDY, "distance_km": 16.0934, "nearest_site": site}
    far = {**STUDY, "nct_id": "NCT2", "distance_km": None, "nearest_site": None}
    data = orjson.loads(sd.render_study_list([near, far], "json")[0])
    assert data[0]["distance_km"] == 16.0934 and data[0]["nearest_site"] == site and "distance_mi" not in data[0]
    data = orjson.loads(sd.render_study_list([near, far], "json", units="mi")[0])
    assert data[0]["distance_mi"] == 10.0 and data[1]["distance_mi"] is None
    assert list(data[0])[-3:] == ["distance_km", "nearest_site", "distance_mi"]
    data = [orjson.loads(line) for line in sd.render_study_list([near], "nl", units="mi")[0].splitlines()]
    assert data[0]["distance_mi"] == 10.0
    lines = sd.render_study_list([near, far], "csv", units="mi")[0].splitlines()
    assert lines[0] == ",".join(keys) + (",distance_mi,nearest_site_facility,nearest_site_city,nearest_site_state,"
                                         "nearest_site_country,nearest_site_status")
    assert lines[1].endswith(",u,10.0,Clinic,Lyon,,France,RECRUITING")
    assert lines[2].endswith(",u,,,,,,")
    lines = sd.render_study_list([near], "csv")[0].splitlines()
    assert lines[0].split(",")[13] == "distance_km" and lines[1].split(",")[13] == "16.1"


def test_render_study_list_text():
    assert sd.render_study_list([], "text") == ["No studies match."]
    assert sd.render_study_list([], "text", title="None of x") == ["None of x"]
    assert sd.render_study_list([STUDY, {**STUDY, "nct_id": "NCT22", "phases": [], "start_date": None,
                                         "overall_status": None}], "text", title="T") == [
        "T\nNCT ID  Status           Phase  Start    Title    Lead sponsor\n"
        "NCT1    Recruiting       2      2024-01  A study  Acme\n"
        "NCT22   No status given                  A study  Acme"]
    rows = [{**STUDY, "brief_title": "t " * 40, "lead_sponsor": "s " * 30}]
    assert sd.render_study_list(rows, "text")[0].splitlines()[1] == (
        "NCT1    Recruiting  2      2024-01  t t t t t t t t t t t t t…  s s s s s s s s…")


def test_render_study_list_text_near(monkeypatch):
    site = {"facility": "Clinic", "city": "Chicago", "state": "Illinois", "country": "United States",
            "status": "RECRUITING"}
    near = {**STUDY, "distance_km": 16.0934, "nearest_site": site}
    monkeypatch.setenv("COLUMNS", "100")
    assert sd.render_study_list([near, {**near, "distance_km": None, "nearest_site": None}], "text", units="mi") == [
        "NCT ID  Status      Phase  Start    Mi  Title    Nearest site              Lead sponsor\n"
        "NCT1    Recruiting  2      2024-01  10  A study  Recruiting · Chicago, IL  Acme\n"
        "NCT1    Recruiting  2      2024-01      A study                            Acme"]
    monkeypatch.setenv("COLUMNS", "80")
    assert sd.render_study_list([near], "text", units="mi") == [
        "NCT ID  Status      Phase  Start    Mi  Title    Nearest site\n"
        "NCT1    Recruiting  2      2024-01  10  A study  Recruiting · Chicago, IL"]
    assert sd.render_study_list([near], "text")[0].splitlines()[1].startswith(
        "NCT1    Recruiting  2      2024-01  16  A study")
    long = {**near, "brief_title": "t " * 40, "lead_sponsor": "s " * 30}
    assert sd.render_study_list([long], "text")[0].splitlines()[1] == (
        "NCT1    Recruiting  2      16  t t t t t t t t t t t …  Recruiting · Chicago, IL")
    monkeypatch.setenv("COLUMNS", "79")
    long = {**near, "brief_title": "t " * 40, "nearest_site": {**site, "city": "c" * 40}}
    assert sd.render_study_list([long], "text")[0].splitlines()[1] == (
        "NCT1    Recruiting  2      2024-01  16  t t t t t t t t t t…  Recruiting · ccc…")


def test_small_study_helpers():
    assert sd._rounded(None) is None and sd._rounded(1.26) == 1.3
    assert sd._age_range({"min_age": "18 Years", "max_age": "65 Years"}) == "18 Years to 65 Years"
    assert sd._age_range({"min_age": "18 Years"}) == "18 Years and older"
    assert sd._age_range({"max_age": "65 Years"}) == "up to 65 Years"
    assert sd._age_range({}) == "any age"
    assert sd._date({}, "start_date") is None
    assert sd._date({"start_date": "2024-01", "start_date_type": "ESTIMATED"}, "start_date") == "2024-01 (estimated)"
    assert sd._date({"start_date": "2024-01", "start_date_type": None}, "start_date") == "2024-01"
    assert sd._site_line({"facility": "C", "city": "L", "state": None, "country": "F", "status": "RECRUITING",
                          "distance_km": 12.4}) == "C, L, F [Recruiting] (12 km)"
    assert sd._site_line({"city": "L", "distance_km": 0.0}) == "Unnamed site, L (0 km)"
    assert sd._site_line({"city": "L", "state": "S", "distance_km": None}) == "Unnamed site, L, S"
    assert sd._contact_line({"name": "A", "phone": None, "email": "e"}) == "A · e"
    assert sd._contact_line({"phone": "1"}) == "1"
    assert sd._contact_line({}) == ""


def test_unescape_markdown_and_paragraphs():
    assert sd.unescape_markdown(r"a \< b \& c \a \\ \~ \{") == r"a < b & c \a \ ~ {"
    assert sd._paragraphs("one two three\n\n\n* item one two\n  - nested words here\n1. first point", 16) == (
        "  one two three\n\n  * item one two\n    - nested\n      words here\n  1. first point")
    assert sd._paragraphs("\n\nword\n\n", 20) == "  word"
    assert sd._paragraphs("a\r\nb\x1b", 20) == "  a\n  b\\x1b"
    assert sd._paragraphs("2) aaa bbb", 8) == "  2) aaa\n     bbb"
    assert sd._paragraphs("+ aa-bb cc", 9) == "  + aa-bb\n    cc"
    assert sd._paragraphs("*x y", 5) == "  *x\n  y"
    assert sd._paragraphs("x" * 12, 5) == "  " + "x" * 12


def test_wrapped():
    assert sd._wrapped("aaa bbb ccc", 8, "  ") == "aaa bbb\n  ccc"
    assert sd._wrapped("a\nb", 8, "  ") == "a b"
    assert sd._wrapped("", 8, "  ") == ""
    assert sd._wrapped("   ", 8, "  ") == "   "
    assert sd._wrapped("aa-bb-cc-dd x", 5, " ") == "aa-bb-cc-dd\n x"


FACTS = {
    "nct_id": "NCT1", "brief_title": "A study", "official_title": None, "acronym": "AS",
    "overall_status": "UNKNOWN", "last_known_status": "RECRUITING", "why_stopped": None,
    "study_type": "INTERVENTIONAL", "phases": "PHASE1, PHASE2", "enrollment_count": 10, "enrollment_type": "ACTUAL",
    "start_date": "2024-01", "start_date_type": "ACTUAL", "primary_completion_date": None,
    "completion_date": "2026-01", "completion_date_type": None, "first_posted": "2023-12-01",
    "last_update_posted": None, "results_first_posted": None, "lead_sponsor": "Acme",
    "lead_sponsor_class": "INDUSTRY", "sex": "FEMALE", "healthy_volunteers": 1, "min_age": "18 Years",
    "max_age": None, "has_results": True,
    "sponsors": [{"name": "Acme", "role": "lead"}, {"name": "Uni", "role": "collaborator"},
                 {"name": "Lab", "role": "collaborator"}],
    "conditions": [{"condition": "Pain"}, {"condition": "Ache"}],
    "interventions": [{"type": "DIETARY_SUPPLEMENT", "name": "Tea"}, {"type": None, "name": "X"}],
    "central_contacts": [{"name": "Ann", "phone": "1", "email": None}, {"name": "Bob"}],
    "topics": [{"topic": "spine", "present": 1, "left_at": None}, {"topic": "neck", "present": 0,
                                                                   "left_at": "2024-03"}],
}


def test_render_study_json():
    assert sd.render_study(FACTS, "json") == [to_json(FACTS)]


def test_render_study_text_fields():
    blocks = sd.render_study(FACTS, "text")
    assert blocks == ["\n".join([
        "NCT ID:        NCT1",
        "Title:         A study",
        "Acronym:       AS",
        "Status:        Unknown status (last known: Recruiting)",
        "Study type:    Interventional",
        "Phase:         Phase 1/Phase 2",
        "Enrollment:    10 participants (actual)",
        "Start:         2024-01 (actual)",
        "Completion:    2026-01",
        "First posted:  2023-12-01",
        "Lead sponsor:  Acme (Industry)",
        "Collaborators: Uni; Lab",
        "Conditions:    Pain; Ache",
        "Interventions: Dietary Supplement: Tea; : X",
        "Eligibility:   18 Years and older, sex: female, accepts healthy volunteers",
        "Contacts:      Ann · 1; Bob",
        "Topics:        spine, neck (left 2024-03)",
        "Links:         https://clinicaltrials.gov/study/NCT1",
        "               https://clinicaltrials.gov/study/NCT1?tab=results",
    ])]
    plain = {"nct_id": "NCT2", "overall_status": "COMPLETED", "enrollment_count": 0, "lead_sponsor": "Acme",
             "healthy_volunteers": 0}
    assert sd.render_study(plain, "text") == ["\n".join([
        "NCT ID:       NCT2",
        "Status:       Completed",
        "Enrollment:   0 participants",
        "Lead sponsor: Acme",
        "Eligibility:  any age, no healthy volunteers",
        "Links:        https://clinicaltrials.gov/study/NCT2",
    ])]
    assert sd.render_study({"nct_id": "N", "overall_status": None, "lead_sponsor_class": "NIH",
                            "healthy_volunteers": 2}, "text")[0].splitlines()[1:4] == [
        "Status:      No status given", "Eligibility: any age", "Links:       https://clinicaltrials.gov/study/N"]


def test_render_study_wraps_long_values(monkeypatch):
    monkeypatch.setenv("COLUMNS", "44")
    facts = {"nct_id": "NCT1", "overall_status": "RECRUITING", "brief_title": "word " * 12}
    assert sd.render_study(facts, "text")[0].splitlines()[:4] == [
        "NCT ID:      NCT1", "Title:       word word word word word word", "             word word word word word word",
        "Status:      Recruiting"]
    monkeypatch.setenv("COLUMNS", "49")
    assert sd.render_study(facts, "text")[0].splitlines()[1] == "Title:       word word word word word word word"
    monkeypatch.setenv("COLUMNS", "20")
    lines = sd.render_study(facts, "text")[0].splitlines()
    assert lines[1] == "Title:       word word word word word word"  # never narrower than 30
    facts = {"nct_id": "NCT1", "overall_status": "RECRUITING", "brief_title": "a-very-long-hyphenated-title-" * 2}
    assert sd.render_study(facts, "text")[0].splitlines()[1] == "Title:       " + "a-very-long-hyphenated-title-" * 2
    facts = {"nct_id": "NCT1", "overall_status": "RECRUITING", "brief_title": "a-very-long hyphenated-title-" * 2}
    assert sd.render_study(facts, "text")[0].splitlines()[1:3] == [
        "Title:       a-very-long", "             hyphenated-title-a-very-long", "             hyphenated-title-"][:2]


def test_render_study_blocks(monkeypatch):
    sites = [{"seq": i, "facility": f"Site {i}", "city": "Lyon", "country": "France", "status": "RECRUITING"}
             for i in range(1, 13)]
    facts = {"nct_id": "NCT1", "overall_status": "RECRUITING", "brief_summary": "Sum \\< up",
             "eligibility_criteria": "* adults", "locations": sites,
             "location_contacts": [{"location_seq": 1, "name": "A"}, {"location_seq": 1, "name": "B"},
                                   {"location_seq": 1, "name": "C"}, {"location_seq": 2},
                                   {"location_seq": 3, "email": "e"}],
             "changes": [{"observed_at": "2024-05-06T00:00:00Z", "field": "overall_status", "old": "RECRUITING",
                          "new": "COMPLETED", "item": None, "nct_id": "NCT1"},
                         {"observed_at": "2024-05-07T00:00:00Z", "field": "membership", "new": "left",
                          "topic": "spine", "nct_id": "NCT1"}]}
    blocks = sd.render_study(facts, "text")
    assert blocks[1:] == [
        "Summary:\n  Sum < up",
        "Sites (12):\n" + "\n".join(
            ["  Site 1, Lyon, France [Recruiting]", "    Contact: A", "    Contact: B",
             "  Site 2, Lyon, France [Recruiting]", "  Site 3, Lyon, France [Recruiting]", "    Contact: e"]
            + [f"  Site {i}, Lyon, France [Recruiting]" for i in range(4, 11)]) + "\n  ... and 2 more",
        "Eligibility criteria:\n  * adults",
        "Changes seen by trialsync:\n  2024-05-06  status: Recruiting -> Completed\n"
        "  2024-05-07  left topic spine",
    ]
    blocks = sd.render_study(facts, "text", sites_limit=None)
    assert blocks[2].startswith("Sites (12):\n") and blocks[2].endswith("  Site 12, Lyon, France [Recruiting]")
    blocks = sd.render_study({**facts, "locations": sites[:2]}, "text", sites_limit=2)
    assert blocks[2].endswith("  Site 2, Lyon, France [Recruiting]")
    monkeypatch.setenv("COLUMNS", "30")
    facts = {"nct_id": "NCT1", "overall_status": "RECRUITING",
             "locations": [{"seq": 1, "facility": "A long facility name", "city": "Lyon", "country": "France"}],
             "location_contacts": [{"location_seq": 1, "name": "Somebody Someone", "email": "some@where.org"}],
             "changes": [{"observed_at": "2024-05-06T00:00:00Z", "field": "overall_status", "old": "RECRUITING",
                          "new": "COMPLETED", "item": None, "nct_id": "NCT1"}]}
    assert sd.render_study(facts, "text")[1:] == [
        "Sites (1):\n  A long facility name, Lyon,\n    France\n    Contact: Somebody Someone\n"
        "      · some@where.org",
        "Changes seen by trialsync:\n  2024-05-06  status:\n    Recruiting -> Completed"]


# ---------------------------------------------------------------- export


def test_write_export_csv_nl_json_raw():
    out = io.StringIO()
    assert ex.write_export(iter([{"a": 1, "b": [1, 2]}, {"a": True, "b": None}]), "csv", out) == 2
    assert out.getvalue() == "a,b\n1,1; 2\ntrue,\n"
    out = io.StringIO()
    assert ex.write_export(iter([]), "csv", out) == 0 and out.getvalue() == ""
    out = io.StringIO()
    assert ex.write_export(iter([{"a": 1}, {"a": 2}]), "nl", out) == 2
    assert out.getvalue() == '{"a":1}\n{"a":2}\n'
    out = io.StringIO()
    assert ex.write_export(iter([]), "nl", out) == 0 and out.getvalue() == ""
    out = io.StringIO()
    assert ex.write_export(iter([{"a": 1}, {"a": 2}]), "json", out) == 2
    assert out.getvalue() == '[\n{"a":1},\n{"a":2}\n]\n'
    out = io.StringIO()
    assert ex.write_export(iter([]), "json", out) == 0 and out.getvalue() == "[]\n"
    out = io.StringIO()
    assert ex.write_export(iter(['{ "x" : 1 }']), "raw", out) == 1
    assert out.getvalue() == '[\n{ "x" : 1 }\n]\n'


def test_check_export_target(tmp_path):
    new = tmp_path / "new.csv"
    ex.check_export_target(new, False)
    ex.check_export_target(Path("/dev/null"), False, [Path("/dev/null")])
    old = tmp_path / "old.csv"
    old.write_text("x")
    with pytest.raises(UsageError, match=r"old\.csv exists; choose another file or add --force to replace it$"):
        ex.check_export_target(old, False)
    ex.check_export_target(old, True)
    with pytest.raises(UsageError, match=r" is a directory; name a file to write$"):
        ex.check_export_target(tmp_path, True)
    db = tmp_path / "t.db"
    db.write_text("")
    with pytest.raises(UsageError, match=r"t\.db is part of the database \(t\.db\); trialsync never writes over it$"):
        ex.check_export_target(db, True, [tmp_path / "other", db])
    link = tmp_path / "link"
    link.symlink_to(db)
    with pytest.raises(UsageError, match=r"link is part of the database \(t\.db\)"):
        ex.check_export_target(link, True, [db])
    hard = tmp_path / "hard"
    os.link(db, hard)
    with pytest.raises(UsageError, match=r"hard is part of the database \(t\.db\)"):
        ex.check_export_target(hard, True, [db])
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(UsageError, match=r"loop is a symlink loop; name a file to write$"):
        ex.check_export_target(loop, True)


def test_write_export_file(tmp_path):
    target = tmp_path / "out.json"
    assert ex.write_export_file(target, [{"a": 1}], "nl") == 1
    assert target.read_text() == '{"a":1}\n'
    assert list(tmp_path.iterdir()) == [target]
    target.chmod(0o640)
    assert ex.write_export_file(target, [{"a": 2}], "json") == 1
    assert target.read_text() == '[\n{"a":2}\n]\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    link = tmp_path / "link"
    link.symlink_to(target)
    assert ex.write_export_file(link, [{"a": 3}], "nl") == 1
    assert link.is_symlink() and target.read_text() == '{"a":3}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "out.json"]
    assert ex.write_export_file(Path("/dev/null"), [{"a": 1}, {"a": 2}], "nl") == 2

    def failing():
        yield {"a": 1}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ex.write_export_file(target, failing(), "nl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "out.json"]
    assert target.read_text() == '{"a":3}\n'
    with pytest.raises(UsageError, match=r"^cannot write .*missing/x\.csv: No such file or directory$"):
        ex.write_export_file(tmp_path / "missing" / "x.csv", [], "csv")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(UsageError, match=r"loop is a symlink loop; name a file to write$"):
        ex.write_export_file(loop, [], "csv")


def test_write_export_file_device_failures_are_not_usage_errors(tmp_path, monkeypatch):
    import errno

    for code in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EPIPE):
        def full(*_args, code=code):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(ex, "write_export", full)
        with pytest.raises(TrialsyncError) as caught:
            ex.write_export_file(tmp_path / "x.csv", [], "csv")
        assert type(caught.value) is TrialsyncError
        assert str(caught.value) == f"cannot write {tmp_path / 'x.csv'}: {os.strerror(code)}"
        assert list(tmp_path.iterdir()) == []

    def bare(*_args):
        raise OSError(errno.EACCES, None)

    monkeypatch.setattr(ex, "write_export", bare)
    with pytest.raises(UsageError, match=r"cannot write .*x\.csv: \[Errno 13\] None$"):
        ex.write_export_file(tmp_path / "x.csv", [], "csv")


def test_mode_for_a_new_file_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        assert ex._mode_for(tmp_path / "new") == 0o640
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)
    existing = tmp_path / "e"
    existing.write_text("")
    existing.chmod(0o604)
    assert ex._mode_for(existing) == 0o604


def test_small_export_helpers(tmp_path):
    a = tmp_path / "a"
    a.write_text("")
    assert ex._same_file(a, a) is True
    assert ex._same_file(a, tmp_path / "none") is False
    assert ex._is_stream(Path("/dev/null")) is True
    assert ex._is_stream(a) is False
    assert ex._is_stream(tmp_path / "none") is False
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert ex._is_stream(fifo) is True
    ex._remove_quietly(a)
    assert not a.exists()
    ex._remove_quietly(a)
    ex._remove_quietly(tmp_path / "none" / "x")
    ex._remove_quietly(fifo / "x")


# ---------------------------------------------------------------- what the first mutation run left alive


def _near_pair():
    site = {"facility": "Clinic", "city": "Chicago", "state": "Illinois", "country": "United States",
            "status": "RECRUITING"}
    a = {**STUDY, "distance_km": 5.0, "nearest_site": site, "lead_sponsor": "Sponsor " * 4, "brief_title": "Title " * 6}
    b = {**a, "nct_id": "NCT2", "distance_km": 1234.0, "nearest_site": {**site, "city": "Springfield-on-sea"}}
    return [a, b]


@pytest.mark.parametrize("width, text", [
    (60, "NCT ID    Km  Title                 Nearest site\n"
         "NCT1       5  Title Title Title T…  Recruiting · Chicago, IL\n"
         "NCT2    1234  Title Title Title T…  Recruiting · Springfiel…"),
    (64, "NCT ID  Status        Km  Title                 Nearest site\n"
         "NCT1    Recruiting     5  Title Title Title T…  Recruiting · Ch…\n"
         "NCT2    Recruiting  1234  Title Title Title T…  Recruiting · Sp…"),  # 16 wide below 80 columns
    (66, "NCT ID  Status        Km  Title                 Nearest site\n"
         "NCT1    Recruiting     5  Title Title Title T…  Recruiting · Chic…\n"
         "NCT2    Recruiting  1234  Title Title Title T…  Recruiting · Spri…"),
    (79, "NCT ID  Status      Phase    Km  Title                 Nearest site\n"
         "NCT1    Recruiting  2         5  Title Title Title T…  Recruiting · Chicago, IL\n"
         "NCT2    Recruiting  2      1234  Title Title Title T…  Recruiting · Springfiel…"),
    (80, "NCT ID  Status      Phase    Km  Title                 Nearest site\n"
         "NCT1    Recruiting  2         5  Title Title Title T…  Recruiting · Chicago, IL\n"
         "NCT2    Recruiting  2      1234  Title Title Title T…  Recruiting · Springfield…"),
    (90, "NCT ID  Status      Phase  Start      Km  Title                 Nearest site\n"
         "NCT1    Recruiting  2      2024-01     5  Title Title Title T…  Recruiting · Chicago, IL\n"
         "NCT2    Recruiting  2      2024-01  1234  Title Title Title T…  Recruiting · Springfield-…"),
    (110, "NCT ID  Status      Phase  Start      Km  Title                 Nearest site                  Lead sponsor\n"
          "NCT1    Recruiting  2      2024-01     5  Title Title Title T…  Recruiting · Chicago, IL      Sponsor Sponsor…\n"
          "NCT2    Recruiting  2      2024-01  1234  Title Title Title T…  Recruiting · Springfield-on…  Sponsor Sponsor…"),
])
def test_a_near_list_gives_way_in_its_order(monkeypatch, width, text):
    monkeypatch.setenv("COLUMNS", str(width))
    assert sd.render_study_list(_near_pair(), "text") == [text]


@pytest.mark.parametrize("width, text", [
    (40, "NCT ID  Status      Title\nNCT1    Recruiting  Title Title Title T…"),
    (50, "NCT ID  Status      Phase  Title\nNCT1    Recruiting  2      Title Title Title Titl…"),
    (60, "NCT ID  Status      Phase  Start    Title\nNCT1    Recruiting  2      2024-01  Title Title Title Title…"),
    (75, "NCT ID  Status      Phase  Start    Title                  Lead sponsor\n"
         "NCT1    Recruiting  2      2024-01  Title Title Title Ti…  Sponsor Sponsor…"),
])
def test_a_list_gives_way_in_its_order(monkeypatch, width, text):
    monkeypatch.setenv("COLUMNS", str(width))
    plain = {**STUDY, "brief_title": "Title " * 6, "lead_sponsor": "Sponsor " * 4}
    assert sd.render_study_list([plain], "text") == [text]


def test_a_list_in_markdown_and_as_a_table():
    assert sd.render_study_list([STUDY], "markdown", title="T") == [
        "**T**\n\n| NCT ID | Status | Phase | Start | Title | Lead sponsor |\n| --- | --- | --- | --- | --- | --- |\n"
        "| NCT1 | Recruiting | 2 | 2024-01 | A study | Acme |"]
    blocks = sd.render_study_list(_near_pair(), "table")
    assert [c.header.plain for c in blocks[-1].columns][:2] == ["NCT ID", "Status"]


@pytest.mark.parametrize("width, text", [
    (50, "NCT ID  Change                    Title\nNCT1    status: Recruiting -> C…  A rather long t…"),
    (60, "NCT ID  Change                           Title\nNCT1    status: Recruiting -> Completed  A rather long titl…"),
    (70, "Observed    NCT ID  Change                           Title\n"
         "2024-05-06  NCT1    status: Recruiting -> Completed  A rather long ti…"),
])
def test_the_change_log_shortens_its_titles(monkeypatch, width, text):
    monkeypatch.setenv("COLUMNS", str(width))
    assert ch.render_changes([_logged(brief_title="A rather long title of a study " * 2)], "text") == [text]


def test_other_formats_for_a_person_are_kept():
    assert ch.render_changes([_logged()], "markdown") == [
        "| Observed | NCT ID | Change | Title |\n| --- | --- | --- | --- |\n"
        "| 2024-05-06 | NCT1 | status: Recruiting -> Completed | A title |"]
    rows = [{"finished_at": "2024-01-02T03:04:05Z", "kind": "pull", "total": 2, "statuses": {"RECRUITING": 2}}]
    assert st.render_history("spine", rows, "markdown") == [
        "**spine: counts by status at each complete pull.**\n\n| Pull finished | Studies | Recruiting |\n"
        "| --- | ---: | ---: |\n| 2024-01-02 03:04:05 | 2 | 2 |"]
    assert st.render_verification(_check(), "markdown") == [
        "**spine: the store agrees with the API.**\n\n| Status | API | Store | Difference |\n"
        "| --- | ---: | ---: | ---: |\n| Recruiting | 2 | 2 |  |\n| Completed | 1 | 1 |  |\n| Total | 3 | 3 |  |"]


def test_render_digests_names_the_first_topic_when_a_group_is_cut():
    many = [_logged(id=i, nct_id=f"NCT{i}", brief_title=None) for i in range(1, ch.DIGEST_LINES + 2)]
    text = ch.render_digests([("zeta", many), ("alpha", many)])
    assert text.splitlines()[0] == "trialsync: 51 changes in zeta and alpha"
    assert text.splitlines()[-1] == "  ... and 1 more: `trialsync changes zeta --since 2024-05-06` lists them all"


def test_paragraphs_never_break_at_a_hyphen():
    assert sd._paragraphs("x aa-bb", 6) == "  x\n  aa-bb"


def test_render_study_names_every_fact_it_has():
    facts = {"nct_id": "NCT1", "overall_status": "TERMINATED", "official_title": "Official", "why_stopped": "Money",
             "primary_completion_date": "2025-01", "primary_completion_date_type": "ESTIMATED",
             "last_update_posted": "2024-06-01", "results_first_posted": "2024-07-01", "acronym": "   "}
    assert sd.render_study(facts, "text") == ["\n".join([
        "NCT ID:               NCT1",
        "Official title:       Official",
        "Acronym:              ",
        "Status:               Terminated",
        "Why stopped:          Money",
        "Primary completion:   2025-01 (estimated)",
        "Last update posted:   2024-06-01",
        "Results first posted: 2024-07-01",
        "Eligibility:          any age",
        "Links:                https://clinicaltrials.gov/study/NCT1",
    ])]


@pytest.mark.parametrize("width, title, lines", [
    (49, "aaaaa " * 7, ["aaaaa aaaaa aaaaa aaaaa aaaaa aaaaa", "aaaaa"]),  # 49 - 12 - 1 = 36
    (49, "x" * 17 + " " + "y" * 19, ["x" * 17, "y" * 19]),
    (49, "x" * 17 + " " + "y" * 18, ["x" * 17 + " " + "y" * 18]),
    (20, "x" * 15 + " " + "y" * 15, ["x" * 15, "y" * 15]),  # never narrower than 30
    (20, "x" * 14 + " " + "y" * 15, ["x" * 14 + " " + "y" * 15]),
])
def test_render_study_wraps_values_beside_their_keys(monkeypatch, width, title, lines):
    monkeypatch.setenv("COLUMNS", str(width))
    text = sd.render_study({"nct_id": "NCT1", "overall_status": "RECRUITING", "brief_title": title}, "text")[0]
    assert text.splitlines()[1:1 + len(lines)] == ["Title:       " + lines[0]] + ["             " + v for v in lines[1:]]


def test_render_study_sites_without_contacts():
    facts = {"nct_id": "NCT1", "overall_status": "RECRUITING", "locations": [{"seq": 1, "city": "Lyon"}]}
    assert sd.render_study(facts, "text")[1] == "Sites (1):\n  Unnamed site, Lyon"


def test_render_pulls_json_lines_of_no_pulls_is_empty():
    assert ch.render_pulls([], "nl") == []
    assert ch.render_pulls([PULL], "nl") == [to_json_lines([{**PULL, "duration": "1m05s"}])]


def test_status_report_in_markdown():
    blocks = st.render_status_report(_report(unknown_by_last_known={"RECRUITING": 1}), "3 studies", "markdown")
    assert blocks[0] == ("**spine: 3 studies.**\n\n| Status | Studies | Share |\n| --- | ---: | ---: |\n"
                         "| Recruiting | 2 | 66.7% |\n| Completed | 1 | 33.3% |\n| Total | 3 | 100.0% |")
    assert blocks[2] == ("**Unknown status, by last known status**\n\n| Last known status | Studies |\n"
                         "| --- | ---: |\n| Recruiting | 1 |")


def test_an_export_to_a_pipe_is_written_in_its_kind(tmp_path):
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    assert ex.write_export_file(fifo, [{"a": "é"}], "nl") == 1
    reader.join(5)
    assert got == ['{"a":"é"}\n'.encode()]


def test_the_partial_file_is_hidden_beside_the_target(tmp_path):
    target = tmp_path / "out.json"
    seen = []

    def items():
        seen.extend(p.name for p in tmp_path.iterdir())
        yield {"a": 1}

    ex.write_export_file(target, items(), "nl")
    assert len(seen) == 1 and seen[0].startswith(".out.json.") and seen[0].endswith(".partial")
    assert len(seen[0]) > len(".out.json..partial")


def test_mode_for_a_new_file_under_a_common_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert ex._mode_for(tmp_path / "new") == 0o644
    finally:
        os.umask(old)
    old = os.umask(0)
    try:
        assert ex._mode_for(tmp_path / "new") == 0o666
    finally:
        os.umask(old)


def test_csv_keeps_the_last_value_whole_and_markdown_titles_are_visible():
    assert tb.rows_as([{"a": "x "}], [Column("a", "A")], "csv") == ["a\nx "]
    assert tb.rows_as([{"a": "aX"}], [Column("a", "A")], "csv") == ["a\naX"]
    assert tb.rows_as([{"a": 1}], [Column("a", "A")], "markdown", title="T\x1b*") == [
        "**T\\\\x1b\\***\n\n| A |\n| --- |\n| 1 |"]


_FIXED = [Column("shown", "Value"), Column("total", "Studies", numeric=True)]


def test_status_columns_measure_the_counts_and_the_short_headers(monkeypatch):
    rows = [{"shown": "x", "total": 1, "statuses": {"X": 1000, "Y": 1, "Z": 5}}]
    # 5 + 7 + 4 + 1 + 1, and 2 * 4 between: 26
    monkeypatch.setenv("COLUMNS", "26")
    assert st._status_columns(["X", "Y", "Z"], rows, _FIXED, "text")[0] == ["X", "Y", "Z"]
    monkeypatch.setenv("COLUMNS", "25")
    assert st._status_columns(["X", "Y", "Z"], rows, _FIXED, "text")[0] == ["X", "OTHER"]
    three = ["NOT_YET_RECRUITING", "RECRUITING", "COMPLETED"]
    rows = [{"shown": "x", "total": 3, "statuses": {s: 1 for s in three}}]
    # 5 + 7 + 7 ("Not yet") + 10 + 9, and 8 between: 46
    monkeypatch.setenv("COLUMNS", "46")
    assert st._status_columns(three, rows, _FIXED, "text")[0] == three


def test_status_columns_merge_the_status_with_the_fewest_studies_in_all_rows(monkeypatch):
    statuses = ["SUSPENDED", "COMPLETED", "WITHDRAWN"]
    rows = [{"shown": "a", "total": 1, "statuses": {"WITHDRAWN": 2, "SUSPENDED": 1, "COMPLETED": 10}},
            {"shown": "b", "total": 1, "statuses": {"SUSPENDED": 1, "COMPLETED": 10}},
            {"shown": "c", "total": 1, "statuses": {"SUSPENDED": 1, "COMPLETED": 10}}]
    monkeypatch.setenv("COLUMNS", "45")
    shown, flat = st._status_columns(statuses, rows, _FIXED, "text")
    assert shown == ["SUSPENDED", "COMPLETED", "OTHER"]
    assert [r["OTHER"] for r in flat] == [2, 0, 0]


@pytest.mark.parametrize("width, text", [
    (45, "Lead sponsor      Studies  Recruiting  Completed\nA very long spo…        3           2          1"),
    (50, "Lead sponsor        Studies  Recruiting  Completed\nA very long spons…        3           2          1"),
])
def test_a_breakdown_shortens_its_values(monkeypatch, width, text):
    monkeypatch.setenv("COLUMNS", str(width))
    rows = [{"value": "A very long sponsor name of some company", "total": 3,
             "statuses": {"RECRUITING": 2, "COMPLETED": 1}}]
    assert st.render_breakdown(_breakdown(by="sponsor", rows=rows), "text")[0].endswith("\n" + text)


def test_a_breakdown_by_year_shows_the_years():
    report = _breakdown(by="start-year", rows=[{"value": 2020, "total": 1, "statuses": {"RECRUITING": 1}}])
    assert st.render_breakdown(report, "text")[0].splitlines()[-1] == "2020              1           1"


def test_site_place_codes_only_a_state_of_the_united_states():
    assert sd._site_place({"city": "Tbilisi", "state": "Georgia", "country": "Georgia"}) == "Tbilisi, Georgia"
    assert sd._site_place({"city": "X", "country": "United States"}) == "X, United States"


def test_terminal_width_falls_back_to_80(monkeypatch):
    def no_terminal(*_args):
        raise OSError

    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr(os, "get_terminal_size", no_terminal)
    assert tb.terminal_width() == 80


def test_a_table_title_is_wrapped_to_the_width_given():
    blocks = tb.rows_as(ROWS, COLS, "table", title="aaa bbb ccc", width=8)
    assert blocks[0] == "aaa bbb\nccc"


P2 = {**PULL, "id": 8, "updated": 100, "left_topic": 12, "error": "a long error message about the failure"}


def test_render_pulls_align_every_number_right(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert ch.render_pulls([PULL, P2], "text") == [
        "#  Topic  Started            Took  Mode  Members  Outcome  Requests  Received  New  Updated  Left  Error\n"
        "7  spine  2024-01-02 03:04  1m05s  full  changes  ok              3        20    5        2     1\n"
        "8  spine  2024-01-02 03:04  1m05s  full  changes  ok              3        20    5      100    12  "
        "a long error message about the failure"]


@pytest.mark.parametrize("width, error", [(119, "a long error messag…"), (114, "a long error m…"),
                                          (111, "a long erro…"), (110, None)])
def test_render_pulls_shorten_the_error_to_twelve_then_drop_it(monkeypatch, width, error):
    monkeypatch.setenv("COLUMNS", str(width))
    lines = ch.render_pulls([P2], "text")[0].splitlines()
    assert lines[1].startswith("8  spine  2024-01-02 03:04  1m05s  full  changes  ok              3        20    5      100    12")
    if error:
        assert lines[0].endswith("  Left  Error") and lines[1].endswith("12  " + error)
    else:
        assert lines[0].endswith("  Left") and lines[1].endswith("12")


def test_render_pulls_in_markdown():
    assert ch.render_pulls([PULL], "markdown") == [
        "| # | Topic | Started | Took | Mode | Members | Outcome | Requests | Received | New | Updated | Left | Error |\n"
        "| ---: | --- | --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n"
        "| 7 | spine | 2024-01-02 03:04 | 1m05s | full | changes | ok | 3 | 20 | 5 | 2 | 1 |  |"]


def test_as_of_line_names_when_the_last_failed_pull_finished_if_it_did():
    failed = {"outcome": "interrupted", "finished_at": "2026-12-01T02:00:00Z", "error": "stopped"}
    report = {"as_of": None, "total": 0, "last_failed_pull": failed}
    assert st._as_of_line(report) == "Not pulled yet: the last pull of 2026-12-01T02:00:00Z was interrupted: stopped"
    report["last_failed_pull"] = {**failed, "finished_at": None, "error": None}
    assert st._as_of_line(report) == "Not pulled yet: the last pull was interrupted: no error recorded"


def test_a_results_line_wraps_under_its_own_indent_and_a_blank_one_stays():
    from trialsync.render.results import _wrap

    assert _wrap("  Primary outcome: pain at rest after twelve weeks", 24) == (
        "  Primary outcome: pain\n    at rest after twelve\n    weeks")
    assert _wrap("   ", 24) == "   "


def test_an_outcome_without_a_time_frame_names_none():
    from trialsync.render.results import _outcome

    outcome = {"outcome_type": "PRIMARY", "title": "Pain", "groups": [], "counts": [], "measurements": []}
    assert _outcome(outcome, False)[0] == "  Primary outcome: Pain"
    assert _outcome({**outcome, "time_frame": "Week 12"}, False)[0] == "  Primary outcome: Pain (Week 12)"


def test_a_feed_says_what_it_is_and_an_entry_names_the_item_that_changed():
    from trialsync.render.feed import _what, render_feed

    text = render_feed({"topic": "spine", "updated": "2026-12-01T00:00:00Z", "entries": []})
    assert ("<subtitle>What changed in the ClinicalTrials.gov studies of topic spine, one entry per study and pull"
            "</subtitle>") in text
    assert _what({"field": "site_status", "item": "Chicago"}).endswith(": Chicago")
    assert ": " not in _what({"field": "overall_status", "item": None})


def test_a_charts_axis_tops_at_the_next_round_number():
    from trialsync.render.html import _scale_top

    assert [_scale_top(n) for n in (0, 1, 2, 3, 4, 5, 6, 10, 11, 39, 41, 50, 51, 100, 101)] == [
        2, 2, 2, 4, 4, 5, 10, 10, 20, 40, 50, 50, 100, 100, 200]
