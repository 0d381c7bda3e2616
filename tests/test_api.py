"""The API client against recorded real pages served by `responses`: paging, retries, errors, pacing."""

from __future__ import annotations

import json

import orjson
import pytest
import requests
import responses
from responses import matchers

from conftest import fixture_page
from trialsync import __version__
from trialsync.api import ApiClient, RequestPacer, iter_pages
from trialsync.api.pages import split_page
from trialsync.errors import ApiError, IncompleteListing

BASE = "https://clinicaltrials.gov/api/v2"
PAGE_5 = "RuhRuh66__step25_clinical_trials__data__studies.json"  # 5 full records, nextPageToken
PAGE_LAST = "ctti-clinicaltrials__aact__spec__fixtures__json__studies__import__NCT06388018.json"  # 1, no token
PARAMS = {"query.cond": "spinal cord injury", "query.intr": "stem cell"}


def make_client(sleeps: list | None = None, **kwargs) -> ApiClient:
    recorded = sleeps if sleeps is not None else []
    return ApiClient(rate=0, sleep=recorded.append, backoff=1.0, **kwargs)


def ids(page) -> list[str]:
    return [s["protocolSection"]["identificationModule"]["nctId"] for s in page.studies()]


@responses.activate
def test_pages_are_followed_through_an_empty_page_with_a_token_and_parameters_repeat_exactly():
    first = fixture_page(PAGE_5)
    last = fixture_page(PAGE_LAST)
    responses.get(f"{BASE}/studies", json={**first, "totalCount": 6}, match=[matchers.query_param_matcher(
        {**PARAMS, "pageSize": "1000", "countTotal": "true"})])
    responses.get(f"{BASE}/studies", json={"studies": [], "nextPageToken": "EMPTY-BUT-NOT-THE-END"},
                  match=[matchers.query_param_matcher({**PARAMS, "pageSize": "1000", "pageToken": first["nextPageToken"]})])
    responses.get(f"{BASE}/studies", json=last, match=[matchers.query_param_matcher(
        {**PARAMS, "pageSize": "1000", "pageToken": "EMPTY-BUT-NOT-THE-END"})])

    client = make_client()
    pages = list(iter_pages(client, PARAMS))

    assert [ids(p) for p in pages] == [
        ["NCT06476470", "NCT02960672", "NCT05932303", "NCT00258583", "NCT04676594"], [], ["NCT06388018"]]
    assert pages[0].total_count == 6 and pages[1].total_count is None
    assert client.requests_made == 3
    assert len(responses.calls) == 3


@responses.activate
def test_the_same_token_twice_is_an_error_not_a_loop():
    page = fixture_page(PAGE_5)
    responses.get(f"{BASE}/studies", json=page)
    client = make_client()
    with pytest.raises(IncompleteListing, match="same nextPageToken twice"):
        list(iter_pages(client, PARAMS))
    assert client.requests_made == 2  # the page, then the same page again: then it stops


@responses.activate
def test_429_with_retry_after_is_waited_out_then_succeeds():
    responses.get(f"{BASE}/version", body="Too Many Requests", status=429, headers={"Retry-After": "7"})
    responses.get(f"{BASE}/version", json={"apiVersion": "2.0.5", "dataTimestamp": "2026-11-24T09:00:05"})
    sleeps: list[float] = []
    client = make_client(sleeps)
    assert client.version()["dataTimestamp"] == "2026-11-24T09:00:05"
    assert sleeps == [7.0]
    assert client.requests_made == 2


@responses.activate
def test_a_400_shows_the_api_text_url_and_status_without_retrying():
    responses.get(f"{BASE}/studies", body="`query.recrs` is unknown parameter", status=400,
                  content_type="text/plain")
    client = make_client()
    with pytest.raises(ApiError) as caught:
        list(iter_pages(client, {"query.recrs": "x"}))
    message = str(caught.value)
    assert "HTTP 400" in message and "`query.recrs` is unknown parameter" in message
    assert message.startswith(f"GET {BASE}/studies?query.recrs=x")
    assert "\n" not in message
    assert client.requests_made == 1


