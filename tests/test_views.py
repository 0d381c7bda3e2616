"""Seeing the studies: list, breakdowns, show, export, as-of, history, watchlists, topic validation, and tables
that fit the terminal. Expected values are computed here from the real fixture records, independently of
trialsync's queries."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3

import orjson
import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record, import_as, import_cached, pull_spine_twice, with_status
from fakeapi import Corpus, FakeApi, load_fixture_records

NCT = re.compile(r"NCT\d{8}")


def status_of(record: dict) -> str:
    return record["protocolSection"]["statusModule"]["overallStatus"]


def nct_of(record: dict) -> str:
    return record["protocolSection"]["identificationModule"]["nctId"]


@pytest.fixture
def spine(cli, tmp_path, monkeypatch, import_cache):
    """The 13 real spine-condition records imported into topic 'spine'; COLUMNS=100."""
    monkeypatch.setenv("COLUMNS", "100")
    import_cached(cli, tmp_path, [fixture_record(i) for i in SPINE_CONDITION_IDS], "spine", import_cache)
    return cli


@pytest.fixture
def corpus(cli, tmp_path, monkeypatch, import_cache):
    """All 140 real fixture records imported into topic 'all'."""
    monkeypatch.setenv("COLUMNS", "100")
    import_cached(cli, tmp_path, load_fixture_records(), "all", import_cache)
    return cli


def listed(cli, *args) -> list[str]:
    result = cli("list", *args, "-f", "json")
    assert result.code == 0, result
    return [row["nct_id"] for row in json.loads(result.out)]


# -- list ------------------------------------------------------------------------------------------------


def test_list_prints_the_studies_one_a_line(spine):
    assert spine("list", "spine").out == """\
