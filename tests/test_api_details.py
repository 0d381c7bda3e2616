"""Behaviours of the API client and the page reader that mutation testing (mutmut on api/pages.py and
api/client.py, from a helper session) showed no test pinned down: the exact words of what a damaged or
incomplete listing says, what a listing makes of an odd status, and the client's retries, waits, timeouts and
messages. Every record is a real fixture record, or a copy derived from it here."""

from __future__ import annotations

import copy
import json

import orjson
import pytest
import requests
import responses
from responses import matchers

from conftest import fixture_page, fixture_record
from fakeapi import Corpus, FakeApi
from trialsync.api import ApiClient, ListingTally, Page, iter_pages, listed_study, parse_study
from trialsync.errors import ApiError, IncompleteListing

NCT = "NCT06653829"
PAGE_5 = "RuhRuh66__step25_clinical_trials__data__studies.json"  # 5 full records, nextPageToken
PAGE_LAST = "ctti-clinicaltrials__aact__spec__fixtures__json__studies__import__NCT06388018.json"  # 1, no token


def listing_item(record: dict) -> dict:
    """What a ``fields=NCTId|OverallStatus`` listing sends of ``record``."""
    section = record["protocolSection"]
    return {"protocolSection": {"identificationModule": {"nctId": section["identificationModule"]["nctId"]},
                                "statusModule": {"overallStatus": section["statusModule"]["overallStatus"]}}}


def page_of(*records: dict, total: int | None = None, token: str | None = None) -> Page:
    raws = [orjson.dumps(record) for record in records]
    return Page(raws, token, total)


# -- pages: damaged records ------------------------------------------------------------------------------


