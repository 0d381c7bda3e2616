"""The command line end to end, in-process: exact output in each format, and every expected error."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

from conftest import FIXTURES, SPINE_CONDITION_IDS, fixture_record, with_status
from fakeapi import Corpus, FakeApi
from trialsync import __version__, store

ROOT = Path(__file__).parent.parent
SAMPLE = ROOT / "data" / "stem-cell-spine-sample.json"
NOW = "2026-11-24T10:00:00Z"


@pytest.fixture
def fixed_clock(monkeypatch):
    from trialsync import dates

    monkeypatch.setattr(dates, "utc_now", lambda: NOW)


@pytest.fixture
def two_imports(cli, tmp_path, fixed_clock):
    """The sample imported, then a later state built from it: NCT03853356 terminated, with a reason."""
    assert cli("import", str(SAMPLE)).code == 0
    records = json.loads(SAMPLE.read_text())
    later = []
    for record in records:
        nct_id = record["protocolSection"]["identificationModule"]["nctId"]
        if nct_id == "NCT03853356":
            record = with_status(record, "TERMINATED")
            record["protocolSection"]["statusModule"]["whyStopped"] = "Sponsor decision"
        later.append(record)
    path = tmp_path / "later.json"
    path.write_text(json.dumps(later))
    assert cli("import", str(path)).code == 0
    return cli


def test_version(cli):
    result = cli("--version")
    assert (result.code, result.out) == (0, f"trialsync {__version__}\n")


def test_status_report_text(two_imports):
    result = two_imports("status-report")
    assert result.code == 0 and result.err == ""
    assert result.out == """\
stem-cell-spine: 7 studies: 2 not yet recruiting, 2 recruiting, 1 terminated, 2 completed.
Status              Studies   Share  Change  Last 2 pulls
Not yet recruiting        2   28.6%       0  ██
Recruiting                2   28.6%      -1  █▆
Terminated                1   14.3%      +1  ▁█
Completed                 2   28.6%       0  ██
Total                     7  100.0%       0  ██

Data as of 2026-11-24T10:00:00Z (last successful pull or import).

0 studies left the topic since the previous pull (2026-11-24T10:00:00Z).
"""


def test_status_report_markdown(two_imports):
    assert two_imports("status-report", "--format", "markdown").out == """\
**stem-cell-spine: 7 studies: 2 not yet recruiting, 2 recruiting, 1 terminated, 2 completed.**

| Status | Studies | Share | Change |
| --- | ---: | ---: | ---: |
| Not yet recruiting | 2 | 28.6% | 0 |
| Recruiting | 2 | 28.6% | -1 |
| Terminated | 1 | 14.3% | +1 |
| Completed | 2 | 28.6% | 0 |
| Total | 7 | 100.0% | 0 |

Data as of 2026-11-24T10:00:00Z (last successful pull or import).

0 studies left the topic since the previous pull (2026-11-24T10:00:00Z).
"""


def test_status_report_csv(two_imports):
    assert two_imports("status-report", "stem-cell-spine", "-f", "csv").out == """\