13 studies of spine.
NCT ID       Status              Phase  Start    Title                              Lead sponsor
NCT06589271  Recruiting          1      2024-10  SCLife®-LDD hUC-MSCs Injection T…  Sclnow Biotechn…
NCT06413225  Not yet recruiting         2024-09  Multi-Centre Post-Market Data Co…  Synergy Spine S…
NCT05883436  Recruiting          N/A    2023-02  Investigation of DEXA-C Anterior…  Aurora Spine an…
NCT06011551  Not yet recruiting  N/A    2024-07  HYDRAFIL-D: HYDRogel Augmentatio…  ReGelTec, Inc.
NCT05821920  Recruiting                 2021-06  A Safety Study on Posterior Pedi…  Medacta Interna…
NCT05880823  Recruiting                 2024-01  Post Market Data Collection Prot…  Synergy Spine S…
NCT05489822  Recruiting                 2023-01  PMCF Study to Evaluate the VERTI…  Silony Medical …
NCT04056520  Recruiting                 2019-09  Clinical and Radiological Outcom…  Ohio State Univ…
NCT05305430  Recruiting                 2022-05  Real World Data Collection on th…  Synergy Spine S…
NCT06127745  Not yet recruiting  N/A    2024-01  Discure Technologies Feasibility…  Discure Technol…
NCT04188236  Completed           N/A    2019-10  Safety and Performance of a Hern…  NEOS Surgery
NCT05508360  Recruiting          N/A    2022-08  "Lumbar Operatively Inserted Per…  Spinal Stabiliz…
NCT01824108  Completed           3      2008-07  Wallis Interspinous Dynamic Stab…  Guangdong Provi…
"""


def test_list_json_returns_exactly_the_recruiting_studies_with_their_facts(corpus):
    records = load_fixture_records()
    rows = json.loads(corpus("list", "all", "--status", "recruiting", "-f", "json").out)
    assert {row["nct_id"] for row in rows} == {nct_of(r) for r in records if status_of(r) == "RECRUITING"}
    row = next(r for r in rows if r["nct_id"] == "NCT05489822")
    assert {k: row[k] for k in ("nct_id", "brief_title", "overall_status", "phases", "study_type", "start_date",
                                "lead_sponsor", "url")} == {
        "nct_id": "NCT05489822",
        "brief_title": "PMCF Study to Evaluate the VERTICALE® Cervical System in Spine Surgery According to Its Intended Use.",
        "overall_status": "RECRUITING", "phases": [], "study_type": "OBSERVATIONAL", "start_date": "2023-01-13",
        "lead_sponsor": "Silony Medical GmbH", "url": "https://clinicaltrials.gov/study/NCT05489822"}
    lines = corpus("list", "all", "--status", "Recruiting", "-f", "nl").out.splitlines()
    assert [json.loads(line)["nct_id"] for line in lines] == [r["nct_id"] for r in rows]


@pytest.mark.parametrize("spelling", ["recruiting", "RECRUITING", "Recruiting", " recruiting "])
def test_status_is_read_by_api_value_or_label_in_any_case(corpus, spelling):
    assert len(listed(corpus, "all", "--status", spelling)) == sum(
        status_of(r) == "RECRUITING" for r in load_fixture_records())


def test_several_statuses_and_a_label_with_a_comma(corpus):
    records = load_fixture_records()
    wanted = {"ACTIVE_NOT_RECRUITING", "COMPLETED"}
    expected = {nct_of(r) for r in records if status_of(r) in wanted}
    assert set(listed(corpus, "all", "--status", "Active, not recruiting", "--status", "completed")) == expected
    assert set(listed(corpus, "all", "--status", "active, not recruiting,completed")) == expected


def _design(record):
    return record["protocolSection"].get("designModule", {})


def _eligibility(record):
    return record["protocolSection"].get("eligibilityModule", {})


def _years(text):
    if not text:
        return None
    number, unit = text.split()
    return int(number) / {"Year": 1, "Years": 1, "Month": 12, "Months": 12, "Day": 365.25, "Days": 365.25,
                          "Week": 365.25 / 7, "Weeks": 365.25 / 7, "Minute": 525960, "Minutes": 525960}[unit]


FILTERS = {
    ("--phase", "2", "--phase", "phase 3"): lambda r: bool({"PHASE2", "PHASE3"} & set(_design(r).get("phases", []))),
    ("--type", "observational"): lambda r: _design(r).get("studyType") == "OBSERVATIONAL",
    ("--sponsor-class", "industry"):
        lambda r: r["protocolSection"]["sponsorCollaboratorsModule"]["leadSponsor"].get("class") == "INDUSTRY",
    ("--sponsor", "pfizer"): lambda r: any(
        "pfizer" in (s.get("name") or "").lower() for s in [r["protocolSection"]["sponsorCollaboratorsModule"]["leadSponsor"],
                                                              *r["protocolSection"]["sponsorCollaboratorsModule"].get("collaborators", [])]),
    ("--country", "germany"): lambda r: any(l.get("country") == "Germany" for l in
                                            r["protocolSection"].get("contactsLocationsModule", {}).get("locations", [])),
    ("--age", "70"): lambda r: (_years(_eligibility(r).get("minimumAge")) or 0) <= 70 <= (
        _years(_eligibility(r).get("maximumAge")) or 999),
    ("--sex", "female"): lambda r: _eligibility(r).get("sex") in (None, "ALL", "FEMALE"),
    ("--healthy-volunteers",): lambda r: _eligibility(r).get("healthyVolunteers") is True,
    ("--started-after", "2023", "--started-before", "2024-06"): lambda r: "2023-01-01" <= (
        (r["protocolSection"]["statusModule"].get("startDateStruct", {}).get("date", "") + "-01")[:10]) < "2024-06-01",
    ("--has-results",): lambda r: r.get("hasResults") is True,
    ("--no-results",): lambda r: r.get("hasResults") is False,
    ("--changed-since", "2025-01-01"): lambda r: r["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
    >= "2025-01-01",
}


@pytest.mark.parametrize("args", list(FILTERS), ids=[" ".join(a) for a in FILTERS])
def test_each_filter_keeps_exactly_the_studies_that_match_it(corpus, args):
    expected = {nct_of(r) for r in load_fixture_records() if FILTERS[args](r)}
    assert expected, "a filter that keeps nothing proves nothing"
    assert set(listed(corpus, "all", *args)) == expected


def test_sorting_and_limits(corpus):
    records = load_fixture_records()
    by_update = sorted(records, key=lambda r: (r["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"],
                                               [-ord(c) for c in nct_of(r)]), reverse=True)
    assert listed(corpus, "all", "-n", "5") == [nct_of(r) for r in by_update[:5]]
    assert listed(corpus, "all", "--sort", "nct", "--limit", "3") == sorted(nct_of(r) for r in records)[:3]
    assert "The first 2 studies of all." in corpus("list", "all", "-n", "2").out


def test_a_status_listing_walks_the_status_index_newest_first_and_looks_up_membership_per_study(db):
    from trialsync.reports.studies import StudyQuery, list_sql
    from trialsync.sync.files import import_records

    records = load_fixture_records()
    import_records(db, records, "all", source="all.json")
    sql, params = list_sql(StudyQuery(statuses=["RECRUITING"], limit=5), "all")
    plan = " ; ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
    # No list of the topic's members is gathered, and the rows are not all sorted: the index gives the order.
    assert "USING INDEX studies_by_status (overall_status=?)" in plan and "LIST SUBQUERY" not in plan, plan
    assert "TEMP B-TREE FOR ORDER BY" not in plan, plan
    recruiting = sorted((r for r in records if status_of(r) == "RECRUITING"), reverse=True, key=lambda r: (
        r["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"], [-ord(c) for c in nct_of(r)]))
    assert [row[0] for row in db.execute(sql, params)] == [nct_of(r) for r in recruiting[:5]]


def test_near_a_city_lists_studies_by_distance_to_their_nearest_site(corpus):
    rows = json.loads(corpus("list", "all", "--near", "Chicago", "--within", "50", "-f", "json").out)
    chicago = {nct_of(r) for r in load_fixture_records() if any(
        l.get("city") == "Chicago" for l in r["protocolSection"].get("contactsLocationsModule", {}).get("locations", []))}
    assert {row["nct_id"] for row in rows} >= chicago and chicago
    assert all(row["distance_km"] <= 50 for row in rows)
    assert [row["distance_km"] for row in rows] == sorted(row["distance_km"] for row in rows)
    by_point = json.loads(corpus("list", "all", "--near", "41.85,-87.65", "--within", "50", "-f", "json").out)
    assert {row["nct_id"] for row in by_point} == {row["nct_id"] for row in rows}
    assert "Km" in corpus("list", "all", "--near", "Chicago", "--within", "50").out


@pytest.mark.parametrize("args, message", [
    (("--near", "Xyzzyville"), "no city called 'Xyzzyville' is known"),
    (("--near", "95,10"), "latitude between -90 and 90"),
    (("--within", "10"), "--within needs --near"),
    (("--sort", "distance"), "--sort distance needs --near"),
    (("--status", "recruting"), "did you mean RECRUITING?"),
    (("--phase", "7"), "is not a phase"),
    (("--phase=-1",), "is not a phase"),
    (("--phase=+2",), "is not a phase"),
    (("--started-after", "last year"), "YYYY, YYYY-MM or YYYY-MM-DD"),
    (("--age", "nan"), "not a finite number"),
    (("--as-of", "yesterday"), "--as-of takes a date"),
])
def test_bad_list_options_exit_2_with_one_line(corpus, args, message):
    result = corpus("list", "all", *args)
    assert result.code == 2 and result.err.count("\n") == 1 and message in result.err, result


# -- full-text search -------------------------------------------------------------------------------------


@pytest.mark.parametrize("query, expected", [
    ("VERTICALE", {"NCT05489822"}),                        # a word of a title, any case
    ("verticale", {"NCT05489822"}),
    ('"Cervical System"', {"NCT05489822", "NCT05821920"}),  # a phrase (the second says "cervical systems")
    ("hydrog*", {"NCT06011551"}),                          # a prefix
    ("HYDRAFIL OR VERTICALE", {"NCT06011551", "NCT05489822"}),
    ("cervical NOT VERTICALE", None),                      # computed below: cervical without VERTICALE
])
def test_search_finds_studies_by_words_phrases_prefixes_and_operators(spine, query, expected):
    found = set(listed(spine, "spine", "--search", query))
    if expected is None:
        text = {i: json.dumps(fixture_record(i)).lower() for i in SPINE_CONDITION_IDS}
        assert "NCT05489822" not in found and found
        assert all("cervical" in text[i] for i in found)
        return
    assert found == expected


def searchable_tokens(db_path) -> dict[str, list[list[str]]]:
    """Each study's indexed text (the columns of the view ``studies_search``) as lists of lower-case tokens."""
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT nct_id, brief_title, official_title, acronym, brief_summary, conditions, "
                        "interventions, keywords FROM studies_search").fetchall()
    conn.close()
    return {row[0]: [re.findall(r"[^\W_]+", text.lower()) for text in row[1:] if text] for row in rows}


