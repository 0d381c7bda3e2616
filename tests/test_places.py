"""Places and distances as people write them (trialsync.places), at their edges: the limits of a latitude,
a longitude and a distance, the words a state or country goes by, and what each refusal names."""

from __future__ import annotations

import pytest

from trialsync.errors import InvalidValue
from trialsync.places import (
    KM_PER_MILE, AmbiguousPlace, UnknownPlace, describe_city, find_city, find_zip_code, in_units, parse_coordinates,
    parse_distance, us_state_code,
)


@pytest.mark.parametrize("text, point", [("90,180", (90, 180)), ("-90,-180", (-90, -180)), (" 41.85 , -87.65 ", (41.85, -87.65)),
                                         ("+1.5,-0.5", (1.5, -0.5))])
def test_coordinates_at_and_inside_their_limits_are_a_point_named_by_them(text, point):
    place = parse_coordinates(text)
    assert (place.latitude, place.longitude) == point
    assert place.name == f"{point[0]:g},{point[1]:g}"


@pytest.mark.parametrize("text", ["90.01,0", "-90.01,0", "0,180.01", "0,-180.01", "91,0", "0,181"])
def test_coordinates_past_their_limits_are_refused_as_a_place(text):
    with pytest.raises(InvalidValue) as caught:
        parse_coordinates(text)
    assert caught.value.what == "place"
    assert str(caught.value) == (f"{text!r} is not a latitude between -90 and 90 and a longitude between -180 "
                                 "and 180")


@pytest.mark.parametrize("text", ["", None, "Chicago", "41.85", "41.85,-87.65,3", "a,b"])
def test_what_is_not_two_numbers_is_not_coordinates(text):
    assert parse_coordinates(text) is None


@pytest.mark.parametrize("text, km, unit", [
    ("50", 50.0, "km"), ("50km", 50.0, "km"), ("50 KM", 50.0, "km"), ("30mi", 30 * KM_PER_MILE, "mi"),
    ("30 miles", 30 * KM_PER_MILE, "mi"), ("1 mile", KM_PER_MILE, "mi"), (".5", 0.5, "km"), ("0", 0.0, "km"),
    ("12 kilometres", 12.0, "km"), ("40100", 40100.0, "km"),
])
def test_a_distance_is_km_and_the_unit_it_was_written_in(text, km, unit):
    assert parse_distance(text) == (pytest.approx(km), unit)


@pytest.mark.parametrize("text, message", [
    ("", "'' is not a distance; write 50km, 30mi or a number of km"),
    ("fifty", "'fifty' is not a distance; write 50km, 30mi or a number of km"),
    ("-5", "'-5' is not a distance; write 50km, 30mi or a number of km"),
    ("5 parsecs", "'5 parsecs' is not a distance; write 50km, 30mi or a number of km"),
    ("40100.5", "'40100.5' is farther than any two points on Earth"),
    ("24918mi", "'24918mi' is farther than any two points on Earth"),
])
def test_a_distance_that_cannot_be_is_refused_as_a_distance(text, message):
    with pytest.raises(InvalidValue) as caught:
        parse_distance(text)
    assert caught.value.what == "distance" and str(caught.value) == message


def test_units_convert_km_to_miles_and_leave_km_and_none_alone():
    assert in_units(KM_PER_MILE * 3, "mi") == pytest.approx(3)
    assert in_units(7.5, "km") == 7.5
    assert in_units(None, "mi") is None


@pytest.mark.parametrize("text", ["Chicago, US", "Chicago, USA", "Chicago, United States of America",
                                  "Chicago, America", "Chicago, U.S.A.", "Chicago, u s", "Chicago, Illinois",
                                  "Chicago, il", "CHICAGO"])
def test_every_name_of_a_us_state_or_the_country_qualifies_a_city(text):
    assert find_city(text).name == "Chicago, Illinois, United States"


@pytest.mark.parametrize("text, name", [("London, UK", "London, United Kingdom"),
                                        ("London, Great Britain", "London, United Kingdom"),
                                        ("London, Scotland", "London, United Kingdom"),  # GB's words, not places
                                        ("Cardiff, Wales", "Cardiff, United Kingdom"),
                                        ("Leeds, Great Britain", "Leeds, United Kingdom"),
                                        ("London, GBR", "London, United Kingdom"),
                                        ("Lyon, FR", "Lyon, France"), ("São Paulo", "São Paulo, Brazil"),
                                        ("sao paulo, brazil", "São Paulo, Brazil")])
def test_every_name_of_a_country_qualifies_a_city(text, name):
    assert find_city(text).name == name


def test_a_qualifier_that_fits_no_candidate_finds_nothing():
    assert find_city("Chicago, France") is None
    assert find_city("Xyzzyville") is None
    assert find_city("") is None and find_city(" , ") is None


def test_an_ambiguous_name_lists_every_candidate_the_most_populous_first():
    with pytest.raises(AmbiguousPlace) as caught:
        find_city("San Jose")
    message = str(caught.value)
    assert caught.value.what == "place"
    assert message.startswith("'San Jose' fits 6 places; say which: 'San Jose, California, United States'; "
                              "'San José, Costa Rica (at 9.93,-84.08)'; ") and message.endswith(" (or give LAT,LON)")
    with pytest.raises(AmbiguousPlace) as caught:
        find_city("Victoria")  # the most places one name has
    assert str(caught.value).count("; 'Victoria, ") == 8 and "fits 9 places" in str(caught.value)


def test_a_us_city_is_described_with_its_state_and_others_with_their_country():
    assert describe_city({"name": "Springfield", "countrycode": "US", "admin1code": "MA"}) == \
        "Springfield, Massachusetts, United States"
    assert describe_city({"name": "Lyon", "countrycode": "FR", "admin1code": "84"}) == "Lyon, France"
    assert describe_city({"name": "Nowhere", "countrycode": "ZZ", "admin1code": ""}) == "Nowhere, ZZ"


def test_a_zip_code_is_its_centre_with_its_city_and_state():
    place = find_zip_code("60601-1234")
    assert place.name == "ZIP 60601 (Chicago, Illinois, United States)"
    assert (round(place.latitude, 1), round(place.longitude, 1)) == (41.9, -87.6)
    assert find_zip_code("6060") is None and find_zip_code("Chicago") is None and find_zip_code(None) is None
    with pytest.raises(UnknownPlace) as caught:
        find_zip_code(" 00000 ")
    assert caught.value.what == "place" and str(caught.value) == "'00000' is not a US ZIP code with a known centre"


def test_us_state_codes_come_from_their_names_in_any_case():
    assert us_state_code("Kentucky") == "KY" and us_state_code("new york") == "NY"
    assert us_state_code("Ontario") is None