@responses.activate
def test_server_errors_are_retried_with_growing_backoff_then_reported_in_one_line():
    responses.get(f"{BASE}/version", body="upstream timed out\n<br>", status=503)
    sleeps: list[float] = []
    client = make_client(sleeps, attempts=4)
    with pytest.raises(ApiError) as caught:
        client.version()
    assert client.requests_made == 4
    assert sleeps == [1.0, 2.0, 4.0]
    assert str(caught.value) == f"GET {BASE}/version: HTTP 503: upstream timed out <br> (gave up after 4 tries)"


@responses.activate
def test_an_html_page_served_as_200_is_retried():
    responses.get(f"{BASE}/studies/NCT06388018", body="<html>maintenance</html>", status=200,
                  content_type="text/html")
    responses.get(f"{BASE}/studies/NCT06388018", json=fixture_page(PAGE_LAST)["studies"][0])
    client = make_client()
    assert client.study("NCT06388018")["protocolSection"]["identificationModule"]["nctId"] == "NCT06388018"
    assert client.requests_made == 2


@responses.activate
def test_a_dropped_connection_is_retried():
    responses.get(f"{BASE}/version", body=requests.ConnectionError("Connection aborted."))
    responses.get(f"{BASE}/version", json={"apiVersion": "2.0.5", "dataTimestamp": "x"})
    client = make_client()
    assert client.version()["apiVersion"] == "2.0.5"
    assert client.requests_made == 2


@responses.activate
def test_a_study_that_does_not_exist_is_a_404_with_the_api_text():
    responses.get(f"{BASE}/studies/NCT99999999", body="NCT number NCT99999999 not found", status=404)
    with pytest.raises(ApiError, match="HTTP 404: NCT number NCT99999999 not found"):
        make_client().study("NCT99999999")


@responses.activate
def test_requests_name_trialsync_and_its_version():
    responses.get(f"{BASE}/version", json={"apiVersion": "2.0.5"})
    make_client().version()
    assert responses.calls[0].request.headers["User-Agent"].startswith(f"trialsync/{__version__}")


@responses.activate
def test_base_url_is_configurable():
    responses.get("http://127.0.0.1:9/mirror/version", json={"apiVersion": "2.0.5"})
    assert ApiClient(base_url="http://127.0.0.1:9/mirror/", rate=0).version() == {"apiVersion": "2.0.5"}