def holds_phrase(columns: list[list[str]], phrase: list[str]) -> bool:
    return any(tokens[i:i + len(phrase)] == phrase for tokens in columns for i in range(len(tokens)))


@pytest.mark.parametrize("typed, phrases", [
    ("covid-19", [["covid", "19"]]),
    ("Parkinson's", [["parkinson", "s"]]),
    ("SCLife®-LDD", [["sclife", "ldd"]]),
    ("hUC-MSCs Injection", [["huc", "mscs"], ["injection"]]),
])
def test_text_that_is_not_search_syntax_is_searched_as_plain_words(corpus, tmp_path, typed, phrases):
    tokens = searchable_tokens(tmp_path / "cli.db")
    expected = {nct for nct, columns in tokens.items() if all(holds_phrase(columns, p) for p in phrases)}
    assert expected, "the fixture corpus must hold the words searched for"
    assert set(listed(corpus, "all", "--search", typed)) == expected


def test_a_word_with_a_minus_sign_is_a_plain_word_too(corpus):
    found = listed(corpus, "all", "--search", "spinal cord -injury")
    assert found and found == listed(corpus, "all", "--search", "spinal cord injury")


@pytest.mark.parametrize("query", ['"unterminated', "NEAR(", "title:", "cell AND NOT pain", "-pain", "* back"])
def test_broken_syntax_with_words_answers_as_plain_words(spine, query):
    result = spine("list", "spine", "--search", query, "-f", "json")
    assert result.code == 0 and result.err == "", result


@pytest.mark.parametrize("query", ["(", "*", "-", "®", '""'])
def test_a_search_with_no_word_fails_cleanly(spine, query):
    result = spine("list", "spine", "--search", query)
    assert result.code == 2 and result.err.count("\n") == 1 and "holds no words to look for" in result.err, result


def test_quotes_and_semicolons_in_every_text_option_are_data_not_sql(spine, tmp_path):
    db = tmp_path / "cli.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    nasty = ["x'; DROP TABLE studies; --", 'O"Brien; DELETE FROM studies', "%'_;--"]
    for text in nasty:
        for option in ("--sponsor", "--country", "--search"):  # data: no study matches
            result = spine("list", "spine", option, text)
            if option == "--search" and text == "%'_;--":  # no word at all to look for
                assert result.code == 2 and "holds no words to look for" in result.err, result
                continue
            assert result.code == 0 and "0 studies" in result.out and result.err == "", (option, text, result)
        near = spine("list", "spine", "--near", text)  # no place is called that
        assert near.code == 2 and "--near" in near.err and near.err.count("\n") == 1, (text, near)
        assert spine("status-report", text).code == 1  # an unknown topic
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM studies").fetchone() == (13,)


# -- breakdowns ----------------------------------------------------------------------------------------------


