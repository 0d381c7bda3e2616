"""`trialsync mcp`: the MCP server, driven by the official SDK's client in memory and once for real over stdio in a
subprocess. Every tool is listed with a schema; each answer equals the CLI's JSON for the same question (freshness
and links beside it); paging reaches the end with nothing twice and nothing missed; failures are one-line tool
errors; the database's bytes are the same after every tool, and no file appears beside it.

The database: all 140 real records imported as topic 'all'; the 13 spine records pulled three times as topic
'spine' (between the first two a study was terminated and one left; before the third, four changed status)."""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, SPINE_CONDITION_IDS, ModuleCli, fixture_record, pull_spine_twice, with_status
from fakeapi import Corpus, FakeApi, load_fixture_records

anyio = pytest.importorskip("anyio", reason="the MCP SDK is a test dependency: pip install '.[test]'")
mcp = pytest.importorskip("mcp", reason="the MCP SDK is a test dependency: pip install '.[test]'")

from mcp import Client, StdioServerParameters  # noqa: E402

from trialsync.mcp_server import build_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"list_topics", "status_report", "search_studies", "get_study", "study_results", "changes", "history"}
# Before the third pull of 'spine': each of these real records with a new status and a newer update date.
THIRD_PULL = {"NCT05305430": "ACTIVE_NOT_RECRUITING", "NCT05821920": "COMPLETED", "NCT06127745": "SUSPENDED",
              "NCT06589271": "ACTIVE_NOT_RECRUITING"}
SPINE_FRESHNESS = {"topic": "spine", "last_complete_pull": "2026-11-24T10:00:00Z", "kind": "pull",
                   "data_timestamp": "2026-11-24T09:00:00"}
ALL_FRESHNESS = {"topic": "all", "last_complete_pull": "2026-11-19T10:00:00Z", "kind": "import",
                 "data_timestamp": None}


class Cli(ModuleCli):
    """The CLI on one database, in-process, for the module-scoped mirror."""

    def __init__(self, db: Path):
        super().__init__({"TRIALSYNC_DB": str(db), "TRIALSYNC_RATE": "0", "COLUMNS": "200"})

    def json(self, *args: str):
        result = self(*args, "--format", "json")
        assert result.code == 0, result.err
        return json.loads(result.out)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """(database path, CLI on it). Built by the CLI: an import, then three pulls from the stand-in API."""
    from trialsync import dates

    tmp = tmp_path_factory.mktemp("mcp")
    db = tmp / "mirror" / "trialsync.db"
    db.parent.mkdir()
    cli = Cli(db)
    clock = {"now": "2026-11-19T10:00:00Z"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dates, "utc_now", lambda: clock["now"])
        every = tmp / "all.json"
        every.write_text(json.dumps(load_fixture_records()))
        assert cli("import", str(every), "--topic", "all").code == 0
        with FakeApi(Corpus([fixture_record(i) for i in SPINE_CONDITION_IDS])) as server:
            pull_spine_twice(cli, server, clock)
            clock["now"] = "2026-11-24T10:00:00Z"
            server.data_timestamp = "2026-11-24T09:00:00"
            for nct_id, status in THIRD_PULL.items():
                server.corpus.put(with_status(fixture_record(nct_id), status, updated="2026-11-24"))
            assert cli("pull", "spine", "--api-url", server.url).code == 0
    return db, cli


@pytest.fixture(scope="module")
def server(mirror):
    return build_server(mirror[0])


def session(server, work):
    """``work(client)`` in a session of the SDK's client with ``server``, over its in-memory transport."""
    async def run():
        async with Client(server, mode="legacy") as client:
            return await work(client)
    return anyio.run(run)


def ask(server, tool: str, **arguments) -> dict:
    """The structured answer of one tool call, which must not be an error."""
    async def work(client):
        return await client.call_tool(tool, arguments)
    result = session(server, work)
    assert not result.is_error, result.content
    assert json.loads(result.content[0].text) == result.structured_content  # the text says the same
    return result.structured_content


def refusal(server, tool: str, **arguments) -> str:
    """The text of a tool error, which must be one line."""
    async def work(client):
        return await client.call_tool(tool, arguments)
    result = session(server, work)
    assert result.is_error, result.structured_content
    assert len(result.content) == 1 and "\n" not in result.content[0].text
    return result.content[0].text