def test_a_damaged_pretty_printed_record_is_named_by_its_first_bytes_on_one_line():
    raw = json.dumps(fixture_record(NCT), indent=2).encode()
    with pytest.raises(IncompleteListing) as caught:
        parse_study(raw[: len(raw) // 2])
    assert str(caught.value) == ("the API sent a damaged study record "
                                 "('{ \"protocolSection\": { \"identificationModule\": {'...)")


def test_a_record_with_a_garbled_byte_is_a_damaged_record_not_a_crash():
    raw = orjson.dumps(fixture_record(NCT))
    garbled = raw[:20] + b"\xff" + raw[21:]
    with pytest.raises(IncompleteListing) as caught:
        parse_study(garbled)
    assert str(caught.value) == ("the API sent a damaged study record "
                                 "('{\"protocolSection\":{\ufffdidentificationModule\":{\"nctId\":\"NCT0665'...)")


def test_a_page_item_that_is_not_an_object_says_so():
    raw = orjson.dumps([fixture_record(NCT)])
    with pytest.raises(IncompleteListing) as caught:
        parse_study(raw)
    assert str(caught.value) == "the API sent a page item that is not a JSON object"


# -- pages: the id listing ----------------------------------------------------------------------------------


def test_a_listed_study_without_an_nct_id_fails_the_listing_in_words():
    item = listing_item(fixture_record(NCT))
    del item["protocolSection"]["identificationModule"]["nctId"]
    with pytest.raises(IncompleteListing) as caught:
        listed_study(orjson.dumps(item))
    assert str(caught.value) == "the API's id listing holds a study without an NCT id"


def test_a_listed_status_that_is_not_text_is_no_status():
    item = listing_item(fixture_record(NCT))
    assert listed_study(orjson.dumps(item)) == (NCT, fixture_record(NCT)["protocolSection"]["statusModule"]["overallStatus"])
    for odd in (7, ["RECRUITING"], {"value": "RECRUITING"}, True):
        changed = copy.deepcopy(item)
        changed["protocolSection"]["statusModule"]["overallStatus"] = odd
        assert listed_study(orjson.dumps(changed)) == (NCT, None)


def test_a_listing_whose_first_page_has_no_total_is_not_complete_and_says_why():
    record = listing_item(fixture_record(NCT))
    tally = ListingTally("the id listing")
    tally.add(page_of(record), [NCT])
    with pytest.raises(IncompleteListing) as caught:
        tally.check()
    assert str(caught.value) == ("the API's answer for the id listing is not complete: its first page carried no "
                                 "totalCount; nothing was concluded from it")


@pytest.mark.parametrize("announced, said", [(1, "1 study"), (2, "2 studies")])
def test_a_listing_that_ends_short_of_its_total_says_how_far_it_got(announced, said):
    tally = ListingTally("the id listing")
    tally.add(page_of(total=announced), [])
    with pytest.raises(IncompleteListing) as caught:
        tally.check()
    assert str(caught.value) == (f"the API's answer for the id listing is not complete: it ended after 0 of the "
                                 f"{said} its first page announced; nothing was concluded from it")


def test_studies_that_came_twice_are_counted_and_the_first_three_named():
    from conftest import SPINE_CONDITION_IDS

    ids = SPINE_CONDITION_IDS[:5]
    records = [listing_item(fixture_record(nct_id)) for nct_id in ids]
    tally = ListingTally("topic spine")
    tally.add(page_of(*records, total=10), ids)
    tally.add(page_of(*reversed(records), total=None), list(reversed(ids)))
    assert tally.received == 10 and tally.total == 10
    with pytest.raises(IncompleteListing) as caught:
        tally.check()
    assert str(caught.value) == (f"the API's answer for topic spine is not complete: 5 studies came twice "
                                 f"({ids[0]}, {ids[1]}, {ids[2]}); nothing was concluded from it")


# -- pages: following tokens ---------------------------------------------------------------------------------

BASE = "https://clinicaltrials.gov/api/v2"


@responses.activate
def test_two_empty_pages_after_a_full_one_are_not_yet_a_loop():
    first = fixture_page(PAGE_5)
    last = fixture_page(PAGE_LAST)
    responses.get(f"{BASE}/studies", json={**first, "totalCount": 6}, match=[matchers.query_param_matcher(
        {"pageSize": "1000", "countTotal": "true"})])
    for token, following in ((first["nextPageToken"], "E1"), ("E1", "E2")):
        responses.get(f"{BASE}/studies", json={"studies": [], "nextPageToken": following},
                      match=[matchers.query_param_matcher({"pageSize": "1000", "pageToken": token})])
    responses.get(f"{BASE}/studies", json=last, match=[matchers.query_param_matcher(
        {"pageSize": "1000", "pageToken": "E2"})])
    client = ApiClient(rate=0, sleep=lambda seconds: None)
    pages = list(iter_pages(client, {}))
    assert [len(page.raw_studies) for page in pages] == [5, 0, 0, 1]
    assert client.requests_made == 4


@responses.activate
def test_a_token_sent_twice_is_named_with_the_request_that_brought_it_back():
    first = fixture_page(PAGE_5)
    token = first["nextPageToken"] * 2  # longer than the 40 characters a message shows
    responses.get(f"{BASE}/studies", json={**first, "nextPageToken": token})
    with pytest.raises(IncompleteListing) as caught:
        list(iter_pages(ApiClient(rate=0, sleep=lambda seconds: None), {}))
    message = str(caught.value)
    assert message.startswith(f"GET {BASE}/studies?pageSize=1000&pageToken={token[:20]}")
    assert message.endswith(f": the API sent the same nextPageToken twice ({token[:40]}); stopping instead of looping")


@responses.activate
def test_empty_pages_without_end_are_named_with_the_request_and_their_number():
    for number in range(5):
        responses.get(f"{BASE}/studies", json={"studies": [], "nextPageToken": f"T{number}"})
    with pytest.raises(IncompleteListing) as caught:
        list(iter_pages(ApiClient(rate=0, sleep=lambda seconds: None), {"query.cond": "spine"}))
    assert str(caught.value) == (f"GET {BASE}/studies?query.cond=spine&pageSize=1000&pageToken=T1: 3 empty pages in "
                                 "a row, each with a new nextPageToken")


@responses.activate
def test_the_next_page_is_asked_for_while_the_caller_works_on_this_one():
    import time

    first = fixture_page(PAGE_5)
    responses.get(f"{BASE}/studies", json={**first, "totalCount": 6}, match=[matchers.query_param_matcher(
        {"pageSize": "1000", "countTotal": "true"})])
    responses.get(f"{BASE}/studies", json=fixture_page(PAGE_LAST), match=[matchers.query_param_matcher(
        {"pageSize": "1000", "pageToken": first["nextPageToken"]})])
    client = ApiClient(rate=0, sleep=lambda seconds: None)
    pages = iter_pages(client, {})
    assert len(next(pages).raw_studies) == 5
    give_up = time.monotonic() + 1.0
    while client.requests_made < 2 and time.monotonic() < give_up:
        time.sleep(0.01)
    assert client.requests_made == 2  # before the caller asked for the second page
    assert [len(page.raw_studies) for page in pages] == [1]
    assert client.requests_made == 2


@responses.activate
def test_an_object_without_a_studies_list_is_retried_then_reported_in_words():
    responses.get(f"{BASE}/studies", json=fixture_record(NCT))  # one study where a page was expected
    said: list[str] = []
    client = ApiClient(rate=0, attempts=2, sleep=lambda seconds: None, on_wait=said.append)
    with pytest.raises(ApiError) as caught:
        list(iter_pages(client, {}))
    assert str(caught.value) == (f"GET {BASE}/studies?pageSize=1000&countTotal=true: HTTP 200: answer has no "
                                 "'studies' list (gave up after 2 tries)")
    assert said == ["answer has no studies list, retrying in 0 s"]
    assert client.requests_made == 2


@responses.activate
def test_a_page_whose_studies_do_not_start_with_their_protocol_section_still_gives_every_study():
    studies = [{"hasResults": False, **study} for study in fixture_page(PAGE_5)["studies"]]
    responses.get(f"{BASE}/studies", json={"studies": studies, "totalCount": 5})
    page = next(iter_pages(ApiClient(rate=0, sleep=lambda seconds: None), {}))
    assert page.raw_studies == [orjson.dumps(study) for study in studies]
    assert list(page.studies()) == studies


@pytest.mark.parametrize("envelope", [
    {"nextPageToken": 12345}, {"nextPageToken": 12345, "totalCount": 5},
    {"totalCount": True}, {"totalCount": "5"}, {"totalCount": -1}, {"totalCount": 5.0},
], ids=["token-number", "token-number-with-total", "total-bool", "total-text", "total-negative", "total-float"])
def test_a_page_whose_token_or_total_is_not_of_the_api_type_is_retried_then_reported(envelope):
    with responses.RequestsMock() as mock:
        mock.get(f"{BASE}/studies", json={"studies": fixture_page(PAGE_5)["studies"], **envelope})
        said: list[str] = []
        client = ApiClient(rate=0, attempts=2, sleep=lambda seconds: None, on_wait=said.append)
        with pytest.raises(ApiError) as caught:
            list(iter_pages(client, {}))
    assert str(caught.value) == (f"GET {BASE}/studies?pageSize=1000&countTotal=true: HTTP 200: the page's nextPageToken "
                                 "or totalCount is not of the API's type (gave up after 2 tries)")
    assert said == ["malformed page, retrying in 0 s"]
    assert client.requests_made == 2


# -- client: Retry-After, statuses, messages ------------------------------------------------------------------


def version_after(status: int, retry_after: str | None, sleeps: list[float], body: str = "slow down") -> ApiClient:
    """A client that has asked /version once more after a ``status`` answer carrying ``retry_after``."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    responses.get(f"{BASE}/version", body=body, status=status, headers=headers)
    responses.get(f"{BASE}/version", json={"apiVersion": "2.0.5"})
    client = ApiClient(rate=0, backoff=1.0, sleep=sleeps.append)
    assert client.version() == {"apiVersion": "2.0.5"}
    return client


@pytest.mark.parametrize("retry_after, wait", [
    ("7", 7.0), ("2.5", 2.5), ("1000", 300.0), ("-5", 1.0), ("0", 1.0), ("nan", 1.0), ("soon", 1.0), ("", 1.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 1.0), (None, 1.0),
])
@responses.activate
def test_retry_after_is_waited_at_least_the_backoff_and_at_most_five_minutes(retry_after, wait):
    sleeps: list[float] = []
    client = version_after(429, retry_after, sleeps)
    assert sleeps == [wait]
    assert client.requests_made == 2


@responses.activate
def test_a_retry_after_date_is_waited_until():
    from email.utils import format_datetime
    from datetime import datetime, timedelta, timezone

    sleeps: list[float] = []
    version_after(503, format_datetime(datetime.now(timezone.utc) + timedelta(seconds=40), usegmt=True), sleeps)
    assert len(sleeps) == 1 and 37 <= sleeps[0] <= 40


@responses.activate
def test_a_request_timeout_answer_is_retried_like_a_server_error():
    sleeps: list[float] = []
    assert version_after(408, None, sleeps).requests_made == 2
    assert sleeps == [1.0]


@responses.activate
def test_a_500_is_retried():
    sleeps: list[float] = []
    assert version_after(500, None, sleeps).requests_made == 2


@pytest.mark.parametrize("status", [401, 403, 410, 499])
@responses.activate
def test_a_client_error_is_not_retried(status):
    responses.get(f"{BASE}/version", body="no", status=status)
    client = ApiClient(rate=0, attempts=3, sleep=lambda seconds: None)
    with pytest.raises(ApiError) as caught:
        client.version()
    assert str(caught.value) == f"GET {BASE}/version: HTTP {status}: no"
    assert caught.value.status == status and client.requests_made == 1


@responses.activate
def test_an_error_without_text_is_named_by_its_reason_and_a_single_try_says_so():
    responses.get(f"{BASE}/version", body="", status=502)
    client = ApiClient(rate=0, attempts=0, sleep=lambda seconds: None)  # fewer than one try is one try
    with pytest.raises(ApiError) as caught:
        client.version()
    assert str(caught.value) == f"GET {BASE}/version: HTTP 502: Bad Gateway (gave up after 1 try)"
    assert caught.value.status == 502 and client.requests_made == 1


@responses.activate
def test_a_long_error_text_is_cut_to_one_readable_line():
    words = " ".join(fixture_record(NCT)["protocolSection"]["descriptionModule"]["briefSummary"].split())
    assert len(words) > 300
    responses.get(f"{BASE}/studies/{NCT}", body=words[:300] + "\n", status=404)
    responses.get(f"{BASE}/studies/NCT00000000", body=words, status=404)
    client = ApiClient(rate=0, sleep=lambda seconds: None)
    with pytest.raises(ApiError) as caught:
        client.study(NCT)
    assert str(caught.value) == f"GET {BASE}/studies/{NCT}: HTTP 404: {words[:300]}"
    with pytest.raises(ApiError) as caught:
        client.study("NCT00000000")
    assert str(caught.value) == f"GET {BASE}/studies/NCT00000000: HTTP 404: {words[:300]}..."


@responses.activate
def test_a_long_url_is_cut_in_its_query_keeping_the_path():
    responses.get(f"{BASE}/studies", body="Bad Request", status=400)
    client = ApiClient(rate=0, sleep=lambda seconds: None)
    with pytest.raises(ApiError) as caught:
        list(iter_pages(client, {"query.cond": "spinal cord injury " * 20}))
    url = client.url_for("/studies", {"query.cond": "spinal cord injury " * 20, "pageSize": "1000",
                                      "countTotal": "true"})
    assert str(caught.value) == f"GET {url[:119]}…: HTTP 400: Bad Request"  # 120 characters in all


@responses.activate
def test_a_study_answer_that_is_not_a_record_is_retried_then_reported():
    record = fixture_record(NCT)
    responses.get(f"{BASE}/studies/{NCT}", json={"derivedSection": record["derivedSection"]})
    responses.get(f"{BASE}/studies/NCT00000000", json=[record])
    said: list[str] = []
    client = ApiClient(rate=0, attempts=2, sleep=lambda seconds: None, on_wait=said.append)
    with pytest.raises(ApiError) as caught:
        client.study(NCT)
    assert str(caught.value) == f"GET {BASE}/studies/{NCT}: HTTP 200: answer is not a study record (gave up after 2 tries)"
    with pytest.raises(ApiError) as caught:
        client.study("NCT00000000")
    assert str(caught.value) == (f"GET {BASE}/studies/NCT00000000: HTTP 200: answer is not a JSON object "
                                 "(gave up after 2 tries)")
    assert said == ["not a study, retrying in 0 s", "answer not a JSON object, retrying in 0 s"]


@responses.activate
def test_an_answer_that_is_not_json_is_named_by_its_size_and_first_bytes():
    body = "<html>\n  <body>Service maintenance</body>\n</html>"
    responses.get(f"{BASE}/version", body=body, status=200, content_type="text/html")
    said: list[str] = []
    client = ApiClient(rate=0, attempts=2, sleep=lambda seconds: None, on_wait=said.append)
    with pytest.raises(ApiError) as caught:
        client.version()
    assert str(caught.value) == (f"GET {BASE}/version: HTTP 200: answer is not valid JSON ({len(body)} bytes starting "
                                 "'<html> <body>Service maintenance</body> </html>') (gave up after 2 tries)")
    assert said == ["answer not valid JSON, retrying in 0 s"]


@pytest.mark.parametrize("error, reason, description", [
    (requests.exceptions.ConnectTimeout("connect timed out"), "timed out", "connection timed out"),
    (requests.exceptions.ReadTimeout("read timed out"), "timed out", "no answer before the idle timeout"),
    (requests.exceptions.ChunkedEncodingError("broken chunk"), "connection dropped",
     "connection dropped while reading the answer (truncated body)"),
    (requests.exceptions.ContentDecodingError("bad gzip"), "connection dropped",
     "the compressed answer does not decompress"),
    (requests.exceptions.ConnectionError("[Errno 111] Connection refused"), "connection refused",
     "cannot connect (connection refused)"),
    (requests.exceptions.ConnectionError("Failed to resolve: Name or service not known"), "connection dropped",
     "cannot connect (host name not found)"),
    (requests.exceptions.ConnectionError("NameResolutionError(no such host)"), "connection dropped",
     "cannot connect (host name not found)"),
    (requests.exceptions.ConnectionError("[Errno -2] getaddrinfo failed"), "connection dropped",
     "cannot connect (host name not found)"),
    (requests.exceptions.ConnectionError("IncompleteRead(12 bytes read)"), "connection dropped",
     "connection dropped before the answer was complete"),
    (requests.exceptions.ConnectionError("RemoteDisconnected('closed')"), "connection dropped",
     "connection dropped before the answer was complete"),
    (requests.exceptions.ConnectionError("Connection aborted."), "connection dropped",
     "connection dropped before the answer was complete"),
    (requests.exceptions.ConnectionError("Connection RESET by peer"), "connection dropped",
     "connection dropped before the answer was complete"),
    (requests.exceptions.ConnectionError("[Errno 113] No route to host"), "connection dropped",
     "cannot connect ([Errno 113] No route to host)"),
    (requests.exceptions.ConnectionError(), "connection dropped", "cannot connect ()"),
    (requests.exceptions.TooManyRedirects("Exceeded 30 redirects."), "connection dropped",
     "TooManyRedirects: Exceeded 30 redirects."),
])
@responses.activate
def test_each_network_failure_is_retried_and_described_in_words(error, reason, description):
    responses.get(f"{BASE}/version", body=error)
    said: list[str] = []
    client = ApiClient(rate=0, attempts=2, sleep=lambda seconds: None, on_wait=said.append)
    with pytest.raises(ApiError) as caught:
        client.version()
    assert str(caught.value) == f"GET {BASE}/version: {description} (gave up after 2 tries)"
    assert said == [f"{reason}, retrying in 0 s"]
    assert client.requests_made == 2


@responses.activate
def test_a_long_connection_error_is_cut():
    reason = "[Errno 99] " + " ".join(fixture_record(NCT)["protocolSection"]["descriptionModule"]["briefSummary"].split())
    responses.get(f"{BASE}/version", body=requests.exceptions.ConnectionError(reason))
    with pytest.raises(ApiError) as caught:
        ApiClient(rate=0, attempts=1).version()
    assert str(caught.value) == f"GET {BASE}/version: cannot connect ({reason[:120]}) (gave up after 1 try)"


@responses.activate
def test_requests_carry_a_connect_timeout_and_an_idle_timeout_no_longer_than_the_deadline():
    responses.get(f"{BASE}/version", json={"apiVersion": "2.0.5"})
    ApiClient(rate=0).version()
    ApiClient(rate=0, deadline=5.0).version()
    ApiClient(rate=0, deadline=500.0).version()
    assert [call.request.req_kwargs["timeout"] for call in responses.calls] == [(10.0, 30.0), (10.0, 5.0), (10.0, 30.0)]
    assert all(call.request.req_kwargs["stream"] for call in responses.calls)
    assert all(call.request.url == f"{BASE}/version" for call in responses.calls)


@pytest.mark.parametrize("url, problem", [
    ("https://clinicaltrials.gov/api v2", "it holds spaces or control characters"),
    ("https://clinicaltrials.gov/api\tv2", "it holds spaces or control characters"),
    ("https://clinicaltrials.gov\x00/api", "it holds spaces or control characters"),
    ("https://clinicaltrials.gov:https/api/v2",
     "it must start with http:// or https:// and name a host (Port could not be cast to integer value as 'https')"),
    ("file:///api/v2", "it must start with http:// or https:// and name a host"),
])
def test_an_api_url_that_cannot_be_used_is_named_with_why(url, problem):
    from trialsync.errors import UsageError

    with pytest.raises(UsageError) as caught:
        ApiClient(base_url=url)
    assert str(caught.value) == f"invalid API URL {url!r}: {problem}"


def test_an_http_url_with_a_port_and_trailing_slashes_is_kept_without_them():
    assert ApiClient(base_url="http://127.0.0.1:8765/api/v2//", rate=0).base_url == "http://127.0.0.1:8765/api/v2"
    assert ApiClient(base_url="HTTPS://Example.org/api/v2", rate=0).base_url == "HTTPS://Example.org/api/v2"


# -- client: answers that break on the way (the stand-in API) ----------------------------------------------


@pytest.fixture
def one_study_api():
    with FakeApi(Corpus([fixture_record(NCT)])) as api:
        yield api


@pytest.mark.parametrize("fault, description", [
    ("cut", "connection dropped while reading the answer (truncated body)"),
    ("bad-gzip", "the compressed answer does not decompress"),
])
def test_a_body_that_breaks_while_read_is_retried_and_described(one_study_api, fault, description):
    one_study_api.inject("study", fault, times=2)
    said: list[str] = []
    client = ApiClient(base_url=one_study_api.url, rate=0, attempts=2, on_wait=said.append)
    with pytest.raises(ApiError) as caught:
        client.study(NCT)
    assert str(caught.value) == (f"GET {one_study_api.url}/studies/{NCT}: HTTP 200: {description} "
                                 "(gave up after 2 tries)")
    assert caught.value.status == 200
    assert said == ["connection dropped, retrying in 0 s"]
    one_study_api.inject("study", fault)
    assert client.study(NCT) == fixture_record(NCT)  # once, then the right answer
    assert client.requests_made == 4


def test_an_answer_later_than_the_deadline_is_given_up_and_asked_again(one_study_api):
    import time

    one_study_api.inject("version", "trickle", seconds=2.0)
    said: list[str] = []
    client = ApiClient(base_url=one_study_api.url, rate=0, attempts=2, deadline=0.25, on_wait=said.append)
    started = time.monotonic()
    assert client.version()["apiVersion"] == "2.0.5"
    assert time.monotonic() - started < 1.0  # the trickle alone would take more than a second
    assert said == ["no answer in time, retrying in 0 s"]
    one_study_api.inject("version", "trickle", seconds=2.0)
    with pytest.raises(ApiError) as caught:
        ApiClient(base_url=one_study_api.url, rate=0, attempts=1, deadline=0.25).version()
    assert str(caught.value) == (f"GET {one_study_api.url}/version: no complete answer within 0.25 s "
                                 "(gave up after 1 try)")


class _StallingBody:
    """A body whose bytes stop arriving after the headers came (what urllib3 raises past the idle timeout)."""

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:
        import urllib3

        raise urllib3.exceptions.ReadTimeoutError(None, "/api/v2/version", "Read timed out. (read timeout=30.0)")

    def close(self) -> None:
        pass


class _StallingSession(requests.Session):
    def get(self, url, **kwargs):
        response = requests.Response()
        response.status_code, response.reason, response.url = 200, "OK", url
        response.raw = _StallingBody()
        return response


def test_a_body_that_stops_arriving_is_retried_and_named_an_idle_timeout():
    said: list[str] = []
    client = ApiClient(rate=0, attempts=2, session=_StallingSession(), sleep=lambda seconds: None, on_wait=said.append)
    with pytest.raises(ApiError) as caught:
        client.version()
    assert str(caught.value) == (f"GET {BASE}/version: HTTP 200: the answer stopped arriving (idle timeout) "
                                 "(gave up after 2 tries)")
    assert said == ["connection dropped, retrying in 0 s"]
    assert client.requests_made == 2


@pytest.mark.parametrize("retry_after, wait", [("0.5", 0.5), ("0", 0.1), ("-5", 0.1)])
@responses.activate
def test_a_retry_after_shorter_than_a_second_is_waited_as_sent(retry_after, wait):
    responses.get(f"{BASE}/version", body="slow down", status=429, headers={"Retry-After": retry_after})
    responses.get(f"{BASE}/version", json={"apiVersion": "2.0.5"})
    sleeps: list[float] = []
    ApiClient(rate=0, backoff=0.1, sleep=sleeps.append).version()
    assert sleeps == [pytest.approx(wait)]


@responses.activate
def test_a_stop_during_the_wait_before_a_retry_says_what_it_stopped():
    import threading

    from trialsync.errors import Interrupted

    responses.get(f"{BASE}/version", body="busy", status=503)
    stop = threading.Event()
    client = ApiClient(rate=0, backoff=30.0, stop=stop, on_wait=lambda message: stop.set())
    with pytest.raises(Interrupted) as caught:
        client.version()
    assert str(caught.value) == "stopped while waiting to ask the API again"
    assert client.requests_made == 1


@responses.activate
def test_a_url_of_exactly_the_limit_is_shown_whole():
    responses.get(f"{BASE}/studies", body="Bad Request", status=400)
    client = ApiClient(rate=0, sleep=lambda seconds: None)
    bare = client.url_for("/studies", {"query.term": "", "pageSize": "1000", "countTotal": "true"})
    term = "stemcell" * 20
    term = term[:120 - len(bare)]
    url = client.url_for("/studies", {"query.term": term, "pageSize": "1000", "countTotal": "true"})
    assert len(url) == 120
    with pytest.raises(ApiError) as caught:
        list(iter_pages(client, {"query.term": term}))
    assert str(caught.value) == f"GET {url}: HTTP 400: Bad Request"


@responses.activate
def test_a_url_with_a_long_path_keeps_at_least_thirty_characters_of_its_query():
    base = "http://127.0.0.1:8765/mirrors/clinicaltrials-gov/api/v2/snapshots/2026-11-24/spinal-cord-injury"
    responses.get(f"{base}/studies", body="Bad Request", status=400)
    client = ApiClient(base_url=base, rate=0, sleep=lambda seconds: None)
    with pytest.raises(ApiError) as caught:
        list(iter_pages(client, {"query.term": "stem cell " * 10}))
    assert str(caught.value) == (f"GET {base}/studies?query.term=stem+cell+stem+cell…: HTTP 400: Bad Request")


@responses.activate
def test_an_answer_in_another_encoding_is_named_not_a_crash():
    body = "<html><body><p>Der Dienst ist vorübergehend nicht verfügbar.</p></body></html>".encode("latin-1")
    responses.get(f"{BASE}/version", body=body, status=200, content_type="text/html")
    client = ApiClient(rate=0, attempts=1)
    with pytest.raises(ApiError) as caught:
        client.version()
    assert str(caught.value) == (f"GET {BASE}/version: HTTP 200: answer is not valid JSON ({len(body)} bytes starting "
                                 "'<html><body><p>Der Dienst ist vor\ufffdbergehend nicht verf\ufffdgbar.') "
                                 "(gave up after 1 try)")


@responses.activate
def test_an_error_text_in_another_encoding_is_shown_not_a_crash():
    responses.get(f"{BASE}/version", body="Dienst vorübergehend nicht verfügbar".encode("latin-1"), status=503)
    client = ApiClient(rate=0, attempts=2, sleep=lambda seconds: None)
    with pytest.raises(ApiError) as caught:
        client.version()
    assert str(caught.value) == (f"GET {BASE}/version: HTTP 503: Dienst vor\ufffdbergehend nicht verf\ufffdgbar "
                                 "(gave up after 2 tries)")
    assert client.requests_made == 2


def test_a_request_still_under_way_does_not_keep_the_process_alive(one_study_api):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import trialsync

    assert ApiClient(base_url=one_study_api.url, rate=0).version()["apiVersion"] == "2.0.5"  # the same code, in-process
    one_study_api.reset_log()
    one_study_api.inject("version", "hang", seconds=4.0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(trialsync.__file__).parent.parent),
                                                        os.environ.get("PYTHONPATH", "")])}
    script = ("import sys, time\nfrom trialsync.api import ApiClient\n"
              "ApiClient(base_url=sys.argv[1], rate=0).start('/version', {})\ntime.sleep(0.3)\n")
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script, one_study_api.url], env=env, check=True, timeout=3.5)
    assert time.monotonic() - started < 3.5
    assert one_study_api.kinds == ["version"]


def test_a_stop_while_an_answer_is_awaited_says_what_it_stopped(one_study_api):
    import threading
    import time

    from trialsync.errors import Interrupted

    one_study_api.inject("version", "hang", seconds=2.0)
    stop = threading.Event()
    client = ApiClient(base_url=one_study_api.url, rate=0, stop=stop)
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted) as caught:
        client.version()
    assert time.monotonic() - started < 1.0
    assert str(caught.value) == "stopped while waiting for the API's answer"


def test_the_wait_for_a_pacing_slot_does_not_count_against_the_deadline(one_study_api):
    import time

    client = ApiClient(base_url=one_study_api.url, rate=120, deadline=0.3)  # a start every 0.505 s
    started = time.monotonic()
    assert client.version()["apiVersion"] == "2.0.5"
    assert client.study(NCT) == fixture_record(NCT)  # waited about 0.5 s for its turn, then answered at once
    assert 0.45 < time.monotonic() - started < 1.5
    assert client.requests_made == 2 and one_study_api.kinds == ["version", "study"]


@responses.activate
def test_a_url_requests_cannot_use_fails_at_once_with_its_reason():
    responses.get(f"{BASE}/version", body=requests.exceptions.InvalidURL("Failed to parse: clinicaltrials.gov:99999"))
    client = ApiClient(rate=0, attempts=3, sleep=lambda seconds: None)
    with pytest.raises(ApiError) as caught:
        client.version()
    assert str(caught.value) == f"invalid API URL {BASE}/version: Failed to parse: clinicaltrials.gov:99999"
    assert client.requests_made == 1


def test_an_answer_of_exactly_the_cap_is_read_and_one_byte_more_is_refused_in_words():
    """Without a Content-Length, the body is read up to one byte past the cap: a body of the cap's size is an
    answer, one a byte longer is abandoned unretried, the message saying how to raise the cap."""
    from trialsync.api.client import MB

    cap_mb = 0.5
    cap = int(cap_mb * MB)
    with FakeApi(Corpus([fixture_record("NCT06589271")])) as server:
        client = ApiClient(base_url=server.url, rate=0, max_response_mb=cap_mb, sleep=lambda seconds: None)
        server.inject("version", "flood-stream", size=cap)
        assert client.version()["apiVersion"] == "2.0.5"
        server.inject("version", "flood-stream", size=cap + 1, times=5)
        server.reset_log()
        with pytest.raises(ApiError) as caught:
            client.version()
    assert str(caught.value) == (f"GET {server.url}/version: the answer is larger than the 0.5 MB cap (it kept "
                                 "coming); abandoned, not retried (raise it with --max-response-mb or "
                                 "TRIALSYNC_MAX_RESPONSE_MB)")
    assert server.kinds == ["version"]  # asked once


def test_a_refused_connection_is_known_by_its_cause_or_by_its_words():
    """Linux says "Connection refused" in the message; another system may word it otherwise, and then the
    ConnectionRefusedError the connection failed with still says so. No route to the host is no refusal."""
    import urllib3

    from trialsync.api.client import _unreachable

    def failure(message: str, cause: BaseException | None = None) -> requests.exceptions.ConnectionError:
        reason = urllib3.exceptions.NewConnectionError(None, f"Failed to establish a new connection: {message}")
        reason.__cause__ = cause
        return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/version", reason))

    windows = "[WinError 10061] No connection could be made because the target machine actively refused it"
    assert _unreachable(failure(windows, ConnectionRefusedError(10061, windows))) == "connection refused"
    assert _unreachable(failure("[Errno 111] Connection refused")) == "connection refused"
    assert _unreachable(failure("[Errno 113] No route to host", OSError(113, "No route to host"))) is None