def _values(record: dict, by: str) -> set:
    p = record["protocolSection"]
    if by == "phase":
        return set(_design(record).get("phases", [])) or {None}
    if by == "study-type":
        return {_design(record).get("studyType")}
    if by == "sponsor-class":
        return {p["sponsorCollaboratorsModule"]["leadSponsor"].get("class")}
    if by == "sponsor":
        return {p["sponsorCollaboratorsModule"]["leadSponsor"].get("name")}
    if by == "start-year":
        return {(p["statusModule"].get("startDateStruct", {}).get("date") or "")[:4] or None}
    if by == "country":
        return {l.get("country") for l in p.get("contactsLocationsModule", {}).get("locations", [])
                if l.get("country")} or {None}
    return {c.lower() for c in p.get("conditionsModule", {}).get("conditions", [])} or {None}


def _spelling(records: list[dict]) -> dict:
    """Each condition's lower case -> its spelling in most studies (ties: not all capitals, then alphabetical)."""
    counts: dict = {}
    for record in records:
        for condition in set(record["protocolSection"].get("conditionsModule", {}).get("conditions", [])):
            counts[condition] = counts.get(condition, 0) + 1
    best: dict = {}
    for condition, count in counts.items():
        rank = (-count, condition.isupper(), condition)
        best[condition.lower()] = min(best.get(condition.lower(), rank), rank)
    return {key: rank[2] for key, rank in best.items()}


@pytest.mark.parametrize("by", ["phase", "study-type", "sponsor-class", "sponsor", "start-year", "country", "condition"])
def test_each_breakdown_counts_every_study_once_in_each_of_its_values(corpus, by):
    data = json.loads(corpus("status-report", "all", "--by", by, "-f", "json").out)
    records = load_fixture_records()
    expected: dict = {}
    for record in records:
        for value in _values(record, by):
            if by == "condition" and value is not None:
                value = _spelling(records)[value]
            row = expected.setdefault(value, {})
            row[status_of(record)] = row.get(status_of(record), 0) + 1
    if by == "condition":  # the fixtures write one condition two ways: it is counted once
        assert {"BREAST CANCER", "Breast Cancer"} <= {c for r in records for c in
                                                      r["protocolSection"]["conditionsModule"]["conditions"]}
        assert expected["Breast Cancer"] == {"RECRUITING": 2} and "BREAST CANCER" not in expected
    assert data["topic"] == "all" and data["by"] == by and data["total"] == len(records)
    assert data["multi"] is (by in ("phase", "country", "condition"))
    assert {row["value"]: row["statuses"] for row in data["rows"]} == expected
    assert all(row["total"] == sum(row["statuses"].values()) for row in data["rows"])
    # Order: statuses as the registry lists them; phases in their order and years in time; the rest most
    # studies first, then by name; a study's missing value last.
    from trialsync.statuses import STATUS_LABELS
    from trialsync.vocab import PHASE_LABELS

    for row in data["rows"]:
        assert list(row["statuses"]) == [s for s in STATUS_LABELS if s in row["statuses"]]
    values = [row["value"] for row in data["rows"]]
    assert (values[-1] is None) == (None in expected) and values.count(None) == (None in expected)
    named = [v for v in values if v is not None]
    if by == "phase":
        assert named == [p for p in PHASE_LABELS if p in named]
    elif by == "start-year":
        assert named == sorted(named)
    else:
        totals = {row["value"]: row["total"] for row in data["rows"]}
        assert named == sorted(named, key=lambda v: (-totals[v], v.lower()))
    csv_lines = corpus("status-report", "all", "--by", by, "-f", "csv").out.splitlines()
    assert csv_lines[0].startswith("value,total,") and len(csv_lines) == len(data["rows"]) + 1
    for fmt in ("table", "text", "markdown", "nl"):
        assert corpus("status-report", "all", "--by", by, "-f", fmt).code == 0


def test_a_breakdown_in_text_and_its_json(spine):
    assert spine("status-report", "spine", "--by", "phase").out == """\
spine: 13 studies by phase and status.
Phase           Studies  Not yet  Recruiting  Completed
Phase 1               1        0           1          0
Phase 3               1        0           0          1
Not Applicable        5        2           2          1
(none)                6        1           5          0
"""
    assert spine("status-report", "spine", "--by", "start-year").out == """\
spine: 13 studies by start year and status.
Start year  Studies  Not yet  Recruiting  Completed
2008              1        0           0          1
2019              2        0           1          1
2021              1        0           1          0
2022              2        0           2          0
2023              2        0           2          0
2024              5        3           2          0
"""
    data = json.loads(spine("status-report", "spine", "--by", "sponsor-class", "-f", "json").out)
    assert data == {"topic": "spine", "by": "sponsor-class", "multi": False, "total": 13, "rows": [
        {"value": "INDUSTRY", "total": 11, "statuses": {"NOT_YET_RECRUITING": 3, "RECRUITING": 7, "COMPLETED": 1}},
        {"value": "OTHER", "total": 2, "statuses": {"RECRUITING": 1, "COMPLETED": 1}}]}


def test_status_report_all_gives_one_line_per_topic(spine, tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps([fixture_record("NCT00122499")]))
    assert spine("import", str(path), "--topic", "one").code == 0
    assert spine("status-report", "--all").out == (
        "one: 1 study: 1 completed.\n"
        "spine: 13 studies: 3 not yet recruiting, 8 recruiting, 2 completed.\n")
    assert [t["topic"] for t in json.loads(spine("status-report", "--all", "-f", "json").out)] == ["one", "spine"]


