"""Reading and exporting studies: show as a person reads it, export with everything but raw, the same
values in every JSON, and one word for one idea. Expected values come from the real fixture records."""

from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import fixture_record, import_as, with_status
from fakeapi import Corpus, FakeApi, load_fixture_records

SPINE = ["NCT00415220", "NCT05489822", "NCT06589271"]


@pytest.fixture
def stored(cli, tmp_path, monkeypatch):
    """Three real records imported into topic 'spine'; COLUMNS=100."""
    monkeypatch.setenv("COLUMNS", "100")
    import_as(cli, tmp_path, [fixture_record(i) for i in SPINE], "spine")
    return cli


def protocol(nct_id: str) -> dict:
    return fixture_record(nct_id)["protocolSection"]


# -- show ------------------------------------------------------------------------------------------------


def test_show_keeps_the_nesting_of_eligibility_criteria_and_undoes_markdown_escapes(stored):
    criteria = protocol("NCT00415220")["eligibilityModule"]["eligibilityCriteria"]
    assert "\\<" in criteria and "\n  * Cauda equina syndrome" in criteria  # the record escapes and nests
    out = stored("show", "NCT00415220").out
    block = out.split("Eligibility criteria:\n")[1]
    assert "  * Radicular symptoms < 3 months duration\n" in block
    assert "\\<" not in out
    assert "  * Major neurological deficits such as:\n\n    * Cauda equina syndrome\n" in block
    assert "\n  * Substance abuse\n" in block


def test_show_fetch_prints_the_official_title_and_summary_as_show_does(cli, stored):
    stored_out = stored("show", "NCT05489822").out
    with FakeApi(Corpus([fixture_record("NCT05489822")])) as server:
        fetched = cli("show", "NCT05489822", "--fetch", "--api-url", server.url, "--db", "/nonexistent/x.db").out
    official = " ".join(protocol("NCT05489822")["identificationModule"]["officialTitle"].split())
    assert official[:40] in " ".join(fetched.split())
    assert "Summary:" in fetched and "Eligibility criteria:" in fetched
    def without_topics(text: str) -> str:
        return "\n".join(line for line in text.split("\nChanges seen")[0].splitlines() if not line.startswith("Topics:"))
    assert without_topics(fetched) == without_topics(stored_out)


def test_a_studys_history_in_show_names_the_topic_it_left_or_joined(cli, tmp_path):
    record = fixture_record("NCT05489822")
    corpus = Corpus([record, fixture_record("NCT06589271")])
    with FakeApi(corpus) as server:
        assert cli("topics", "add", "open", "--condition", "x", "--status", "recruiting").code == 0
        assert cli("pull", "open", "--api-url", server.url, "--quiet").code == 0
        corpus.put(with_status(record, "COMPLETED", updated="2026-11-25"))
        server.data_timestamp = "2026-11-25T09:00:00"
        assert cli("pull", "open", "--api-url", server.url, "--quiet").code == 0
        corpus.put(with_status(record, "RECRUITING", updated="2026-11-26"))
        server.data_timestamp = "2026-11-26T09:00:00"
        assert cli("pull", "open", "--api-url", server.url, "--quiet").code == 0
    out = " ".join(cli("show", "NCT05489822").out.split())
    assert "left topic open" in out and "back in topic open" in out


def test_show_takes_a_malformed_nct_id_as_a_usage_error(stored):
    for args in (("show", "NCT123"), ("show", "nct0548982x", "--fetch"), ("show", "")):
        result = stored(*args)
        assert result.code == 2 and "is not an NCT id" in result.err and result.out == "", args


# -- export ----------------------------------------------------------------------------------------------