async def every_page(client, tool: str, key: str, **arguments) -> tuple[list, list[dict]]:
    """Each item of every page of ``tool``, following next_cursor to the end; and the answers."""
    items, answers, cursor = [], [], None
    while True:
        result = await client.call_tool(tool, {**arguments, **({"cursor": cursor} if cursor else {})})
        assert not result.is_error, result.content
        answer = result.structured_content
        answers.append(answer)
        items += answer[key]
        cursor = answer["next_cursor"]
        if cursor is None:
            return items, answers


def all_pages(server, tool: str, key: str, **arguments) -> tuple[list, list[dict]]:
    return session(server, lambda client: every_page(client, tool, key, **arguments))


def files_of(db: Path) -> dict[str, str]:
    """Each file in the database's folder and the hash of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(db.parent.iterdir())}


# -- the tools, as an assistant sees them ----------------------------------------------------------------------


def test_every_tool_is_listed_with_a_schema_a_description_and_read_only(server):
    async def work(client):
        return (await client.list_tools()).tools, (await client.list_resource_templates()).resource_templates, \
            (await client.list_prompts()).prompts
    tools, templates, prompts = session(server, work)
    assert {tool.name for tool in tools} == TOOLS
    for tool in tools:
        assert tool.input_schema["type"] == "object", tool.name
        assert len(tool.description) > 200, tool.name  # says what it answers, not only its name
        assert tool.annotations.read_only_hint and not tool.annotations.open_world_hint, tool.name
        for name, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), (tool.name, name)
    properties = {tool.name: tool.input_schema["properties"] for tool in tools}
    assert set(properties["search_studies"]) == {"topic", "status", "phase", "near", "within_km", "age", "text",
                                                 "results_due", "limit", "cursor"}
    assert properties["status_report"]["by"]["anyOf"][0]["enum"] == [
        "phase", "study-type", "sponsor-class", "sponsor", "start-year", "country", "condition", "results"]
    assert set(properties["study_results"]) == {"nct_id"}
    assert "statusModule" in properties["get_study"]["sections"]["anyOf"][0]["items"]["enum"]
    assert {t.uri_template for t in templates} == {"trialsync://study/{nct_id}", "trialsync://topic/{name}"}
    assert [(p.name, [a.name for a in p.arguments]) for p in prompts] == [("changes_since", ["topic", "since"])]


def test_list_topics_is_the_cli_topics_list_with_each_topics_freshness(server, mirror):
    _, cli = mirror
    answer = ask(server, "list_topics")
    assert answer == {"topics": cli.json("topics", "list"), "default_topic": None,
                      "freshness": [ALL_FRESHNESS, SPINE_FRESHNESS]}
    assert [t["name"] for t in answer["topics"]] == ["all", "spine"]


@pytest.mark.parametrize("arguments, cli_args", [
    ({}, []),
    ({"by": "phase"}, ["--by", "phase"]),
    ({"by": "condition"}, ["--by", "condition"]),
    ({"as_of": "2026-11-21"}, ["--as-of", "2026-11-21"]),
    ({"by": "country", "as_of": "2026-11-22T10:00"}, ["--by", "country", "--as-of", "2026-11-22T10:00"]),
])
def test_status_report_is_the_cli_status_report_with_freshness(server, mirror, arguments, cli_args):
    _, cli = mirror
    answer = ask(server, "status_report", topic="spine", **arguments)
    assert answer == {**cli.json("status-report", "spine", *cli_args), "freshness": [SPINE_FRESHNESS]}


def test_status_report_counts_the_topic_as_stored_and_as_it_stood(server):
    now = ask(server, "status_report", topic="spine")
    assert now["total"] == 12 and now["left_since_previous"] == 0
    assert {e["status"]: e["count"] for e in now["statuses"]}["ACTIVE_NOT_RECRUITING"] == 2
    first = ask(server, "status_report", topic="spine", as_of="2026-11-21")
    assert (first["total"], first["as_of"]) == (13, "2026-11-20T10:00:00Z")
    assert first["freshness"] == [SPINE_FRESHNESS]  # how fresh the mirror is now, whatever moment was asked


@pytest.mark.parametrize("arguments, cli_args", [
    ({"topic": "all"}, ["all"]),
    ({"topic": "all", "status": ["recruiting"], "age": 45}, ["all", "--status", "recruiting", "--age", "45"]),
    ({"topic": "all", "status": ["Active, not recruiting, completed"], "phase": ["2", "phase 3"]},
     ["all", "--status", "Active, not recruiting, completed", "--phase", "2", "--phase", "phase 3"]),
    ({"topic": "all", "near": "Chicago, IL", "within_km": 500}, ["all", "--near", "Chicago, IL", "--within", "500km"]),
    ({"topic": "all", "status": ["recruiting"], "near": "Boston, MA"}, ["all", "--status", "recruiting", "--near",
                                                                        "Boston, MA"]),
    ({"topic": "all", "text": "cervical OR lumbar"}, ["all", "--search", "cervical OR lumbar"]),
    ({"topic": "spine", "text": "covid-19 spine"}, ["spine", "--search", "covid-19 spine"]),
])
def test_search_studies_paged_to_the_end_is_the_cli_list(server, mirror, arguments, cli_args):
    _, cli = mirror
    expected = cli.json("list", *cli_args)
    studies, answers = all_pages(server, "search_studies", "studies", limit=4, **arguments)
    assert studies == expected  # the same studies in the same order: nothing twice, nothing missed
    assert [len(a["studies"]) for a in answers] == ([len(expected[at:at + 4]) for at in range(0, len(expected), 4)]
                                                    or [0])
    assert {a["total"] for a in answers} == {len(expected)}
    assert all(s["url"] == f"https://clinicaltrials.gov/study/{s['nct_id']}" for s in studies)
    topic = arguments["topic"]
    for answer in answers:
        assert answer["topic"] == topic
        assert answer["freshness"] == [ALL_FRESHNESS if topic == "all" else SPINE_FRESHNESS]
        assert answer["note"].startswith(f"A search of the local mirror only: the studies topic '{topic}' held at its "
                                         "last complete pull")
        assert "It is not ClinicalTrials.gov's search" in answer["note"]
        assert ("full-text index" in answer["note"]) == ("text" in arguments)


def test_the_cases_searched_hold_several_pages(server, mirror):
    """The paging test above is only as good as its data: each question has more than one page of 4."""
    _, cli = mirror
    assert len(cli.json("list", "all", "--near", "Chicago, IL", "--within", "500km")) == 21
    assert len(cli.json("list", "all", "--search", "cervical OR lumbar")) == 27
    assert len(cli.json("list", "spine", "--search", "covid-19 spine")) == 0


def test_search_studies_without_a_topic_needs_one_when_several_are_stored(server):
    assert refusal(server, "search_studies") == (
        "several topics are stored (all, spine): name one")


def test_with_one_topic_stored_search_studies_searches_it(cli, tmp_path):
    assert cli("import", str(ROOT / "data" / "stem-cell-spine-sample.json")).code == 0
    server = build_server(tmp_path / "cli.db")
    assert ask(server, "list_topics")["default_topic"] == "stem-cell-spine"
    studies, answers = all_pages(server, "search_studies", "studies", limit=3)
    assert studies == json.loads(cli("list", "--format", "json").out) and len(studies) == 7
    assert {a["topic"] for a in answers} == {"stem-cell-spine"}
    assert answers[0]["freshness"][0]["kind"] == "import"


def test_a_page_size_can_change_between_pages(server, mirror):
    _, cli = mirror

    async def work(client):
        first = (await client.call_tool("search_studies", {"topic": "all", "limit": 5})).structured_content
        rest = await every_page(client, "search_studies", "studies", topic="all", limit=100,
                                cursor=first["next_cursor"])
        return first["studies"] + rest[0]
    assert session(server, work) == cli.json("list", "all")


def test_get_study_is_the_stored_record_and_its_export_row(server, mirror):
    _, cli = mirror
    answer = ask(server, "get_study", nct_id="nct05489822")
    record = cli.json("show", "NCT05489822")
    exported = {row["nct_id"]: row for row in cli.json("export", "all")}
    assert answer == {
        "nct_id": "NCT05489822", "url": "https://clinicaltrials.gov/study/NCT05489822", "record": record,
        "absent_sections": [], "summary": exported["NCT05489822"],
        "topics": [{"topic": "all", "present": True, "left_at": None},
                   {"topic": "spine", "present": True, "left_at": None}],
        "freshness": [ALL_FRESHNESS, SPINE_FRESHNESS]}
    assert answer["summary"]["overall_status"] == "TERMINATED"


def test_get_study_of_a_study_that_left_a_topic_says_when(server):
    answer = ask(server, "get_study", nct_id="NCT04056520")
    assert answer["topics"] == [{"topic": "all", "present": True, "left_at": None},
                                {"topic": "spine", "present": False, "left_at": "2026-11-22T10:00:00Z"}]
    assert answer["freshness"] == [ALL_FRESHNESS]


def test_get_study_gives_only_the_sections_asked_for_where_the_record_keeps_them(server, mirror):
    _, cli = mirror
    record = cli.json("show", "NCT05489822")
    answer = ask(server, "get_study", nct_id="NCT05489822",
                 sections=["statusModule", "resultsSection", "derivedSection", "eligibilityModule"])
    assert answer["record"] == {
        "protocolSection": {"statusModule": record["protocolSection"]["statusModule"],
                            "eligibilityModule": record["protocolSection"]["eligibilityModule"]},
        "derivedSection": record["derivedSection"]}
    assert answer["absent_sections"] == ["resultsSection"]
    assert answer["summary"] == ask(server, "get_study", nct_id="NCT05489822")["summary"]


def test_get_study_of_a_record_with_results_gives_its_results_section(server):
    with_results = json.loads((FIXTURES / "studies" / "NCT00106392.json").read_text())
    assert "resultsSection" in with_results
    answer = ask(server, "get_study", nct_id="NCT00106392", sections=["resultsSection", "outcomeMeasuresModule"])
    assert answer["record"] == {"resultsSection": with_results["resultsSection"]}
    assert answer["absent_sections"] == []


@pytest.mark.parametrize("topic, since, limit", [(None, None, 4), ("spine", None, 1), ("all", None, 2),
                                                 ("spine", "2026-11-23", 3), (None, "2026-11-25", 10)])
def test_changes_paged_to_the_end_are_the_cli_changes(server, mirror, topic, since, limit):
    _, cli = mirror
    args = ([topic] if topic else []) + (["--since", since] if since else [])
    expected = cli.json("changes", *args)
    arguments = {k: v for k, v in {"topic": topic, "since": since}.items() if v}
    changes, answers = all_pages(server, "changes", "changes", limit=limit, **arguments)
    assert changes == expected
    assert {a["total"] for a in answers} == {len(expected)}
    assert len(answers) == max(1, -(-len(expected) // limit))
    for answer in answers:
        assert answer["topic"] == topic
        assert answer["study_urls"] == {c["nct_id"]: f"https://clinicaltrials.gov/study/{c['nct_id']}"
                                        for c in answer["changes"]}
        assert answer["freshness"] == {None: [ALL_FRESHNESS, SPINE_FRESHNESS], "all": [ALL_FRESHNESS],
                                       "spine": [SPINE_FRESHNESS]}[topic]


def test_study_results_is_the_cli_results_of_show_with_freshness(server, mirror):
    _, cli = mirror
    answer = ask(server, "study_results", nct_id="NCT00106392")
    assert answer == {**cli.json("show", "NCT00106392", "--results"), "freshness": [ALL_FRESHNESS]}
    assert answer["posted"] and answer["results_category"] == "posted" and len(answer["outcomes"]) == 6
    assert [o["outcome_type"] for o in answer["outcomes"]][:1] == ["PRIMARY"]
    without = ask(server, "study_results", nct_id="NCT05489822")
    assert (without["posted"], without["outcomes"], without["results_category"]) == (False, [], "not applicable")
    assert refusal(server, "study_results", nct_id="NCT0000") .startswith("'NCT0000' is not an NCT id")


def test_studies_owing_results_paged_to_the_end_are_the_cli_list(server, mirror):
    _, cli = mirror
    expected = cli.json("list", "all", "--results-due")
    assert expected and all(row["days_overdue"] > 30 for row in expected)
    studies, answers = all_pages(server, "search_studies", "studies", topic="all", results_due=True, limit=2)
    assert studies == expected
    assert ask(server, "status_report", topic="all", by="results") == {
        **cli.json("status-report", "all", "--by", "results"), "freshness": [ALL_FRESHNESS]}


def test_the_changes_paged_are_those_of_the_pulls(mirror):
    _, cli = mirror
    changes = cli.json("changes")
    assert len(changes) == 6
    assert {(c["nct_id"], c["new"]) for c in changes[:4]} == set(THIRD_PULL.items())
    assert cli.json("changes", "--since", "2026-11-25") == []


def test_history_is_the_cli_history_with_freshness(server, mirror):
    _, cli = mirror
    answer = ask(server, "history", topic="spine")
    assert answer == {**cli.json("history", "spine"), "freshness": [SPINE_FRESHNESS]}
    assert [p["total"] for p in answer["pulls"]] == [13, 12, 12]


def test_resources_answer_as_the_tools_do(server, mirror):
    _, cli = mirror

    async def work(client):
        study = await client.read_resource("trialsync://study/NCT05489822")
        topic = await client.read_resource("trialsync://topic/spine")
        return study.contents[0], topic.contents[0]
    study, topic = session(server, work)
    assert study.mime_type == topic.mime_type == "application/json"
    assert json.loads(study.text) == ask(server, "get_study", nct_id="NCT05489822")
    assert json.loads(topic.text) == {**cli.json("status-report", "spine"), "search": {"query.cond": "spine"},
                                      "website_search": "https://clinicaltrials.gov/search?cond=spine",
                                      "freshness": [SPINE_FRESHNESS]}


@pytest.mark.parametrize("uri, message", [
    ("trialsync://study/NCT99999999", "NCT99999999 is not in the database"),
    ("trialsync://study/NCT123", "'NCT123' is not an NCT id"),
    ("trialsync://topic/nope", "unknown topic 'nope' (known: all, spine, stem-cell-spine)"),
])
def test_a_resource_that_is_not_there_is_an_error_of_one_line(server, uri, message):
    async def work(client):
        with pytest.raises(mcp.MCPError) as caught:
            await client.read_resource(uri)
        return caught.value
    error = session(server, work)
    assert str(error).startswith(message) and "\n" not in str(error)


def test_the_prompt_asks_for_every_page_of_the_changes_since_the_date(server):
    async def work(client):
        return await client.get_prompt("changes_since", {"topic": "spine", "since": "2026-11-01"})
    prompt = session(server, work)
    text = prompt.messages[0].content.text
    assert prompt.messages[0].role == "user"
    assert "topic='spine' and since='2026-11-01'" in text and "next_cursor" in text and "status_report" in text
    assert "local mirror" in text and "freshness" in text


@pytest.mark.parametrize("arguments, message", [
    ({"topic": "nope", "since": "2026-11-01"}, "unknown topic 'nope'"),
    ({"topic": "spine", "since": "November"}, "since takes a date as YYYY-MM-DD, not 'November'"),
])
def test_the_prompt_refuses_what_it_cannot_ask_for(server, arguments, message):
    async def work(client):
        with pytest.raises(mcp.MCPError) as caught:
            await client.get_prompt("changes_since", arguments)
        return caught.value
    assert str(session(server, work)).startswith(message)


# -- errors: one line an assistant can relay --------------------------------------------------------------------


@pytest.mark.parametrize("tool, arguments, message", [
    ("status_report", {"topic": "nope"},
     "unknown topic 'nope' (known: all, spine, stem-cell-spine); add one with `trialsync topics add`"),
    ("history", {"topic": "Spine\nx"}, "unknown topic 'Spine\\nx' (known: all, spine, stem-cell-spine); add one with "
                                       "`trialsync topics add`"),
    ("changes", {"topic": "nope"}, "unknown topic 'nope' (known: all, spine, stem-cell-spine); add one with "
                                   "`trialsync topics add`"),
    ("get_study", {"nct_id": "NCT123"}, "'NCT123' is not an NCT id (NCT followed by 8 digits, e.g. NCT04042844)"),
    ("get_study", {"nct_id": "NCT99999999"}, "NCT99999999 is not in the database (pull a topic that holds it, "
                                             "`trialsync import` it, or `trialsync show --fetch` it)"),
    ("status_report", {"topic": "spine", "as_of": "yesterday"},
     "as_of takes a date (YYYY-MM-DD) or a date and time in UTC (YYYY-MM-DDTHH:MM[:SS]), not 'yesterday'"),
    ("status_report", {"topic": "spine", "as_of": "2026-11-01"},
     "topic 'spine' had no complete pull or import at or before 2026-11-01T23:59:59Z"),
    ("status_report", {"topic": "spine", "by": "colour"},
     "by: Input should be 'phase', 'study-type', 'sponsor-class', 'sponsor', 'start-year', 'country', 'condition' or 'results'"),
    ("search_studies", {"topic": "all", "status": ["recruting"]},
     "status: 'recruting' is not a study status (did you mean RECRUITING?); one of: NOT_YET_RECRUITING, RECRUITING, "
     "ENROLLING_BY_INVITATION, ACTIVE_NOT_RECRUITING, SUSPENDED, TERMINATED, COMPLETED, WITHDRAWN, UNKNOWN, AVAILABLE, "
     "NO_LONGER_AVAILABLE, TEMPORARILY_NOT_AVAILABLE, APPROVED_FOR_MARKETING, WITHHELD"),
    ("search_studies", {"topic": "all", "status": ["recruiting", " , "]}, "status needs a value, not ' , '"),
    ("search_studies", {"topic": "all", "phase": ["7"]}, "phase: '7' is not a phase; one of: EARLY_PHASE1, PHASE1, "
                                                         "PHASE2, PHASE3, PHASE4, NA"),
    ("search_studies", {"topic": "all", "within_km": 50}, "within_km needs near: the place to measure from"),
    ("search_studies", {"topic": "all", "near": "Nowhereville, Atlantis"},
     "near: no city called 'Nowhereville, Atlantis' is known, nor is any stored site in one; give LAT,LON instead"),
    ("search_studies", {"topic": "all", "text": "*"}, "text: '*' holds no words to look for"),
    ("search_studies", {"topic": "all", "text": "  "}, "text needs words to look for"),
    ("search_studies", {"topic": "all", "limit": 0}, "limit: Input should be greater than or equal to 1"),
    ("search_studies", {"topic": "all", "age": -1}, "age: Input should be greater than or equal to 0"),
    ("search_studies", {"topic": "all", "cursor": "not-a-cursor"},
     "cursor: not a cursor this server gave; leave it out to start from the first page"),
    ("changes", {"since": "2026-13-01"}, "since takes a date as YYYY-MM-DD, not '2026-13-01'"),
    ("history", {}, "topic: Field required"),
])
def test_a_failure_is_a_tool_error_of_one_line(server, tool, arguments, message):
    assert refusal(server, tool, **arguments) == message


def test_a_cursor_belongs_to_its_question(server):
    first = ask(server, "search_studies", topic="all", limit=2)
    assert refusal(server, "search_studies", topic="all", status=["recruiting"], cursor=first["next_cursor"]) == (
        "cursor: it belongs to another question; ask with the same arguments as the page that gave it, or leave it "
        "out to start from the first page")
    assert refusal(server, "changes", cursor=first["next_cursor"]).startswith("cursor: it belongs to another question")
    assert ask(server, "search_studies", topic="all", limit=2, cursor=first["next_cursor"])["studies"] == \
        ask(server, "search_studies", topic="all", limit=4)["studies"][2:]


def test_a_cursor_from_before_a_pull_or_import_is_refused(tmp_path, mirror):
    """An offset into a mirror that changed would repeat or miss studies: the next page says so instead."""
    db = tmp_path / "copy.db"
    shutil.copyfile(mirror[0], db)
    changed = build_server(db)
    first = ask(changed, "search_studies", topic="all", limit=3)
    second = ask(changed, "search_studies", topic="all", limit=3, cursor=first["next_cursor"])
    records = tmp_path / "one.json"
    records.write_text(json.dumps([with_status(fixture_record("NCT06413225"), "WITHDRAWN", updated="2026-11-30")]))
    assert Cli(db)("import", str(records), "--topic", "all").code == 0
    assert refusal(changed, "search_studies", topic="all", limit=3, cursor=second["next_cursor"]) == (
        "cursor: the mirror changed since the first page (a pull or import wrote to it); leave the cursor out to "
        "start again from the first page")
    assert refusal(changed, "changes", cursor=ask(build_server(mirror[0]), "changes", limit=1)["next_cursor"]) == (
        "cursor: the mirror changed since the first page (a pull or import wrote to it); leave the cursor out to "
        "start again from the first page")


def test_without_a_database_each_tool_names_trialsync_pull(tmp_path):
    missing = tmp_path / "none" / "trialsync.db"
    server = build_server(missing)
    expected = (f"no trialsync database at {missing} yet: `trialsync pull` or `trialsync import FILE` makes one")
    for tool, arguments in [("list_topics", {}), ("status_report", {"topic": "spine"}), ("search_studies", {}),
                            ("get_study", {"nct_id": "NCT05489822"}), ("study_results", {"nct_id": "NCT05489822"}),
                            ("changes", {}), ("history", {"topic": "x"})]:
        assert refusal(server, tool, **arguments) == expected
    assert not missing.parent.exists()  # nothing made, not even the folder


def test_a_database_of_an_older_trialsync_is_refused_untouched(tmp_path):
    db = tmp_path / "old.db"
    shutil.copyfile(FIXTURES / "db" / "v3-fcfb81e.db", db)
    before = files_of(db)
    assert refusal(build_server(db), "list_topics") == (
        f"database {db} was made by an older trialsync (schema 3); it is read here without writing, so it cannot be "
        "upgraded here: any other trialsync command, `trialsync status-report` say, upgrades it in place")
    assert files_of(db) == before


def test_a_file_that_is_not_a_trialsync_database_is_refused_untouched(tmp_path):
    db = tmp_path / "notes.db"
    db.write_bytes(b"not a database\n" * 20)
    assert refusal(build_server(db), "list_topics") == (
        f"cannot use database {db}: it is not a SQLite database; trialsync leaves it untouched")
    assert db.read_bytes() == b"not a database\n" * 20


# -- read-only ----------------------------------------------------------------------------------------------------


def test_no_tool_resource_or_prompt_changes_a_byte_or_makes_a_file(tmp_path, mirror):
    db = tmp_path / "ro" / "trialsync.db"
    db.parent.mkdir()
    shutil.copyfile(mirror[0], db)
    server = build_server(db)
    before = files_of(db)
    assert list(before) == ["trialsync.db"]
    calls = [("list_topics", {}), ("status_report", {"topic": "spine"}), ("status_report", {"topic": "all", "by": "phase"}),
             ("status_report", {"topic": "spine", "by": "sponsor", "as_of": "2026-11-21"}),
             ("search_studies", {"topic": "all", "near": "Boston, MA", "text": "cancer", "limit": 2}),
             ("get_study", {"nct_id": "NCT05489822", "sections": ["statusModule"]}), ("changes", {"limit": 2}),
             ("study_results", {"nct_id": "NCT00106392"}), ("search_studies", {"topic": "all", "results_due": True}),
             ("status_report", {"topic": "all", "by": "results"}),
             ("history", {"topic": "spine"}), ("status_report", {"topic": "nope"})]

    async def work(client):
        for tool, arguments in calls:
            await client.call_tool(tool, arguments)
            assert files_of(db) == before, tool
        await client.read_resource("trialsync://study/NCT05489822")
        await client.read_resource("trialsync://topic/all")
        await client.get_prompt("changes_since", {"topic": "all", "since": "2026-11-01"})
        assert files_of(db) == before
    session(server, work)


# -- for real: `trialsync mcp` over stdio ---------------------------------------------------------------------


def test_trialsync_mcp_over_stdio_answers_as_the_cli_does_and_writes_nothing(tmp_path, mirror):
    _, cli = mirror
    db = tmp_path / "stdio" / "trialsync.db"
    db.parent.mkdir()
    shutil.copyfile(mirror[0], db)
    before = files_of(db)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8"}
    parameters = StdioServerParameters(command=sys.executable, args=["-m", "trialsync", "mcp", "--db", str(db)],
                                       env=env, cwd=str(tmp_path))

    async def work(client):
        tools = (await client.list_tools()).tools
        report = await client.call_tool("status_report", {"topic": "spine"})
        studies, _ = await every_page(client, "search_studies", "studies", topic="all", status=["recruiting"], limit=7)
        study = await client.call_tool("get_study", {"nct_id": "NCT05489822"})
        unknown = await client.call_tool("status_report", {"topic": "nope"})
        return tools, report, studies, study, unknown

    async def run():
        async with Client(parameters) as client:
            return await work(client)
    tools, report, studies, study, unknown = anyio.run(run)
    assert {tool.name for tool in tools} == TOOLS
    assert report.structured_content == {**cli.json("status-report", "spine"), "freshness": [SPINE_FRESHNESS]}
    assert studies == cli.json("list", "all", "--status", "recruiting") and len(studies) > 7
    assert study.structured_content["record"] == cli.json("show", "NCT05489822")
    assert (unknown.is_error, unknown.content[0].text) == (
        True, "unknown topic 'nope' (known: all, spine, stem-cell-spine); add one with `trialsync topics add`")
    assert files_of(db) == before


@pytest.mark.parametrize("moment", ["idle", "answering"])
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_stop_signal_ends_trialsync_mcp_in_one_line_while_its_client_still_holds_the_pipe(mirror, stop, moment):
    """Hosts stop a server they are done with by SIGTERM (a person by Ctrl-C): it must exit (130) in one line,
    without waiting for standard input to close (where the SDK's reader thread is blocked), whether it was idle
    or in the middle of answering a call; never with a traceback of the SDK's asyncio tasks."""
    def message(number, method, params):
        return json.dumps({"jsonrpc": "2.0", "id": number, "method": method, "params": params}).encode() + b"\n"

    initialize = message(1, "initialize", {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}})
    initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode() + b"\n"
    calls = b"".join(message(2 + n, "tools/call", {"name": "search_studies", "arguments": {"topic": "all"}})
                     for n in range(20))
    process = subprocess.Popen([sys.executable, "-m", "trialsync", "mcp", "--db", str(mirror[0])],
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        process.stdin.write(initialize)
        process.stdin.flush()
        assert select.select([process.stdout], [], [], 120)[0], "no answer to initialize"
        assert json.loads(process.stdout.readline())["result"]["serverInfo"]["name"] == "trialsync"
        if moment == "answering":
            process.stdin.write(initialized + calls)
            process.stdin.flush()
            assert select.select([process.stdout], [], [], 120)[0], "no answer to the first call"
        process.send_signal(stop)
        assert process.wait(timeout=60) == 130  # standard input is still open
        assert process.stderr.read() == b"trialsync: interrupted\n"
    finally:
        process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout, process.stderr):
            pipe.close()