def test_the_summary_sentence_names_statuses_unambiguously(corpus):
    sentence = " ".join(corpus("status-report", "all").out.split("\nStatus")[0].split())
    assert sentence == ("all: 140 studies: 14 not yet recruiting, 43 recruiting, 2 enrolling by invitation, "
                        "6 active (not recruiting), 2 suspended, 7 terminated, 47 completed, 3 withdrawn, "
                        "16 unknown status.")


# -- export ---------------------------------------------------------------------------------------------------


def test_export_raw_then_import_gives_identical_raw(corpus, cli, tmp_path, monkeypatch):
    out = tmp_path / "ctg-studies.json"
    result = corpus("export", "all", "--raw", "-o", str(out))
    assert result.code == 0 and "wrote 140 studies of all" in result.err
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        original = dict(conn.execute("SELECT nct_id, raw FROM studies"))
    monkeypatch.setenv("TRIALSYNC_DB", str(tmp_path / "fresh.db"))
    assert cli("import", str(out), "--topic", "back").code == 0
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        assert dict(conn.execute("SELECT nct_id, raw FROM studies")) == original
    again = cli("export", "back", "--raw")
    assert orjson.loads(again.out) == [orjson.loads(original[k]) for k in sorted(original)]


def test_export_flattened_in_csv_json_and_json_lines(spine, tmp_path):
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(spine("export", "spine").out)))
    assert len(rows) == 13 and rows[0]["nct_id"] == "NCT01824108" and "raw" not in rows[0]
    assert rows[0]["overall_status"] == "COMPLETED"
    as_json = json.loads(spine("export", "spine", "-f", "json").out)
    assert [r["nct_id"] for r in as_json] == sorted(SPINE_CONDITION_IDS)
    lines = spine("export", "spine", "-f", "nl").out.splitlines()
    assert [json.loads(line) for line in lines] == as_json
    target = tmp_path / "out.csv"
    target.write_text("mine")
    refused = spine("export", "spine", "-o", str(target))
    assert refused.code == 2 and "--force" in refused.err and target.read_text() == "mine"
    assert spine("export", "spine", "-o", str(target), "--force").code == 0 and target.read_text().startswith("nct_id,")


def test_export_to_a_symlink_a_pipe_or_an_impossible_path(spine, tmp_path):
    import os
    import threading

    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert spine("export", "spine", "-o", str(link), "--force").code == 0
    import csv

    with open(real, newline="") as written_csv:
        assert link.is_symlink() and len(list(csv.reader(written_csv))) == 14 and real.read_text().startswith("nct_id,")

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    written = spine("export", "spine", "-f", "nl", "-o", str(fifo))  # no --force: a pipe is written, not replaced
    reader.join(10)
    assert written.code == 0 and len(received[0].splitlines()) == 13 and fifo.exists()

    (tmp_path / "a-file").write_text("mine")
    for impossible in (tmp_path / "a-file" / "out.csv", tmp_path / "no-such-dir" / "out.csv", tmp_path):
        result = spine("export", "spine", "-o", str(impossible))
        assert result.code == 2 and result.err.count("\n") == 1 and str(impossible) in result.err, result
    assert (tmp_path / "a-file").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- looking back -------------------------------------------------------------------------------------------


@pytest.fixture
def two_pulls(cli, tmp_path, monkeypatch):
    """Two complete pulls of the 13 spine records, a study terminated and one leaving between them."""
    monkeypatch.setenv("COLUMNS", "100")
    from trialsync import dates

    clock = {"now": "2026-11-20T10:00:00Z"}
    monkeypatch.setattr(dates, "utc_now", lambda: clock["now"])
    with FakeApi(Corpus([fixture_record(i) for i in SPINE_CONDITION_IDS])) as server:
        pull_spine_twice(cli, server, clock)
        yield cli


def test_as_of_between_two_pulls_gives_the_earlier_state(two_pulls):
    now = json.loads(two_pulls("status-report", "spine", "-f", "json").out)
    then = json.loads(two_pulls("status-report", "spine", "--as-of", "2026-11-21", "-f", "json").out)
    assert (then["total"], now["total"]) == (13, 12)
    assert {e["status"]: e["count"] for e in then["statuses"]} == {"NOT_YET_RECRUITING": 3, "RECRUITING": 8,
                                                                   "COMPLETED": 2}
    assert {e["status"]: e["count"] for e in now["statuses"]} == {"NOT_YET_RECRUITING": 3, "RECRUITING": 6,
                                                                  "TERMINATED": 1, "COMPLETED": 2}
    earlier = listed(two_pulls, "spine", "--as-of", "2026-11-21T00:00")
    assert set(earlier) == set(SPINE_CONDITION_IDS)
    assert listed(two_pulls, "spine", "--as-of", "2026-11-21", "--status", "recruiting").count("NCT05489822") == 1
    assert "NCT05489822" in listed(two_pulls, "spine", "--status", "terminated")
    phases = json.loads(two_pulls("status-report", "spine", "--by", "study-type", "--as-of", "2026-11-21", "-f",
                                  "json").out)
    assert sum(row["total"] for row in phases["rows"]) == 13
    too_early = two_pulls("status-report", "spine", "--as-of", "2026-11-19")
    assert too_early.code == 1 and "no complete pull or import at or before 2026-11-19T23:59:59Z" in too_early.err