status,label,count,percent,previous_count
NOT_YET_RECRUITING,Not yet recruiting,2,28.6%,2
RECRUITING,Recruiting,2,28.6%,3
TERMINATED,Terminated,1,14.3%,0
COMPLETED,Completed,2,28.6%,2
"""


def test_status_report_json(two_imports):
    data = json.loads(two_imports("status-report", "--format", "json").out)
    entry = lambda s, label, n: {"status": s, "label": label, "count": n}  # noqa: E731
    assert data == {
        "topic": "stem-cell-spine", "total": 7, "as_of": NOW, "data_timestamp": None,
        "statuses": [entry("NOT_YET_RECRUITING", "Not yet recruiting", 2), entry("RECRUITING", "Recruiting", 2),
                     entry("TERMINATED", "Terminated", 1), entry("COMPLETED", "Completed", 2)],
        "unknown_by_last_known": {},
        "left_since_previous": 0,
        "previous": {"as_of": NOW, "statuses": [entry("NOT_YET_RECRUITING", "Not yet recruiting", 2),
                                                entry("RECRUITING", "Recruiting", 3), entry("COMPLETED", "Completed", 2)]},
    }


def test_status_report_table_is_a_rich_table(two_imports, monkeypatch):
    from trialsync.cli import options

    monkeypatch.setattr(options, "is_terminal", lambda: True)
    lines = two_imports("status-report").out.splitlines()
    assert lines[0] == "stem-cell-spine: 7 studies: 2 not yet recruiting, 2 recruiting, 1 terminated, 2 completed."
    assert lines[1].split() == ["Status", "Studies", "Share", "Change", "Last", "2", "pulls"]
    assert set(lines[2]) == {"─"}  # the rule under the header: a table, not aligned text
    assert lines[5].split() == ["Terminated", "1", "14.3%", "+1", "▁█"]


def test_unknown_status_is_broken_down_by_last_known_status(cli, tmp_path, fixed_clock):
    path = tmp_path / "unknown.json"
    path.write_text(json.dumps([fixture_record(i) for i in ("NCT01100827", "NCT02385136", "NCT00282477", "NCT05489822")]))
    cli("import", str(path), "--topic", "mixed")
    result = cli("status-report", "mixed")
    assert result.out.startswith("mixed: 4 studies: 1 recruiting, 3 unknown status.\n")
    assert "Unknown status, by last known status\nLast known status   Studies\nNot yet recruiting        1\nRecruiting                2\n" in result.out
    data = json.loads(cli("status-report", "mixed", "-f", "json").out)
    assert data["unknown_by_last_known"] == {"NOT_YET_RECRUITING": 1, "RECRUITING": 2}


def test_a_status_the_spec_does_not_list_is_counted_under_its_own_name(cli, tmp_path, fixed_clock):
    path = tmp_path / "new-status.json"
    path.write_text(json.dumps([with_status(fixture_record("NCT05489822"), "PAUSED_FOR_REVIEW"), fixture_record("NCT04056520")]))
    cli("import", str(path))
    data = json.loads(cli("status-report", "-f", "json").out)
    assert data["statuses"] == [{"status": "RECRUITING", "label": "Recruiting", "count": 1},
                                {"status": "PAUSED_FOR_REVIEW", "label": "PAUSED_FOR_REVIEW", "count": 1}]
    assert cli("status-report").out.splitlines()[0] == "stem-cell-spine: 2 studies: 1 recruiting, 1 PAUSED_FOR_REVIEW."


def test_changes_text(two_imports):
    assert two_imports("changes").out == """\
