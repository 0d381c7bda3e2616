"""Direct unit tests of small promises of the reports layer (found unpinned by mutation testing): moments
as --as-of reads them, and why a search is not full-text syntax."""

from __future__ import annotations

import pytest

from trialsync.errors import UsageError
from trialsync.reports.common import read_day, read_moment


@pytest.mark.parametrize("text, moment", [
    ("2026-11-20", "2026-11-20T23:59:59Z"), (" 2026-11-20 ", "2026-11-20T23:59:59Z"),
    ("2026-11-20T00:00", "2026-11-20T00:00:00Z"), ("2026-11-20 23:59:59", "2026-11-20T23:59:59Z"),
    ("2026-11-20T12:30:45Z", "2026-11-20T12:30:45Z"), ("2026-11-20T07:05Z", "2026-11-20T07:05:00Z"),
])
def test_a_moment_is_a_day_s_end_or_the_time_given_in_utc(text, moment):
    assert read_moment(text) == moment


@pytest.mark.parametrize("text", ["2026-11-20T24:00", "2026-11-20T23:60", "2026-11-20T23:59:60"])
def test_a_time_past_the_clock_is_refused_naming_the_option(text):
    with pytest.raises(UsageError) as caught:
        read_moment(text, "--since")
    assert str(caught.value) == f"--since: {text!r} is not a time of day"


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2026-02-30", "", None, "2026-11-20T1:00"])
def test_what_is_no_moment_is_refused_saying_what_is_taken(text):
    with pytest.raises(UsageError) as caught:
        read_moment(text)
    assert str(caught.value) == ("--as-of takes a date (YYYY-MM-DD) or a date and time in UTC "
                                 f"(YYYY-MM-DDTHH:MM[:SS]), not {text!r}")


@pytest.mark.parametrize("text, day", [("2024", "2024-01-01"), ("2024-05", "2024-05-01"), (" 2024-05-17 ", "2024-05-17")])
def test_a_day_is_the_first_day_a_year_month_or_date_covers(text, day):
    assert read_day(text, "--started-after") == day


def test_what_is_no_day_is_refused_naming_the_option():
    with pytest.raises(UsageError) as caught:
        read_day("last year", "--started-after")
    assert str(caught.value) == "--started-after takes a date as YYYY, YYYY-MM or YYYY-MM-DD, not 'last year'"


def test_a_search_s_syntax_is_checked_against_the_index_s_own_columns(db):
    from trialsync.reports.studies import search_syntax_error

    assert search_syntax_error(db, "stem cell") is None
    assert search_syntax_error(db, "brief_title: stem") is None  # a column of the index
    assert search_syntax_error(db, "covid-19") == "no such column: 19"
    assert search_syntax_error(db, '"unclosed') == 'unterminated string'
    assert search_syntax_error(db, "nosuchcolumn: stem") == "no such column: nosuchcolumn"