def test_export_json_gives_every_column_but_raw_with_lists_flags_and_url(stored):
    rows = {row["nct_id"]: row for row in json.loads(stored("export", "spine", "-f", "json").out)}
    assert sorted(rows) == sorted(SPINE)
    for nct_id, row in rows.items():
        p = protocol(nct_id)
        assert "raw" not in row
        assert row["official_title"] == p["identificationModule"].get("officialTitle")
        assert row["brief_summary"] == p["descriptionModule"]["briefSummary"]
        assert row["eligibility_criteria"] == p["eligibilityModule"]["eligibilityCriteria"]
        assert row["conditions"] == p["conditionsModule"]["conditions"]
        assert row["keywords"] == p["conditionsModule"].get("keywords", [])
        assert row["interventions"] == [i["name"] for i in p.get("armsInterventionsModule", {}).get("interventions", [])]
        assert row["collaborators"] == [c["name"] for c in p["sponsorCollaboratorsModule"].get("collaborators", [])]
        sites = p.get("contactsLocationsModule", {}).get("locations", [])
        assert row["countries"] == list(dict.fromkeys(s["country"] for s in sites if s.get("country")))
        assert row["phases"] == p["designModule"].get("phases", [])
        assert row["has_results"] is fixture_record(nct_id)["hasResults"]
        assert row["healthy_volunteers"] is p["eligibilityModule"].get("healthyVolunteers", None)
        assert row["url"] == f"https://clinicaltrials.gov/study/{nct_id}"


def test_export_csv_joins_the_lists_and_keeps_texts_whole(stored):
    text = stored("export", "spine").out
    rows = {row["nct_id"]: row for row in csv.DictReader(io.StringIO(text))}
    p = protocol("NCT06589271")
    row = rows["NCT06589271"]
    assert row["conditions"] == "; ".join(p["conditionsModule"]["conditions"])
    assert row["eligibility_criteria"] == p["eligibilityModule"]["eligibilityCriteria"]
    assert row["has_results"] == "false" and row["url"].endswith("NCT06589271")
    assert set(json.loads(stored("export", "spine", "-f", "json").out)[0]) == set(row)


def test_every_json_says_true_or_false_and_gives_phases_as_a_list(stored):
    for args in (("list", "spine"), ("list", "spine", "--near", "41.85,-87.65"), ("export", "spine")):
        rows = json.loads(stored(*args, "-f", "json").out)
        assert rows
        for row in rows:
            assert isinstance(row["has_results"], bool), args
            assert isinstance(row["phases"], list), args
            if "healthy_volunteers" in row:
                assert row["healthy_volunteers"] in (True, False, None)
        lines = [json.loads(line) for line in stored(*args, "-f", "nl").out.splitlines()]
        assert lines == rows


# -- words -----------------------------------------------------------------------------------------------


def test_one_study_is_one_study_in_every_summary(cli, tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps([fixture_record("NCT05489822")]))
    result = cli("import", str(path), "--topic", "one")
    assert "imported 1 study from" in result.out and "1 studies" not in result.out
    with FakeApi(Corpus([fixture_record("NCT05489822")])) as server:
        assert cli("topics", "add", "solo", "--ids", "NCT05489822").code == 0
        pulled = cli("pull", "solo", "--api-url", server.url)
    assert pulled.code == 0 and "1 study received" in pulled.out and "1 studies" not in pulled.out + pulled.err
    exported = cli("export", "one", "-o", str(tmp_path / "one.csv"))
    assert "wrote 1 study of one" in exported.err


def test_topics_add_takes_sponsor_as_list_does_and_the_api_short_names_still(cli):
    assert cli("topics", "add", "by-name", "--sponsor", "Mayo Clinic", "--condition", "back pain").code == 0
    assert cli("topics", "add", "by-api", "--spons", "Mayo Clinic", "--cond", "back pain").code == 0
    shown = [cli("topics", "show", name).out.split("\n", 1)[1] for name in ("by-name", "by-api")]
    assert shown[0] == shown[1] and "query.spons=Mayo Clinic" in shown[0].replace("%20", " ").replace("+", " ")
    both = cli("topics", "add", "both", "--sponsor", "A", "--spons", "B")
    assert both.code == 2 and "--sponsor and --spons are one option" in both.err
    help_text = cli("topics", "add", "--help").out
    assert "--sponsor" in help_text and "--spons " not in help_text and "--cond " not in help_text


def test_a_watchlist_file_with_a_byte_order_mark_is_read(cli, tmp_path):
    path = tmp_path / "ids.txt"
    path.write_bytes("\ufeffNCT05489822\nNCT06589271\n".encode("utf-8"))
    assert cli("topics", "add", "mine", "--ids-file", str(path)).code == 0
    assert "NCT05489822" in cli("topics", "show", "mine").out
    bad = tmp_path / "bad.txt"
    bad.write_text("NCT05489822\nNCT0548982\n")
    result = cli("topics", "add", "bad", "--ids-file", str(bad))
    assert result.code == 2 and "'NCT0548982' is not an NCT id" in result.err