Observed    NCT ID       Change                                 Title
2026-11-24  NCT03853356  status: Recruiting -> Terminated       Evidence For Fusion In Spine With Orthoss®
2026-11-24  NCT03853356  why stopped: none -> Sponsor decision  Evidence For Fusion In Spine With Orthoss®
"""


def test_changes_json_keeps_the_apis_values(two_imports):
    title = "Evidence For Fusion In Spine With Orthoss®"
    assert json.loads(two_imports("changes", "stem-cell-spine", "--format", "json").out) == [
        {"nct_id": "NCT03853356", "field": "overall_status", "old": "RECRUITING", "new": "TERMINATED", "item": None,
         "observed_at": NOW, "topic": None, "reason": None, "brief_title": title},
        {"nct_id": "NCT03853356", "field": "why_stopped", "old": None, "new": "Sponsor decision", "item": None,
         "observed_at": NOW, "topic": None, "reason": None, "brief_title": title},
    ]


def test_changes_csv_and_markdown(two_imports):
    assert two_imports("changes", "-f", "csv").out.splitlines() == [
        "nct_id,field,old,new,item,observed_at,topic,reason,brief_title",
        "NCT03853356,overall_status,RECRUITING,TERMINATED,,2026-11-24T10:00:00Z,,,"
        "Evidence For Fusion In Spine With Orthoss®",
        "NCT03853356,why_stopped,,Sponsor decision,,2026-11-24T10:00:00Z,,,"
        "Evidence For Fusion In Spine With Orthoss®",
    ]
    markdown = two_imports("changes", "-f", "markdown").out.splitlines()
    assert markdown[0] == "| Observed | NCT ID | Change | Title |"
    assert markdown[2] == ("| 2026-11-24 | NCT03853356 | status: Recruiting -> Terminated | "
                           "Evidence For Fusion In Spine With Orthoss® |")


def test_changes_since_and_pulls_narrow_the_list(two_imports):
    assert json.loads(two_imports("changes", "--since", "2026-11-25", "-f", "json").out) == []
    assert len(json.loads(two_imports("changes", "--pulls", "1", "-f", "json").out)) == 2
    bad = two_imports("changes", "--since", "yesterday")
    assert bad.code == 2 and bad.err.count("\n") == 1 and "YYYY-MM-DD" in bad.err


def test_show_text_and_raw_json(cli, fixed_clock):
    cli("import", str(SAMPLE))
    result = cli("show", "nct06589271")
    assert result.code == 0
    assert "Status:             Recruiting\n" in result.out
    assert "Interventions:      Biological: human umbilical cord mesenchymal stem cell suspension; Procedure:" in result.out
    assert "Links:              https://clinicaltrials.gov/study/NCT06589271\n" in result.out
    raw = cli("show", "NCT06589271", "--format", "json").out
    assert orjson.loads(raw) == fixture_record("NCT06589271")


@pytest.mark.parametrize("args, message", [
    (("show", "NCT99999999"), "NCT99999999 is not in the database"),
    (("status-report", "no-such-topic"), "unknown topic 'no-such-topic'"),
    (("changes", "no-such-topic"), "unknown topic 'no-such-topic'"),
    (("topics", "show", "no-such-topic"), "unknown topic 'no-such-topic'"),
    (("pull", "no-such-topic"), "unknown topic 'no-such-topic'"),
    (("import", "no-such-file.json"), "no such file"),
])
def test_expected_failures_print_one_line_and_exit_1(cli, args, message):
    assert cli("import", str(SAMPLE)).code == 0
    result = cli(*args)
    assert result.code == 1
    assert result.out == ""
    assert result.err.count("\n") == 1 and message in result.err and "Traceback" not in result.err


@pytest.mark.parametrize("args", [("pull", "--bogus"), ("status-report", "--format", "yaml"), ("show",),
                                  ("pull", "--page-size", "0"), ("pull", "--rate", "-1"),
                                  # bytes that are not UTF-8, as Python hands them over (lone surrogates)
                                  ("list", "--country", "Fran\udce7e"), ("status-report", "\udcff")])
def test_usage_errors_print_one_line_and_exit_2(cli, args):
    result = cli(*args)
    assert result.code == 2 and result.err.count("\n") == 1 and result.err.startswith("trialsync: ")


def test_a_database_path_that_is_a_text_file_is_refused_untouched(cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n")
    for args in (("status-report",), ("show", "NCT05489822"), ("import", str(SAMPLE)), ("pull",)):
        result = cli(*args, "--db", str(notes))
        assert result.code == 1 and result.err.count("\n") == 1 and "not a SQLite database" in result.err, args
    assert notes.read_text() == "not a database\n"


def test_import_a_zip_of_study_files_a_saved_page_and_json_lines(cli, tmp_path):
    archive = tmp_path / "ctg-studies.json.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for nct_id in SPINE_CONDITION_IDS[:4]:
            zipped.write(FIXTURES / "studies" / f"{nct_id}.json", f"{nct_id}.json")
    lines = tmp_path / "studies.jsonl"
    lines.write_text("\n".join(json.dumps(fixture_record(i)) for i in SPINE_CONDITION_IDS[4:6]) + "\n")
    page = FIXTURES / "pages" / "RuhRuh66__step25_clinical_trials__data__studies.json"
    for path, count in ((archive, 4), (lines, 2), (page, 5)):
        result = cli("import", str(path), "--topic", "mine")
        assert result.code == 0 and f"imported {count} studies" in result.out
    assert json.loads(cli("status-report", "mine", "-f", "json").out)["total"] == 11


@pytest.mark.parametrize("content", [b"hello, not json", b'{"studies": "nope"}', b'[{"protocolSection": {}}]',
                                     b"[1, 2, 3]", b"PK\x03\x04 broken zip"])
def test_import_of_a_file_that_is_not_study_records_stores_nothing(cli, tmp_path, content):
    assert cli("import", str(SAMPLE)).code == 0
    bad = tmp_path / "ctg-studies.json"
    bad.write_bytes(content)
    result = cli("import", str(bad))
    assert result.code == 1 and result.err.count("\n") == 1
    assert json.loads(cli("status-report", "-f", "json").out)["total"] == 7


def test_topics_add_list_show_remove(cli):
    added = cli("topics", "add", "sci", "--cond", "spinal cord injury", "--status", "recruiting, completed")
    assert added.code == 0, added
    assert cli("topics", "add", "sci", "--cond", "x").code == 2
    assert cli("topics", "add", "Bad Name", "--cond", "x").code == 2
    assert cli("topics", "add", "empty").code == 2
    shown = cli("topics", "show", "sci").out
    assert shown == ("topic: sci\nquery.cond: spinal cord injury\nfilter.overallStatus: RECRUITING,COMPLETED\n"
                     "url: https://clinicaltrials.gov/api/v2/studies?query.cond=spinal+cord+injury"
                     "&filter.overallStatus=RECRUITING%2CCOMPLETED&pageSize=1000&countTotal=true\n"
                     "website: https://clinicaltrials.gov/search?cond=spinal+cord+injury"
                     "&term=AREA%5BOverallStatus%5D%28RECRUITING+OR+COMPLETED%29\n")
    listed = cli("topics", "list", "-f", "json").out
    assert [t["name"] for t in json.loads(listed)] == ["sci"]
    assert cli("topics", "remove", "sci", "--yes").code == 0
    assert json.loads(cli("topics", "list", "-f", "json").out) == []


def test_the_builtin_topic_url_can_be_opened_in_a_browser(cli):
    out = cli("topics", "show", "stem-cell-spine").out
    assert 'query.cond: "back pain" OR "degenerative disc disease"' in out
    assert "url: https://clinicaltrials.gov/api/v2/studies?query.cond=%22back+pain%22+OR+" in out


def test_removing_a_topic_keeps_the_study_records(cli):
    cli("import", str(SAMPLE))
    assert cli("topics", "remove", "stem-cell-spine", "--yes").code == 0
    assert cli("show", "NCT06589271").code == 0


@pytest.fixture
def served(tmp_path):
    records = [fixture_record(i) for i in SPINE_CONDITION_IDS]
    with FakeApi(Corpus(records)) as server:
        yield server


def test_pull_then_quiet_pulls_print_only_when_something_changed(cli, served):
    first = cli("pull", "--api-url", served.url, "--quiet")
    assert first.code == 0
    assert first.out.startswith("stem-cell-spine: full pull (first pull), 13 studies received (13 new")
    assert cli("pull", "--api-url", served.url, "--quiet").out == ""  # dataTimestamp did not move
    served.data_timestamp = "2026-11-25T09:00:00"
    assert cli("pull", "--api-url", served.url, "--quiet").out == ""  # it moved, but no study changed
    served.data_timestamp = "2026-11-26T09:00:00"
    served.corpus.put(with_status(fixture_record("NCT05489822"), "COMPLETED", updated="2026-11-26"))
    served.corpus.remove("NCT04056520")
    digest = cli("pull", "--api-url", served.url, "--quiet").out
    assert "Status changes:\n  NCT05489822 status: Recruiting -> Completed" in digest
    assert "Left the topic:\n  NCT04056520 left the topic" in digest


def test_pull_reports_an_api_that_stays_down_in_one_line(cli, monkeypatch):
    monkeypatch.setenv("TRIALSYNC_RETRIES", "2")
    result = cli("pull", "--api-url", "http://127.0.0.1:9/api/v2")
    assert result.code == 1
    # Refused before the API ever answered: offline, told at once (tests/test_offline.py has the rest).
    assert result.err == ("trialsync: cannot reach the API at http://127.0.0.1:9/api/v2 (connection refused); "
                          "no network? `trialsync import FILE` works without one: a file downloaded from "
                          "ClinicalTrials.gov, or data/stem-cell-spine-sample.json in trialsync's source\n")


def test_a_second_pull_exits_75_while_another_holds_the_lock(cli, tmp_path, served):
    db_path = tmp_path / "cli.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from trialsync import store\n"
         "with store.write_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(30)", str(db_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = cli("pull", "--api-url", served.url, "--wait", "0.5")
        assert result.code == 75
        assert result.err.count("\n") == 1 and "another trialsync pull" in result.err
        assert result.err.startswith("trialsync: ")
    finally:
        holder.kill()
        holder.wait()
    assert cli("pull", "--api-url", served.url).code == 0


def test_pulls_lists_outcomes(cli, served):
    cli("pull", "--api-url", served.url)
    cli("pull", "--api-url", served.url)
    rows = json.loads(cli("pulls", "-f", "json").out)
    assert [(r["outcome"], r["mode"], r["requests"], r["received"]) for r in rows] == [
        ("unchanged", "skipped", 1, 0), ("complete", "full", 4, 13)]  # the first also fetched the data model


def test_a_long_digest_is_cut_per_group_and_says_where_the_rest_is():
    from trialsync.render.changes import DIGEST_LINES, render_digest

    changes = [{"nct_id": f"NCT{90000000 + i}", "field": "overall_status", "old": "RECRUITING", "new": "COMPLETED",
                "brief_title": None, "observed_at": "2026-11-24T10:00:00Z"} for i in range(DIGEST_LINES + 7)]
    lines = render_digest("big", changes).splitlines()
    assert lines[0] == f"trialsync: {DIGEST_LINES + 7} changes in big"
    assert len([line for line in lines if "Recruiting -> Completed" in line]) == DIGEST_LINES
    assert lines[-1] == "  ... and 7 more: `trialsync changes big --since 2026-11-24` lists them all"
