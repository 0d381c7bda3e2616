"""The fault matrix: every request kind of a pull x every fault the stand-in API can serve.

Each case runs a scenario twice, on its own database and its own stand-in: once clean (computed once per
scenario and cached for the module), once with one fault injected on one kind of request. The faulted pull
must have been served that fault on that kind, must have asked again (the same request for a fault of the
request; the listing from its first page for a page that is empty or lost its token), must complete, and
must leave the database exactly as the clean run left it.

Two scenarios, both built from the recorded fixtures only:

* ``full``: the first pull of a new database, which fetches the API's data model, then 140 studies in pages
  of 50 (first, middle, last page).
* ``incremental``: a database holding a clean full pull; then the served data moves on (two studies
  change status with a newer last-update date, one changes status silently, one leaves the search) and
  the next pull is incremental in pages of 2: the changed-since query has two pages, the id listing one,
  and the silent change is fetched in one ``filter.ids`` batch.

Then a few cases outside the matrix: an API that stays down (through the command line), a 4xx, a listing
that stays short, and the counts of a pull whose listing was asked again (each study counted once).
"""

from __future__ import annotations

import shutil
import sqlite3
import zlib
from collections import Counter

import pytest

from conftest import fixture_record, with_status
from fakeapi import Corpus, FakeApi, load_fixture_records
from trialsync import store
from trialsync.api import ApiClient
from trialsync.api.pages import read_page
from trialsync.errors import ApiError, IncompleteListing, RecordError
from trialsync.sync.pull import PullOptions, pull_topic
from trialsync.topics import BUILTIN_TOPICS
from trialsync.transform import CHILD_COLUMNS, RESULT_COLUMNS

TOPIC = BUILTIN_TOPICS["stem-cell-spine"]
RECORDS = load_fixture_records()
DEADLINE = 1.0  # the client's deadline for one whole answer
HANG_SECONDS = 3.0  # "hang" holds an answer back this long; "trickle" sends it a byte every HANG_SECONDS / 100

KINDS = ["version", "metadata", "page:first", "page:middle", "page:last", "incremental", "listing", "ids"]
REQUEST_FAULTS = ["429", "429-bare", "500", "503", "reset", "drop", "cut", "truncate", "html", "bad-gzip", "hang",
                  "trickle"]
LISTING_FAULTS = ["empty", "no-token"]  # a well-formed page that breaks its listing: the listing is asked again
FAULTS = REQUEST_FAULTS + LISTING_FAULTS
SCENARIO = {"version": "full", "metadata": "full", "page:first": "full", "page:middle": "full", "page:last": "full",
            "incremental": "incremental", "listing": "incremental", "ids": "incremental"}

# Served, but with nothing to break: the test asserts they were served and harmless, and nothing was asked again.
HARMLESS = {
    ("page:last", "no-token"): "the last page (40 of 50) carries no token to drop",
    ("listing", "no-token"): "the id listing is one page (the client asks 1,000 a page), which carries no token",
    ("ids", "no-token"): "a filter.ids batch is asked one more a page than it has ids, so its page never fills "
                         "and carries no token to drop",
}
# The stand-in answers /version and /studies/metadata the same whatever page fault it is told to serve.
NOT_APPLICABLE = {
    (kind, fault): f"{fault} is a page fault: the stand-in answers {path} as usual"
    for kind, path in (("version", "/version"), ("metadata", "/studies/metadata")) for fault in ("empty", "no-token")
}

# The incremental scenario's changes to the served data, each derived from a real record.
BUMPED = {"NCT05489822": "COMPLETED", "NCT05305430": "ACTIVE_NOT_RECRUITING"}  # newer lastUpdatePostDate
SILENT = {"NCT04056520": "TERMINATED"}  # same lastUpdatePostDate: only the id listing shows it
LEAVER = "NCT01824108"  # no longer served: the id listing lacks it
NEW_TIMESTAMP = "2026-11-25T09:00:00"
INCREMENTAL_PAGE_SIZE = 2  # the changed-since query returns 3 studies: a full page with a token, then 1


def apply_incremental_changes(server: FakeApi) -> None:
    server.data_timestamp = NEW_TIMESTAMP
    for nct_id, status in BUMPED.items():
        server.corpus.put(with_status(fixture_record(nct_id), status, updated=NEW_TIMESTAMP[:10]))
    for nct_id, status in SILENT.items():
        server.corpus.put(with_status(fixture_record(nct_id), status))
    server.corpus.remove(LEAVER)