def test_history_lists_the_counts_at_each_complete_pull(two_pulls):
    data = json.loads(two_pulls("history", "spine", "-f", "json").out)
    assert [(p["finished_at"], p["total"]) for p in data["pulls"]] == [("2026-11-20T10:00:00Z", 13),
                                                                      ("2026-11-22T10:00:00Z", 12)]
    assert data["pulls"][1]["statuses"]["TERMINATED"] == 1
    text = two_pulls("history", "spine").out
    assert "2026-11-20 10:00:00       13" in text and "2026-11-22 10:00:00       12" in text


# -- watchlists and topics add ----------------------------------------------------------------------------


def test_a_watchlist_holds_exactly_its_served_ids_and_names_one_that_does_not_exist(cli):
    with FakeApi(Corpus(load_fixture_records())) as server:
        assert cli("topics", "add", "watch", "--ids", "nct05489822 NCT04056520,NCT99999999").code == 0
        result = cli("pull", "watch", "--api-url", server.url)
        assert result.code == 0, result
        assert "1 id not found on ClinicalTrials.gov: NCT99999999" in result.out
        studies = [p for path, p in server.requests if path.endswith("/studies")]
        assert studies[0]["filter.ids"] == "NCT04056520,NCT05489822,NCT99999999"
        assert set(listed(cli, "watch")) == {"NCT05489822", "NCT04056520"}
        assert cli("topics", "add", "watch", "--ids", "NCT05489822,NCT99999998", "--replace").code == 0
        server.data_timestamp = "2026-11-25T09:00:00"
        again = cli("pull", "watch", "--api-url", server.url, "--quiet")
        assert "NCT99999998 warning: NCT99999998 is not on ClinicalTrials.gov" in again.out
        assert set(listed(cli, "watch")) == {"NCT05489822"}
        server.data_timestamp = "2026-11-26T09:00:00"
        assert "warning" not in cli("pull", "watch", "--api-url", server.url, "--quiet").out


def test_a_long_watchlist_is_pulled_in_batches(cli, tmp_path):
    records = load_fixture_records()
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(nct_of(r) for r in records))
    with FakeApi(Corpus(records)) as server:
        assert cli("topics", "add", "many", "--ids-file", str(ids)).code == 0
        from trialsync.sync import listing as listing_module

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(listing_module, "IDS_PER_REQUEST", 50)
            assert cli("pull", "many", "--api-url", server.url).code == 0
            batches = [p["filter.ids"].count(",") + 1 for path, p in server.requests
                       if path.endswith("/studies") and "pageToken" not in p]
            assert batches == [50, 50, 40]
            assert len(listed(cli, "many")) == 140
            # a full pull's complete answer is every batch's: no study of the second or third batch has left
            again = cli("pull", "many", "--full", "--api-url", server.url)
            assert again.code == 0 and "0 left the topic" in again.out, again.out
    assert len(listed(cli, "many")) == 140


def thousands_of_ids(tmp_path, count: int = 6000) -> tuple[list[dict], list[str], object]:
    """The 140 real records, and a watchlist file of ``count`` ids: theirs, then well-formed ids in the
    range no real study has (NCT9xxxxxxx), which the stand-in holds no study for."""
    records = load_fixture_records()
    real = [nct_of(r) for r in records]
    absent = [f"NCT9{n:07d}" for n in range(count - len(real))]
    path = tmp_path / "watchlist.txt"
    path.write_text("\n".join(real + absent) + "\n")
    return records, sorted(real + absent), path


def sent_ids(server) -> list[list[str]]:
    """The filter.ids of each /studies request in the stand-in's log, as lists."""
    return [p["filter.ids"].split(",") for path, p in server.requests if path.endswith("/studies")]


def test_the_stand_in_refuses_a_request_line_past_8_kb_as_the_real_service_does(tmp_path):
    import requests

    with FakeApi(Corpus([fixture_record("NCT05489822")])) as server:
        ids = ",".join(f"NCT9{n:07d}" for n in range(700))  # 700 ids: 8.4 KB of query
        answer = requests.get(f"{server.url}/studies", params={"filter.ids": ids}, timeout=10)
        assert answer.status_code == 414 and server.kinds == ["too-long"]
        assert len(server.targets[0]) > server.max_target
        short = requests.get(f"{server.url}/studies", params={"filter.ids": "NCT05489822"}, timeout=10)
        assert short.status_code == 200 and len(short.json()["studies"]) == 1