def test_pacing_spaces_request_starts_to_the_configured_rate():
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    pacer = RequestPacer(50, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        pacer.wait_turn()
    assert sleeps == pytest.approx([1.212, 1.212, 1.212])
    assert now[0] - 100.0 == pytest.approx(3.636)  # 4 starts 1.212 s apart: a hair under 50 a minute


def test_rate_zero_turns_pacing_off():
    sleeps: list[float] = []
    pacer = RequestPacer(0, sleep=sleeps.append)
    for _ in range(10):
        pacer.wait_turn()
    assert sleeps == []


RECORDED_PAGE = "RuhRuh66__step25_clinical_trials__data__studies.json"


def recorded_studies() -> list[dict]:
    return fixture_page(RECORDED_PAGE)["studies"]


def test_a_compact_page_is_cut_into_the_exact_bytes_of_each_study():
    studies = recorded_studies()
    body = orjson.dumps({"totalCount": 5, "studies": studies, "nextPageToken": "abc]def"})
    envelope, raw = split_page(body)
    assert envelope == {"totalCount": 5, "studies": [], "nextPageToken": "abc]def"}
    assert raw == [orjson.dumps(study) for study in studies]
    assert b",".join(raw) in body


@pytest.mark.parametrize("indent", [None, 2])
def test_a_page_with_spaces_or_indentation_is_cut_too(indent):
    studies = recorded_studies()
    envelope, raw = split_page(json.dumps({"studies": studies, "nextPageToken": "t"}, indent=indent).encode())
    assert envelope == {"studies": [], "nextPageToken": "t"}
    assert [orjson.loads(r) for r in raw] == studies


@pytest.mark.parametrize("body", [
    orjson.dumps({"studies": [{"hasResults": False, **recorded_studies()[0]}]}),  # another key comes first
    orjson.dumps({"studies": []}),
    orjson.dumps({"studies": recorded_studies()})[:-3000],  # truncated
    b"<html>maintenance</html>",
])
def test_bodies_of_another_shape_are_left_to_a_whole_parse(body):
    assert split_page(body) is None


@responses.activate
def test_a_pretty_printed_page_still_gives_every_study():
    studies = recorded_studies()
    responses.get(f"{BASE}/studies", body=json.dumps({"studies": studies}, indent=2))
    page = next(iter_pages(make_client(), {}))
    assert list(page.studies()) == studies


@responses.activate
def test_an_api_without_a_version_endpoint_does_not_stop_a_pull():
    from trialsync.sync.pull import fetch_data_timestamp

    responses.get(f"{BASE}/version", body="Not found", status=404)
    assert fetch_data_timestamp(make_client()) == (None, None)
    responses.replace(responses.GET, f"{BASE}/version", body="Bad Request", status=400)
    with pytest.raises(ApiError) as caught:
        fetch_data_timestamp(make_client())
    assert caught.value.status == 400


@responses.activate
def test_empty_pages_that_never_end_are_given_up_after_a_few():
    for number in range(10):
        responses.get(f"{BASE}/studies", json={"studies": [], "nextPageToken": f"T{number}"})
    client = make_client()
    with pytest.raises(IncompleteListing, match="3 empty pages in a row"):
        list(iter_pages(client, PARAMS))
    assert client.requests_made == 3


@responses.activate
def test_a_prefetched_page_that_fails_is_sent_again_as_a_new_request():
    first = fixture_page(PAGE_5)
    responses.get(f"{BASE}/studies", json={**first, "totalCount": 6}, match=[matchers.query_param_matcher(
        {**PARAMS, "pageSize": "1000", "countTotal": "true"})])
    second = {**PARAMS, "pageSize": "1000", "pageToken": first["nextPageToken"]}
    responses.get(f"{BASE}/studies", body="busy", status=503, match=[matchers.query_param_matcher(second)])
    responses.get(f"{BASE}/studies", json=fixture_page(PAGE_LAST), match=[matchers.query_param_matcher(second)])
    client = make_client()
    pages = list(iter_pages(client, PARAMS))
    assert [len(p.raw_studies) for p in pages] == [5, 1]
    assert [call.request.params.get("pageToken") for call in responses.calls] == [
        None, first["nextPageToken"], first["nextPageToken"]]


def test_a_stop_request_ends_a_retry_wait_at_once():
    import threading
    import time as clock

    from trialsync.errors import Interrupted

    stop = threading.Event()
    client = ApiClient(rate=0, stop=stop)
    threading.Timer(0.2, stop.set).start()
    started = clock.monotonic()
    with pytest.raises(Interrupted):
        client._sleep(60)
    assert clock.monotonic() - started < 2


@pytest.mark.parametrize("url", ["ftp://example.org/api", "clinicaltrials.gov/api/v2", "http://", ""])
def test_an_api_url_that_is_not_http_fails_at_once(url):
    from trialsync.errors import UsageError

    if not url:
        assert ApiClient(base_url=url).base_url == "https://clinicaltrials.gov/api/v2"  # empty means the default
        return
    with pytest.raises(UsageError, match="invalid API URL"):
        ApiClient(base_url=url)


@responses.activate
def test_the_wait_before_a_retry_is_announced_with_its_reason():
    responses.get(f"{BASE}/version", body="slow down", status=429, headers={"Retry-After": "8"})
    responses.get(f"{BASE}/version", json={"apiVersion": "2.0.5"})
    said: list[str] = []
    ApiClient(rate=0, sleep=lambda s: None, on_wait=said.append).version()
    assert said == ["HTTP 429, retrying in 8 s"]