def client_for(server: FakeApi, **kwargs) -> ApiClient:
    return ApiClient(base_url=server.url, rate=0, deadline=DEADLINE, **kwargs)


def frozen(request: tuple[str, dict]) -> tuple[str, tuple]:
    path, params = request
    return path, tuple(sorted(params.items()))


def db_state(conn: sqlite3.Connection) -> dict:
    """What a pull leaves in the database, without row ids, pull ids or timestamps."""
    state = {
        "studies": conn.execute("SELECT nct_id, raw FROM studies ORDER BY nct_id").fetchall(),
        "topic_studies": conn.execute(
            "SELECT topic, nct_id, present, api_seen FROM topic_studies ORDER BY topic, nct_id").fetchall(),
        "versions": sorted((nct_id, updated, zlib.decompress(raw)) for nct_id, updated, raw in conn.execute(
            "SELECT nct_id, last_update_posted, raw_zlib FROM versions")),
        "changes": Counter(conn.execute("SELECT nct_id, field, old, new, topic, reason FROM changes").fetchall()),
        "topics": conn.execute("SELECT name, params, synced_params, filled, watermark, data_timestamp "
                               "FROM topics ORDER BY name").fetchall(),
        # Counts of studies, not of requests or of studies received (a listing asked again receives twice).
        "pulls": conn.execute("SELECT topic, kind, mode, outcome, error, data_timestamp, total_count, new, updated, "
                              "left_topic, rejoined, watermark, membership_checked FROM pulls ORDER BY id").fetchall(),
        # The API's data model and the drift of the records against it (the fixtures carry three fields it lacks).
        "data_models": conn.execute("SELECT api_version, paths FROM data_models ORDER BY id").fetchall(),
        "drift_notes": conn.execute("SELECT kind, value, nct_id, api_version FROM drift_notes ORDER BY 1, 2").fetchall(),
    }
    for table in [*CHILD_COLUMNS, *RESULT_COLUMNS]:
        state[table] = conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    # What the search finds: each study's indexed words (the index is checked against its text by FTS5 itself).
    conn.execute("INSERT INTO studies_fts (studies_fts, rank) VALUES ('integrity-check', 1)")
    state["studies_fts"] = conn.execute(
        "SELECT nct_id FROM studies WHERE rowid IN (SELECT rowid FROM studies_fts WHERE studies_fts MATCH 'study') "
        "ORDER BY 1").fetchall()
    return state


class Run:
    """One pull of a scenario: its result, the database it left, and the stand-in's request log."""

    def __init__(self, result, state, server: FakeApi):
        self.result, self.state = result, state
        self.requests = [frozen(r) for r in server.requests]
        self.kinds = list(server.kinds)
        self.injected = list(server.injected)
        self.times = list(server.request_times)


@pytest.fixture(scope="module")
def base_db(tmp_path_factory):
    """A database holding one clean full pull of the served fixtures (the start of the incremental scenario)."""
    path = tmp_path_factory.mktemp("base") / "base.db"
    with FakeApi(Corpus(RECORDS)) as server, store.open_for_writing(path) as conn:
        store.save_topic(conn, TOPIC)
        result = pull_topic(conn, client_for(server), TOPIC.name, PullOptions(page_size=50))
        assert (result.outcome, result.counts.new) == ("complete", len(RECORDS))
    return path


def run_scenario(scenario: str, db_path, base_db, fault: tuple[str, str] | None = None) -> Run:
    """Run ``scenario`` on a new database at ``db_path`` against a new stand-in, with ``fault`` (kind, fault)
    injected once."""
    with FakeApi(Corpus(RECORDS)) as server:
        if scenario == "incremental":
            shutil.copyfile(base_db, db_path)
            apply_incremental_changes(server)
            options = PullOptions(page_size=INCREMENTAL_PAGE_SIZE)
        else:
            options = PullOptions(page_size=50)
        if fault:
            server.inject(fault[0], fault[1], times=1, seconds=HANG_SECONDS)
        with store.open_for_writing(db_path) as conn:
            if store.topic_state(conn, TOPIC.name) is None:
                store.save_topic(conn, TOPIC)
            result = pull_topic(conn, client_for(server), TOPIC.name, options)
            state = db_state(conn)
        return Run(result, state, server)


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory, base_db):
    """Each scenario's clean run, computed once."""
    cache: dict[str, Run] = {}

    def clean(scenario: str) -> Run:
        if scenario not in cache:
            cache[scenario] = run_scenario(scenario, tmp_path_factory.mktemp("clean") / "clean.db", base_db)
        return cache[scenario]

    return clean