def test_verify_and_a_dry_run_ask_for_a_long_watchlist_in_the_batches_pull_sends(cli, tmp_path):
    records, ids, path = thousands_of_ids(tmp_path)
    recruiting = sum(status_of(r) == "RECRUITING" for r in records)
    with FakeApi(Corpus(records)) as server:
        dry = cli("topics", "add", "many", "--ids-file", str(path), "--dry-run", "--api-url", server.url)
        assert dry.code == 0, dry
        assert dry.out.startswith("many: 140 studies match this search (nothing stored)\n")
        assert all(len(t) <= server.max_target for t in server.targets) and "too-long" not in server.kinds
        assert [len(batch) for batch in sent_ids(server)] == [300] * 20
        assert sorted(i for batch in sent_ids(server) for i in batch) == ids  # each id once
        assert all(p["countTotal"] == "true" and p["pageSize"] == "1" for _, p in server.requests)
        assert not (tmp_path / "cli.db").exists()
        server.reset_log()
        dry = cli("topics", "add", "many", "--ids-file", str(path), "--status", "recruiting", "--dry-run",
                  "--api-url", server.url)
        assert dry.out.startswith(f"many: {recruiting} studies match") and len(server.requests) == 20

        assert cli("topics", "add", "many", "--ids-file", str(path)).code == 0
        server.reset_log()
        pulled = cli("pull", "many", "--api-url", server.url)
        assert pulled.code == 0 and "5860 ids not found on ClinicalTrials.gov" in pulled.out, pulled
        pull_batches = sent_ids(server)
        assert len(pull_batches) == 20 and all(len(t) <= server.max_target for t in server.targets)
        server.reset_log()
        check = cli("verify", "many", "--api-url", server.url, "-f", "json")
        assert check.code == 0, check
        data = json.loads(check.out)
        assert data["agrees"] and (data["api_total"], data["store_total"]) == (140, 140)
        assert sum(e["api"] for e in data["statuses"] if e["status"] == "RECRUITING") == recruiting
        assert all(len(t) <= server.max_target for t in server.targets) and "too-long" not in server.kinds
        assert sent_ids(server) == pull_batches  # the batches pull sent, batch for batch
        assert all(p["fields"] == "NCTId|OverallStatus" for _, p in server.requests)

        server.corpus.put(with_status(fixture_record("NCT05489822"), "COMPLETED"))
        differs = cli("verify", "many", "--api-url", server.url)
        assert differs.code == 1 and "NCT05489822: the API says Completed, the store says Recruiting" in differs.out


@pytest.mark.parametrize("args, message", [
    (("--status", "recruting"), "did you mean RECRUITING?"),
    (("--status", "RECRUITING,finished"), "'finished' is not a study status"),
    (("--geo", "near me"), "--geo takes distance("),
    (("--geo", "distance(39,-77,0mi)"), "a distance above 0"),
    (("--ids", "NCT123"), "'NCT123' is not an NCT id"),
])
def test_topics_add_checks_its_values(cli, args, message):
    result = cli("topics", "add", "sci", "--cond", "spinal cord injury", *args)
    assert result.code == 2 and result.err.count("\n") == 1 and message in result.err, result


def test_topics_add_dry_run_asks_for_the_count_only_and_stores_nothing(cli, tmp_path):
    with FakeApi(Corpus(load_fixture_records())) as server:
        result = cli("topics", "add", "sci", "--cond", "spinal cord injury", "--status", "recruiting,completed",
                     "--dry-run", "--api-url", server.url)
        assert result.code == 0, result
        assert len(server.requests) == 1 and server.requests[0][1]["countTotal"] == "true"
        assert (server.requests[0][1]["pageSize"], server.requests[0][1]["fields"]) == ("1", "NCTId")
        expected = sum(status_of(r) in ("RECRUITING", "COMPLETED") for r in load_fixture_records())
        assert result.out == (
            f"sci: {expected} studies match this search (nothing stored)\n"
            "website: https://clinicaltrials.gov/search?cond=spinal+cord+injury"
            "&term=AREA%5BOverallStatus%5D%28RECRUITING+OR+COMPLETED%29\n")
    assert not (tmp_path / "cli.db").exists()


def test_a_dry_run_answered_without_a_count_fails_in_one_line_and_stores_nothing(cli, tmp_path):
    with FakeApi(Corpus(load_fixture_records())) as server:
        server.inject("any", "no-count", times=10)
        result = cli("topics", "add", "sci", "--cond", "spinal cord injury", "--dry-run", "--api-url", server.url)
    assert result.code == 1 and result.out == ""
    assert result.err == "trialsync: the API did not say how many studies match (no totalCount in its answer)\n"
    assert not (tmp_path / "cli.db").exists()


# -- show -----------------------------------------------------------------------------------------------------


