"""Edges a hostile trial of the release found: empty option values, the option an error names, headings and
columns at 80 columns, exported files' modes, a full device, control characters in file names, markdown
markup in record text. Records are the real fixtures, changed here where a test needs it."""

from __future__ import annotations

import json
import os
import stat

import pytest

from conftest import fixture_record, import_as

SAMPLE_IDS = ["NCT05489822", "NCT06589271", "NCT05827016", "NCT05952557", "NCT03180268"]


@pytest.fixture
def few(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    import_as(cli, tmp_path, [fixture_record(i) for i in SAMPLE_IDS], "few")
    return cli


@pytest.mark.parametrize("option", ["--status", "--phase", "--type", "--sex", "--sponsor-class", "--site-status",
                                    "--started-after", "--started-before", "--changed-since", "--as-of",
                                    "--sponsor", "--country"])
def test_an_empty_value_is_a_usage_error_not_no_filter(few, option):
    extra = ("--near", "41.85,-87.65") if option == "--site-status" else ()
    result = few("list", "few", option, "", *extra)
    assert result.code == 2 and result.out == "" and option in result.err and result.err.count("\n") == 1, result


def test_status_report_as_of_empty_is_a_usage_error(few):
    result = few("status-report", "few", "--as-of", "")
    assert result.code == 2 and "--as-of" in result.err


def test_a_bad_site_status_is_named_as_the_site_status_option(few):
    result = few("list", "few", "--near", "Chicago, IL", "--site-status", "bogus")
    assert result.code == 2 and result.err.startswith("trialsync: --site-status: 'bogus' is not a study status")


def test_an_empty_lists_heading_fits_the_width(few):
    out = few("list", "few", "--status", "recruiting", "--near", "Chicago, IL", "--within", "1",
              "--site-status", "withdrawn", "-f", "text").out
    assert out.startswith("0 studies of few (recruiting), with one of its sites withdrawn within 1 km of")
    assert len(out.splitlines()) > 1 and all(len(line) <= 80 for line in out.splitlines())


def test_the_nearest_site_keeps_its_status_city_and_state_at_80_columns(few, monkeypatch):
    from trialsync.cli import options

    monkeypatch.setattr(options, "is_terminal", lambda: True)
    for fmt in ("text", "table"):
        out = few("list", "few", "--near", "Chicago, IL", "--within", "30", "-f", fmt).out
        rows = [line for line in out.splitlines() if line.startswith("NCT0")]
        assert rows and all(len(line) <= 80 for line in out.splitlines()), out
        assert all("Recruiting · Chicago, IL" in line for line in rows), rows


def test_an_exported_file_is_as_readable_as_the_umask_says_and_a_replaced_one_keeps_its_mode(few, tmp_path):
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.csv"
        assert few("export", "few", "-o", str(new)).code == 0
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        mine = tmp_path / "mine.csv"
        mine.write_text("old")
        mine.chmod(0o640)
        assert few("export", "few", "-o", str(mine), "--force").code == 0
        assert stat.S_IMODE(mine.stat().st_mode) == 0o640 and mine.read_text().startswith("nct_id,")
    finally:
        os.umask(old)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_full_device_fails_with_exit_1(few):
    result = few("export", "few", "-o", "/dev/full")
    assert result.code == 1 and result.err.count("\n") == 1 and "No space left" in result.err


def test_control_characters_in_file_names_are_shown_visibly(few, tmp_path):
    folder = tmp_path / "o\x1b[31m"
    folder.mkdir()
    exported = few("export", "few", "-o", str(folder / "x\x07.csv"))
    assert exported.code == 0 and "\x1b" not in exported.err and "\x07" not in exported.err
    assert "o\\x1b[31m/x\\x07.csv" in exported.err
    source = tmp_path / "e\x1bvil.json"
    source.write_text(json.dumps([fixture_record("NCT05489822")]))
    imported = few("import", str(source), "--topic", "few")
    assert imported.code == 0 and "\x1b" not in imported.out and "e\\x1bvil.json" in imported.out


def test_an_older_record_imported_again_is_counted_once(few, tmp_path):
    record = fixture_record("NCT05489822")
    record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2001-01-01"
    path = tmp_path / "older.json"
    path.write_text(json.dumps([record]))
    out = few("import", str(path), "--topic", "few").out
    assert ("imported 1 study from" in out and "(0 new, 0 updated, 1 unchanged; 1 of them was older than the "
            "stored record, which was kept)" in out), out


def test_markdown_keeps_a_records_markup_as_text(few, tmp_path):
    record = fixture_record("NCT05489822")
    record["protocolSection"]["identificationModule"]["briefTitle"] = "*bold* `code` <b>x</b> [link](http://x) a|b"
    path = tmp_path / "marked.json"
    path.write_text(json.dumps([record]))
    assert few("import", str(path), "--topic", "marked").code == 0
    out = few("list", "marked", "-f", "markdown").out
    assert r"\*bold\* \`code\` \<b>x\</b> \[link\](http://x) a\|b" in out, out


def test_a_country_by_its_code_or_usual_name_finds_the_registrys_name(cli, tmp_path):
    from fakeapi import load_fixture_records

    records = load_fixture_records()
    path = tmp_path / "all.json"
    path.write_text(json.dumps(records))
    assert cli("import", str(path), "--topic", "all").code == 0

    def ids(country: str) -> set[str]:
        return {row["nct_id"] for row in json.loads(cli("list", "all", "--country", country, "-f", "json").out)}

    def truth(name: str) -> set[str]:
        return {r["protocolSection"]["identificationModule"]["nctId"] for r in records
                if any(site.get("country") == name
                       for site in r["protocolSection"].get("contactsLocationsModule", {}).get("locations", []))}

    assert ids("USA") == ids("us") == ids("United States of America") == truth("United States") != set()
    assert ids("south korea") == ids("KOR") == truth("Korea, Republic of") != set()
    assert ids("UK") == truth("United Kingdom") != set()
    assert ids("Narnia") == set()


@pytest.mark.parametrize("args", [
    ("pull",), ("pull", "--full"), ("verify",), ("show", "NCT05489822", "--fetch"),
    ("topics", "add", "t", "--condition", "spine", "--dry-run"), ("doctor",),
])
@pytest.mark.parametrize("url, problem", [
    ("ftp://x", "it must start with http:// or https:// and name a host"),
    ("http://a b", "it holds spaces or control characters"),
])
@pytest.mark.parametrize("how", ["option", "environment"])
def test_a_bad_api_url_is_refused_before_any_database_is_made(cli, tmp_path, monkeypatch, args, url, problem, how):
    if how == "option":
        args = (*args, "--api-url", url)
    else:
        monkeypatch.setenv("TRIALSYNC_API_URL", url)
    result = cli(*args)
    assert (result.code, result.out, result.err) == (2, "", f"trialsync: invalid API URL {url!r}: {problem}\n")
    assert list(tmp_path.iterdir()) == []