def test_each_scenario_asks_for_every_kind_it_is_meant_to(clean_runs):
    """The matrix is only as good as its scenarios: each kind must occur in its clean run, as planned."""
    full, incremental = clean_runs("full"), clean_runs("incremental")
    # /version is asked again at the end: a listing is trusted only if the data did not move while it was taken.
    # The data model is fetched once, by the first pull of a database (its apiVersion is new).
    assert full.kinds == ["version", "metadata", "page:first", "page:middle", "page:last", "version"]
    # the last: the study that left, fetched by id (once the listing is known to be of one release) to learn why
    # A filter.ids batch is one request: asked one more a page than its ids, its page never fills, so it carries no
    # token that would cost an empty request.
    assert incremental.kinds == ["version", "incremental", "incremental", "listing", "ids", "version", "ids"]
    assert (full.result.outcome, full.result.mode, full.result.counts.new) == ("complete", "full", len(RECORDS))
    result = incremental.result
    assert (result.outcome, result.mode, result.left, result.refetched) == ("complete", "incremental", 1, 1)
    status_changes = {(c[0], c[2], c[3]) for c in incremental.state["changes"] if c[1] == "overall_status"}
    assert status_changes == {(i, "RECRUITING", s) for i, s in {**BUMPED, **SILENT}.items()}
    assert (LEAVER, "membership", "present", "left", TOPIC.name, None) in incremental.state["changes"]


MATRIX = [
    pytest.param(kind, fault, id=f"{kind}-{fault}",
                 marks=[pytest.mark.skip(reason=NOT_APPLICABLE[kind, fault])] if (kind, fault) in NOT_APPLICABLE else [])
    for kind in KINDS for fault in FAULTS
]


@pytest.mark.parametrize("kind, fault", MATRIX)
def test_one_fault_on_one_kind_is_survived_and_changes_nothing(kind, fault, clean_runs, base_db, tmp_path):
    clean = clean_runs(SCENARIO[kind])
    run = run_scenario(SCENARIO[kind], tmp_path / "faulted.db", base_db, (kind, fault))

    # The fault was served once, on the intended kind.
    hit = [i for i, served in enumerate(run.injected) if served is not None]
    assert len(hit) == 1, f"faults served: {list(zip(run.kinds, run.injected))}"
    at = hit[0]
    assert (run.kinds[at], run.injected[at]) == (kind, fault)
    path, params = run.requests[at]
    later = [i for i in range(at + 1, len(run.requests)) if run.injected[i] is None]

    if fault in REQUEST_FAULTS:
        # The very same request was sent again, and that is the only request the clean run did not send.
        again = [i for i in later if run.requests[i] == run.requests[at]]
        assert again, f"{kind} {fault}: the request was not sent again: {run.requests[at]}"
        assert Counter(run.requests) - Counter(clean.requests) == Counter([run.requests[at]])
        assert not Counter(clean.requests) - Counter(run.requests)
        waited = run.times[again[0]] - run.times[at]
        if fault == "429":  # Retry-After: 1 is honoured even though the backoff is 10 ms
            assert waited >= 1.0
        if fault in ("hang", "trickle"):  # given up at the client's deadline, not left to the idle timeout
            assert DEADLINE * 0.9 <= waited < HANG_SECONDS
    else:
        # A page fault: the listing is asked again from its first page (the same query, no pageToken).
        first_page = (path, tuple(sorted({**{k: v for k, v in params if k != "pageToken"}, "countTotal": "true"}
                                         .items())))
        asked_again = [i for i in later if run.requests[i] == first_page]
        if (kind, fault) in HARMLESS:
            assert not asked_again, HARMLESS[kind, fault]
            assert not Counter(run.requests) - Counter(clean.requests)
        else:
            assert asked_again, f"{kind} {fault}: the listing was not asked again from its first page"
            assert not Counter(clean.requests) - Counter(run.requests)

    assert run.result.outcome == "complete"
    assert run.result.mode == clean.result.mode
    assert (run.result.left, run.result.refetched, run.result.counts.new, run.result.counts.updated) == (
        clean.result.left, clean.result.refetched, clean.result.counts.new, clean.result.counts.updated)
    for table in clean.state:
        assert run.state[table] == clean.state[table], f"{kind} {fault}: table {table} differs from the clean run"


# -- the worker process that flattens pages while the pull writes -------------------------------------------