def test_show_is_written_for_a_person(spine, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = spine("show", "NCT06589271").out
    head = out.split("\n\nSummary:")[0]
    assert head == """\
NCT ID:             NCT06589271
Title:              SCLife®-LDD hUC-MSCs Injection Therapy for Patients With
                    Lumbar Intervertebral Disc Degeneration
Official title:     A Clinical Research on SCLife®-LDD hUC-MSCs Injection
                    Therapy for Patients With Lumbar Intervertebral Disc
                    Degeneration
Status:             Recruiting
Study type:         Interventional
Phase:              Phase 1
Enrollment:         20 participants (estimated)
Start:              2024-10-31 (estimated)
Primary completion: 2025-06-30 (estimated)
Completion:         2025-12-31 (estimated)
First posted:       2024-09-19
Last update posted: 2024-09-19
Lead sponsor:       Sclnow Biotechnology Co., Ltd. (Industry)
Conditions:         Lumbar Disc Degeneration
Interventions:      Biological: human umbilical cord mesenchymal stem cell
                    suspension; Procedure: total endoscopic extraction of lumbar
                    nucleus pulposus
Eligibility:        18 Years to 60 Years, sex: all, no healthy volunteers
Contacts:           Qiang Fu · +86-02136123526 · michaelliang@sclnow.com
Topics:             spine
Links:              https://clinicaltrials.gov/study/NCT06589271"""
    assert "\nSites (1):\n  Shanghai General Hospital, Shanghai, China [Recruiting]\n" in out
    assert "[Recruiting]" in out and "\nEligibility criteria:\n" in out
    assert all(len(line) <= 80 for line in out.splitlines())


def test_show_lists_the_nearest_sites_first_and_the_studys_own_changes(corpus, tmp_path):
    later = with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-20")
    path = tmp_path / "later.json"
    path.write_text(json.dumps([later]))
    assert corpus("import", str(path), "--topic", "all").code == 0
    out = " ".join(corpus("show", "NCT05489822", "--near", "41.85,-87.65").out.split())
    assert "Chicago, Illinois, United States [Recruiting] (0 km)" in out
    assert re.search(r"Changes seen by trialsync: \d{4}-\d\d-\d\d status: Recruiting -> Completed", out)


def test_show_fetch_shows_a_study_that_is_not_stored_without_storing_it(cli, tmp_path):
    with FakeApi(Corpus(load_fixture_records())) as server:
        missing = cli("show", "NCT05489822")
        assert missing.code == 1 and "no trialsync database" in missing.err
        result = cli("show", "NCT05489822", "--fetch", "--api-url", server.url)
        assert result.code == 0 and "Status:             Recruiting" in result.out
        assert [path for path, _ in server.requests] == ["/api/v2/studies/NCT05489822"]
        raw = cli("show", "NCT05489822", "--fetch", "--api-url", server.url, "-f", "json").out
        assert orjson.loads(raw) == fixture_record("NCT05489822")
    assert not (tmp_path / "cli.db").exists()


# -- tables that fit -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 60])
@pytest.mark.parametrize("fmt", ["text", "table"])
def test_tables_fit_the_terminal_without_splitting_an_id_a_date_or_a_number(corpus, monkeypatch, width, fmt):
    monkeypatch.setenv("COLUMNS", str(width))
    from trialsync.cli import options

    monkeypatch.setattr(options, "is_terminal", lambda: True)
    commands = [("list", "all"), ("list", "all", "--near", "Chicago"), ("status-report", "all"),
                ("status-report", "all", "--by", "country"), ("status-report", "all", "--by", "condition"),
                ("status-report", "all", "--by", "sponsor"), ("history", "all"), ("changes", "all"), ("pulls",),
                ("topics", "list")]
    for args in commands:
        result = corpus(*args, "-f", fmt)
        assert result.code == 0, (args, result)
        lines = result.out.splitlines()
        assert all(len(line) <= width for line in lines), (args, [line for line in lines if len(line) > width])
        if args[0] == "list":
            rows = [line for line in lines if re.match(r"NCT\d", line)]
            assert len(rows) > 0 and all(NCT.match(line) for line in rows), args
            assert all(re.search(r"\bNCT\d{1,7}(\s|$|…)", line) is None for line in lines), args
        assert not re.search(r"\d{4}-\d{2}…|\d{4}-…", result.out), args


# -- what the change log now tracks --------------------------------------------------------------------------


def test_the_change_log_tracks_date_types_sites_and_publications(spine, tmp_path):
    record = fixture_record("NCT05489822")
    later = with_status(record, "RECRUITING", updated="2026-11-20")
    status = later["protocolSection"]["statusModule"]
    status["primaryCompletionDateStruct"] = {"date": "2026-01-15", "type": "ACTUAL"}
    sites = later["protocolSection"]["contactsLocationsModule"]["locations"]
    sites[0]["status"] = "COMPLETED"
    sites.append({"facility": "Charité", "city": "Berlin", "country": "Germany", "status": "RECRUITING"})
    later["protocolSection"].setdefault("referencesModule", {}).setdefault("references", []).append(
        {"pmid": "12345678", "type": "RESULT", "citation": "A result."})
    path = tmp_path / "later.json"
    path.write_text(json.dumps([later]))
    result = spine("import", str(path), "--topic", "spine")
    assert result.code == 0, result
    changes = {(c["field"], c["item"], c["old"], c["new"]) for c in json.loads(spine("changes", "-f", "json").out)}
    assert changes >= {
        ("primary_completion_date", None, "2026-01", "2026-01-15"),
        ("primary_completion_date_type", None, "ESTIMATED", "ACTUAL"),
        ("site_status", "University of Illinois Hospital and Health Sciences System - UI Health, Chicago, Illinois, "
                        "United States", "RECRUITING", "COMPLETED"),
        ("site_added", "Charité, Berlin, Germany", None, "RECRUITING"),
        ("reference_added", "12345678", None, "RESULT"),
    }
    digest = result.out
    assert "Dates:\n  NCT05489822 primary completion date: 2026-01 -> 2026-01-15" in digest
    assert "NCT05489822 primary completion date: estimated -> actual" in digest
    assert "Sites:\n" in digest and "site added: Charité, Berlin, Germany (Recruiting)" in digest
    assert "Publications:\n  NCT05489822 publication added: PMID 12345678 (result)" in digest
