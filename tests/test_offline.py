"""A first run without a network: an API that cannot be reached at all fails at once, in one line that points
to `trialsync import`; a service that answered before is still retried; status-report tells of the failed pull."""

from __future__ import annotations

import socket

import pytest
import requests

from fakeapi import Corpus, FakeApi, load_fixture_records
from trialsync.api import ApiClient
from trialsync.errors import ApiError, ApiUnreachable

UNRESOLVABLE = "http://nonexistent.invalid"  # .invalid never resolves (RFC 2606)


def refused_url() -> str:
    """The URL of a loopback port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def connection_attempts(monkeypatch) -> list[str]:
    """The URL of every HTTP request requests is asked to send."""
    attempts: list[str] = []
    real_get = requests.Session.get

    def counted(self, url, *args, **kwargs):
        attempts.append(url)
        return real_get(self, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "get", counted)
    return attempts


@pytest.mark.parametrize("url, reason", [(None, "connection refused"), (UNRESOLVABLE, "host name not found")],
                         ids=["refused", "unresolvable"])
def test_an_api_that_cannot_be_reached_fails_the_pull_at_once_pointing_to_import(cli, connection_attempts, url, reason):
    url = url or refused_url()

    result = cli("pull", "--api-url", url)

    assert result.code == 1, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert lines[0].startswith(f"trialsync: cannot reach the API at {url} ({reason})"), lines[0]
    assert "`trialsync import FILE`" in lines[0] and "data/stem-cell-spine-sample.json" in lines[0]
    assert connection_attempts == [f"{url}/version"]  # one attempt, no retry


def test_the_environment_variable_names_the_api_too(cli, connection_attempts, monkeypatch):
    url = refused_url()
    monkeypatch.setenv("TRIALSYNC_API_URL", url)
    result = cli("pull")
    assert result.code == 1 and "import" in result.err and len(result.err.splitlines()) == 1, result
    assert connection_attempts == [f"{url}/version"]


def test_no_network_ends_every_topics_turn_in_one_line(cli, connection_attempts):
    for name in ("alpha", "beta"):
        assert cli("topics", "add", name, "--condition", name).code == 0
    result = cli("pull", "--api-url", UNRESOLVABLE)
    assert result.code == 1 and len(result.err.splitlines()) == 1, result
    assert len(connection_attempts) == 1


def test_the_client_makes_one_request_and_says_unreachable():
    client = ApiClient(base_url=refused_url(), rate=0)
    with pytest.raises(ApiUnreachable) as caught:
        client.version()
    assert client.requests_made == 1 and not client.answered
    assert "connection refused" in str(caught.value) and "\n" not in str(caught.value)


def test_a_service_that_answered_before_is_retried_when_it_refuses_later():
    with FakeApi(Corpus(load_fixture_records())) as server:
        client = ApiClient(base_url=server.url, rate=0, attempts=3)
        assert client.version()["apiVersion"]
    # The server is gone: its port now refuses connections, as a service restarting mid-pull would.
    client.session.close()  # no kept-alive connection to the old server
    with pytest.raises(ApiError) as caught:
        client.version()
    assert not isinstance(caught.value, ApiUnreachable)
    assert "connection refused" in str(caught.value) and "gave up after 3 tries" in str(caught.value)
    assert client.requests_made == 1 + 3


def test_status_report_tells_of_the_failed_first_pull(cli):
    assert cli("pull", "--api-url", UNRESOLVABLE).code == 1
    report = cli("status-report").out
    assert "Not pulled yet: the last pull of 20" in report
    assert "failed: cannot reach the API at http://nonexistent.invalid (host name not found)" in " ".join(report.split())
    assert cli("import", "data/stem-cell-spine-sample.json").code == 0
    assert "Not pulled yet" not in cli("status-report").out


def test_an_interrupted_or_killed_first_pull_is_told_too():
    from trialsync.render.status import render_status_report

    report = {"topic": "t", "total": 0, "as_of": None, "data_timestamp": None, "statuses": [],
              "unknown_by_last_known": {}, "left_since_previous": 0, "previous": None,
              "last_failed_pull": {"finished_at": "2026-11-26T01:04:10Z", "outcome": "killed", "error": "power lost"}}
    assert render_status_report(report, "0 studies", "text")[-1] == (
        "Not pulled yet: the last pull of 2026-11-26T01:04:10Z was killed: power lost")