@pytest.fixture
def worker(monkeypatch):
    """Every listing flattened by the worker process (whatever its length); the list says, per page handed to it,
    whether the worker's answer was taken (False: the page was flattened in the pull instead)."""
    from trialsync.sync import prepare, pull as pull_module

    taken: list[bool] = []

    class Watched(prepare.RecordWorker):
        def receive(self):
            answer = super().receive()
            taken.append(answer is not None)
            return answer

    monkeypatch.setattr(pull_module, "WORKER_FROM_STUDIES", 0)
    monkeypatch.setattr(pull_module, "RecordWorker", Watched)
    return taken


# No fault; a request asked again, a body cut short, a listing asked again from its first page: one on each page
# (the matrix above holds every fault on every page for the pull alone, which the worker's pages must equal).
WORKER_CASES = [("page:first", None), ("page:first", "500"), ("page:middle", "cut"), ("page:last", "empty")]


@pytest.mark.parametrize("kind, fault", WORKER_CASES)
def test_pages_flattened_by_the_worker_store_what_the_pull_alone_stores_through_faults(
        kind, fault, worker, clean_runs, base_db, tmp_path):
    clean = clean_runs("full")  # flattened in the pull itself: 140 studies are below the worker's threshold
    run = run_scenario("full", tmp_path / "worker.db", base_db, (kind, fault) if fault else None)
    assert worker and all(worker)  # every page (the first aside: the worker starts once its total is known)
    assert run.result.outcome == "complete"
    # The same requests as the pull alone sends; a fault costs only requests sent again.
    assert set(run.requests) == set(clean.requests) and not Counter(clean.requests) - Counter(run.requests)
    assert (len(run.requests) > len(clean.requests)) == (fault is not None and (kind, fault) not in HARMLESS)
    for table in clean.state:
        assert run.state[table] == clean.state[table], f"{kind} {fault}: table {table} differs from the pull alone"


def test_a_worker_that_dies_leaves_its_pages_to_the_pull(worker, monkeypatch, clean_runs, base_db, tmp_path):
    from trialsync.sync import prepare

    real_send = prepare.RecordWorker.send

    def send_then_die(self, raws):
        real_send(self, raws)
        self._process.kill()

    monkeypatch.setattr(prepare.RecordWorker, "send", send_then_die)
    run = run_scenario("full", tmp_path / "dead-worker.db", base_db)
    assert worker == [False]  # its first page was lost with it; the pull went on without it
    assert run.result.outcome == "complete"
    for table in (clean := clean_runs("full")).state:
        assert run.state[table] == clean.state[table], f"table {table} differs from the pull alone"


def test_a_record_the_worker_cannot_flatten_fails_the_pull_with_the_same_line(worker, base_db, tmp_path):
    odd = fixture_record(RECORDS[70]["protocolSection"]["identificationModule"]["nctId"])  # on the middle page
    odd["protocolSection"]["designModule"]["enrollmentInfo"] = {"count": "many"}
    records = RECORDS[:70] + [odd] + RECORDS[71:]
    with FakeApi(Corpus(records)) as server, store.open_for_writing(tmp_path / "odd.db") as conn:
        store.save_topic(conn, TOPIC)
        with pytest.raises(RecordError) as caught:
            pull_topic(conn, client_for(server), TOPIC.name, PullOptions(page_size=50))
    nct_id = odd["protocolSection"]["identificationModule"]["nctId"]
    assert str(caught.value) == (f"{nct_id}: protocolSection.designModule.enrollmentInfo.count is a string, where the API's spec has an "
                                 "integer; the record was not stored")
    assert worker[-1] is False  # the worker failed on that page, and the pull flattened it itself


# -- outside the matrix ------------------------------------------------------------------------------------


def cli_db_state(tmp_path) -> dict:
    conn = sqlite3.connect(tmp_path / "cli.db")
    try:
        return db_state(conn)
    finally:
        conn.close()