def test_without_the_sdk_trialsync_mcp_says_how_to_install_it_in_one_line(tmp_path):
    blocker = ("import sys\n"
               "class NoSdk:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] in ('mcp', 'mcp_types'):\n"
               "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
               "sys.meta_path.insert(0, NoSdk())\n"
               "from trialsync.cli import main\n"
               "main()\n")
    result = subprocess.run([sys.executable, "-c", blocker, "mcp", "--db", str(tmp_path / "t.db")],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == ("trialsync: `trialsync mcp` needs the MCP Python SDK, which cannot be imported here (No "
                             "module named 'mcp'): pip install 'trialsync[mcp]'\n")


def test_the_other_commands_start_without_importing_the_sdk():
    """The SDK (and pydantic under it) is imported by `trialsync mcp` alone: no other command starts slower."""
    code = ("import sys, trialsync.cli.root\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mcp', 'mcp_types', 'pydantic', 'anyio'}))")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "[]\n", "")


def test_a_standard_output_that_cannot_be_written_ends_the_server_in_one_line(tmp_path, mirror):
    db = tmp_path / "full" / "trialsync.db"
    db.parent.mkdir()
    shutil.copyfile(mirror[0], db)
    hello = ('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
             '"capabilities":{},"clientInfo":{"name":"test","version":"1"}}}\n')
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8"}
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "trialsync", "mcp", "--db", str(db)], input=hello, text=True,
                              stdout=full, stderr=subprocess.PIPE, env=env, timeout=60)
    assert (done.returncode, done.stderr) == (1, "trialsync: cannot write to standard output: No space left on "
                                                 "device\n")