def test_an_api_that_stays_down_fails_the_cli_pull_with_one_line_and_changes_nothing(cli, tmp_path):
    with FakeApi(Corpus(RECORDS)) as server:
        args = ("pull", "--api-url", server.url, "--page-size", "50", "--timeout", "1")
        first = cli(*args)
        assert first.code == 0, first
        before = cli_db_state(tmp_path)
        apply_incremental_changes(server)
        server.inject("any", "503", times=100)
        server.reset_log()

        down = cli(*args)

        assert down.code == 1, down
        assert down.out == ""
        lines = down.err.splitlines()
        assert len(lines) == 1 and down.err.endswith("\n"), down.err
        assert "Traceback" not in down.err
        assert f"{server.url}/version" in lines[0] and "HTTP 503" in lines[0], lines[0]
        assert len(server.requests) == 5 and set(server.injected) == {"503"}  # --retries defaults to 5
        after = cli_db_state(tmp_path)
        failed_pull = after["pulls"].pop()
        assert after == before
        outcome, error = failed_pull[3], failed_pull[4]
        assert outcome == "failed"
        assert lines[0] == f"trialsync: {TOPIC.name}: {error}"

        server.clear_faults()
        back = cli(*args)
        assert back.code == 0, back
        conn = sqlite3.connect(tmp_path / "cli.db")
        try:
            stored = dict(conn.execute("SELECT nct_id, CAST(raw AS BLOB) FROM studies"))
            present = {r[0] for r in conn.execute("SELECT nct_id FROM topic_studies WHERE present = 1")}
            last = conn.execute("SELECT outcome, mode FROM pulls ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            conn.close()
        assert last == ("complete", "incremental")
        assert present == set(server.corpus.order)
        assert all(stored[i] == server.corpus.body[i] for i in server.corpus.order)


@pytest.mark.parametrize("call, status, text", [
    (lambda client: client.study("NCT99999999"), 404, "NCT number NCT99999999 not found"),
    (lambda client: client.send("/studies", {"pageToken": "not-a-token"}, read_page), 400,
     "Invalid value in parameter `pageToken`"),
], ids=["404-study", "400-bad-token"])
def test_a_4xx_answer_fails_at_once_without_a_retry(api_server, call, status, text):
    client = client_for(api_server)
    with pytest.raises(ApiError) as caught:
        call(client)
    assert caught.value.status == status
    message = str(caught.value)
    assert f"HTTP {status}: {text}" in message and api_server.url in message and "\n" not in message
    assert client.requests_made == 1 and len(api_server.requests) == 1


def test_a_listing_asked_again_counts_each_study_once(clean_runs, base_db, tmp_path):
    clean = clean_runs("full")
    run = run_scenario("full", tmp_path / "faulted.db", base_db, ("page:middle", "no-token"))
    first_page = run.requests[run.kinds.index("page:first")]
    assert run.result.outcome == "complete" and run.requests.count(first_page) == 2  # asked twice
    assert run.result.counts == clean.result.counts  # received 140, new 140, updated 0, unchanged 0
    with sqlite3.connect(tmp_path / "faulted.db") as conn:
        assert conn.execute("SELECT received, new, updated, unchanged FROM pulls ORDER BY id DESC LIMIT 1").fetchone() \
            == (140, 140, 0, 0)


@pytest.mark.parametrize("kind, fault, full", [
    ("listing", "empty", False),  # the incremental pull's id listing: every answer an empty page
    ("page:middle", "no-token", True),  # a full pull's search: every answer stops after its middle page
], ids=["id-listing-empty", "full-search-no-token"])
def test_a_listing_that_stays_short_fails_the_pull_and_marks_nothing_as_left(kind, fault, full, base_db, tmp_path):
    path = tmp_path / "short.db"
    shutil.copyfile(base_db, path)
    with FakeApi(Corpus(RECORDS)) as server, store.open_for_writing(path) as conn:
        present_before = store.present_ids(conn, TOPIC.name)
        assert LEAVER in present_before and len(present_before) == len(RECORDS)
        apply_incremental_changes(server)  # LEAVER is no longer served: a trusted listing would mark it left
        server.inject(kind, fault, times=10)
        options = PullOptions(full=full, page_size=50 if full else INCREMENTAL_PAGE_SIZE)

        with pytest.raises(IncompleteListing) as caught:
            pull_topic(conn, client_for(server), TOPIC.name, options)

        assert "asked 3 times" in str(caught.value)
        first_kind = "listing" if kind == "listing" else "page:first"
        assert server.kinds.count(first_kind) == 3
        assert server.injected.count(fault) == 3 and all(
            k == kind for k, f in zip(server.kinds, server.injected) if f)
        assert store.present_ids(conn, TOPIC.name) == present_before
        assert conn.execute("SELECT count(*) FROM changes WHERE field = 'membership'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM topic_studies WHERE present = 0").fetchone()[0] == 0
        assert conn.execute("SELECT outcome, error FROM pulls ORDER BY id DESC LIMIT 1").fetchone() == (
            "failed", str(caught.value))

        server.clear_faults()
        result = pull_topic(conn, client_for(server), TOPIC.name, options)
        assert (result.outcome, result.left) == ("complete", 1)
        assert store.present_ids(conn, TOPIC.name) == set(server.corpus.order)
        stored = dict(conn.execute("SELECT nct_id, CAST(raw AS BLOB) FROM studies"))
        assert all(stored[i] == server.corpus.body[i] for i in server.corpus.order)
