"""The one way trialsync sends a request to the API: pacing, an overall deadline, retries with backoff
and ``Retry-After``, and waits that a stop request (Ctrl-C, SIGTERM) ends at once. Knows no database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlencode, urlsplit

import orjson
import requests
import urllib3
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from .. import __version__
from ..defaults import (  # noqa: F401 (DEFAULT_BACKOFF: the tests shorten it here)
    DEFAULT_API_URL, DEFAULT_ATTEMPTS, DEFAULT_BACKOFF, DEFAULT_DEADLINE, DEFAULT_MAX_RESPONSE_MB, DEFAULT_RATE,
)
from ..errors import ApiError, ApiUnreachable, Interrupted, UsageError

MB = 1024 * 1024
CONNECT_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0  # seconds without a byte before a request counts as hung
USER_AGENT = f"trialsync/{__version__} (ClinicalTrials.gov mirror; python-requests)"
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After would stall a nightly pull for no gain
ERROR_TEXT_LIMIT = 300
POLL_SECONDS = 0.05  # how often a wait looks for a stop request
OFFLINE_HINT = ("no network? `trialsync import FILE` works without one: a file downloaded from ClinicalTrials.gov, "
                "or data/stem-cell-spine-sample.json in trialsync's source")

T = TypeVar("T")


class ResponseTooLarge(ApiError):
    """An answer whose body passed the size cap: abandoned as it streamed in, and not asked again."""


class TransientApiError(ApiError):
    """One attempt failed in a way worth retrying (429, 5xx, dropped connection, broken body, no answer in time)."""

    def __init__(self, message: str, reason: str, retry_after: float | None = None, status: int | None = None,
                 unreachable: str | None = None):
        super().__init__(message, status)
        self.reason = reason  # a few words for a progress line: "HTTP 429", "connection dropped"
        self.retry_after = retry_after
        self.unreachable = unreachable  # "host name not found" / "connection refused": no connection was made


@dataclass
class Answer:
    """One HTTP answer, read whole."""

    url: str
    status: int
    reason: str
    retry_after: str | None
    body: bytes


@dataclass
class Pending:
    """A request under way in its own thread; ``started`` is set once pacing let it go."""

    url: str
    future: Future = field(default_factory=Future)
    started: float | None = None


class RequestPacer:
    """Spaces request starts so that no more than ``per_minute`` begin in any minute (0 = no pacing)."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        # 1% under the rate, so that jitter on the way never lets the server see more than it allows.
        self.interval = 60.0 / per_minute * 1.01 if per_minute > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_start = 0.0

    def wait_turn(self) -> None:
        """Block until the next request may start, and reserve that slot."""
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + self.interval
        if start > now:
            self._sleep(start - now)


def one_line(text: str) -> str:
    """``text`` on one line, cut to a readable length."""
    text = " ".join(text.split())
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "..."


def short_url(url: str, limit: int = 120) -> str:
    """``url`` for a one-line message: a long query is cut, the rest kept."""
    if len(url) <= limit or "?" not in url:
        return url
    head, _, query = url.partition("?")
    return f"{head}?{query[:max(limit - len(head) - 2, 30)]}…"


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash if it is an http(s) URL with a host; else UsageError."""
    problem = f"invalid API URL {url!r}: it must start with http:// or https:// and name a host"
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UsageError(f"invalid API URL {url!r}: it holds spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  raises ValueError for a port that is not a number
    except ValueError as exc:
        raise UsageError(f"{problem} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(problem)
    return url.rstrip("/")


class ApiClient:
    """A paced, retrying client for the endpoints trialsync uses.

    Every request goes through ``send``: it runs in a thread of its own, so that the caller can give up
    on it when its deadline passes or a stop is requested, and every retry is a new request.
    ``requests_made`` counts every HTTP request sent, retries included; ``answered`` says whether the
    service has answered one of them (any HTTP status) since the client was made.
    """

    def __init__(
        self,
        base_url: str | None = None,
        rate: float = DEFAULT_RATE,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float | None = None,
        max_backoff: float = 60.0,
        deadline: float = DEFAULT_DEADLINE,
        session: requests.Session | None = None,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] | None = None,
        on_wait: Callable[[str], None] | None = None,
        max_response_mb: float = DEFAULT_MAX_RESPONSE_MB,
    ):
        self.base_url = check_base_url(base_url or DEFAULT_API_URL)
        self.max_response_mb = max_response_mb
        self.max_response_bytes = max(1, int(max_response_mb * MB))
        self.attempts = max(1, attempts)
        self.deadline = deadline
        self.idle_timeout = min(IDLE_TIMEOUT, deadline)
        self.requests_made = 0
        self.answered = False
        self.stop = stop or threading.Event()
        self.on_wait = on_wait or (lambda message: None)
        self._count_lock = threading.Lock()
        self._sleep = sleep or self._pause
        backoff = DEFAULT_BACKOFF if backoff is None else backoff
        self._backoff = wait_exponential(multiplier=backoff, min=backoff, max=max_backoff)
        self.pacer = RequestPacer(rate, sleep=self._sleep)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    # -- endpoints -----------------------------------------------------------------------------------

    def version(self) -> dict:
        """`GET /version`: ``{"apiVersion": ..., "dataTimestamp": ...}``."""
        return self.send("/version", {}, lambda answer: self.json_object(answer))

    def data_model(self) -> list:
        """`GET /studies/metadata`: the API's data model, a JSON list of field nodes (``name``, ``children``...)."""
        return self.send("/studies/metadata", {}, self.json_list)

    def study(self, nct_id: str) -> dict:
        """`GET /studies/{nctId}`: one full study record."""
        def read(answer: Answer) -> dict:
            record = self.json_object(answer)
            if not isinstance(record.get("protocolSection"), dict):
                raise TransientApiError(f"GET {short_url(answer.url)}: HTTP 200: answer is not a study record",
                                        "not a study")
            return record

        return self.send(f"/studies/{nct_id}", {}, read)

    def url_for(self, path: str, params: Mapping[str, str]) -> str:
        """The full URL a request for ``path`` with ``params`` goes to (openable in a browser)."""
        query = urlencode(list(params.items()))
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    # -- sending --------------------------------------------------------------------------------------

    def start(self, path: str, params: Mapping[str, str]) -> Pending:
        """Begin one request now, in its own thread; ``send`` can take it as its first attempt."""
        pending = Pending(self.url_for(path, params))
        params = dict(params)

        def run() -> None:
            if not pending.future.set_running_or_notify_cancel():
                return
            try:
                pending.future.set_result(self._fetch(pending, path, params))
            except BaseException as exc:  # handed to whoever waits on the future
                pending.future.set_exception(exc)

        threading.Thread(target=run, daemon=True, name="trialsync-request").start()
        return pending

    def send(self, path: str, params: Mapping[str, str], read: Callable[[Answer], T],
             first: Pending | None = None) -> T:
        """GET ``path`` and return ``read(answer)``, retrying what is transient with a new request each time.

        ``read`` turns a 2xx answer into a value and raises TransientApiError for a body that is not what
        the endpoint sends (HTML, cut JSON). 429 and 5xx, dropped connections and answers past the deadline
        are retried with exponential backoff, at least ``Retry-After``; other 4xx fail at once. After the
        last try: ApiError in one line, with the URL, the status and the API's own text. A stop request
        raises Interrupted at once, whatever is under way. A host name that does not resolve, or a refused
        connection, before the service has answered once (``answered``) is not retried: ApiUnreachable at
        once, pointing to ``trialsync import``.
        """
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait_before_retry,
            retry=retry_if_exception(lambda exc: isinstance(exc, TransientApiError) and not self._offline(exc)),
            sleep=self._sleep,
            before_sleep=self._announce_wait,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    # A prefetched request serves the first attempt only: every retry is sent anew.
                    pending, first = first or self.start(path, params), None
                    return read(self._checked(self._await(pending)))
        except TransientApiError as exc:
            if self._offline(exc):
                raise ApiUnreachable(f"cannot reach the API at {self.base_url} ({exc.unreachable}); "
                                     f"{OFFLINE_HINT}", exc.unreachable) from None
            tries = "1 try" if self.attempts == 1 else f"{self.attempts} tries"
            raise ApiError(f"{exc} (gave up after {tries})", exc.status) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    @staticmethod
    def json_object(answer: Answer) -> dict:
        """The answer's body as a JSON object; TransientApiError when it is not one."""
        return _json_of_type(answer, dict, "a JSON object")

    @staticmethod
    def json_list(answer: Answer) -> list:
        """The answer's body as a JSON list; TransientApiError when it is not one."""
        return _json_of_type(answer, list, "a JSON list")

    # -- internals -------------------------------------------------------------------------------------

    def _offline(self, exc: TransientApiError) -> bool:
        # Retries are for a service that answered before; a machine that cannot even connect is offline.
        return exc.unreachable is not None and not self.answered

    def _pause(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Interrupted("stopped while waiting to ask the API again")

    def _await(self, pending: Pending) -> Answer:
        """The answer of ``pending``; gives up on it when its deadline passes or a stop is requested."""
        while True:
            try:
                return pending.future.result(timeout=POLL_SECONDS)
            except TimeoutError:
                pass
            if self.stop.is_set():
                raise Interrupted("stopped while waiting for the API's answer")
            started = pending.started
            if started is not None and time.monotonic() - started > self.deadline:
                # The request's thread is left to end on its own (idle timeout); its answer is never read.
                raise TransientApiError(f"GET {short_url(pending.url)}: no complete answer within {self.deadline:g} s",
                                        "no answer in time")

    def _fetch(self, pending: Pending, path: str, params: Mapping[str, str]) -> Answer:
        """One HTTP request, run in the request's own thread; the body is read whole."""
        self.pacer.wait_turn()
        pending.started = time.monotonic()
        with self._count_lock:
            self.requests_made += 1
        url = f"{self.base_url}{path}"
        try:
            response = self.session.get(url, params=params, timeout=(CONNECT_TIMEOUT, self.idle_timeout), stream=True)
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema) as exc:
            raise ApiError(f"invalid API URL {url}: {one_line(str(exc))}") from None
        except requests.RequestException as exc:
            raise TransientApiError(f"GET {short_url(pending.url)}: {_describe_network_error(exc)}",
                                    _short_network_reason(exc), unreachable=_unreachable(exc)) from None
        self.answered = True
        limit = self.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if not response.headers.get("Content-Encoding") and declared.isdigit() and int(declared) > limit:
            response.close()  # announced too large: not a byte of it is read
            raise self._too_large(response.url, f"it announces {int(declared):,} bytes")
        try:
            # One read of the whole body, up to one byte past the cap: requests' own loop of 10 kB chunks costs
            # several times the CPU. urllib3 returns fewer bytes than asked only at the end of the body (gzip is
            # counted decompressed), so a flood is never held past the cap.
            body = response.raw.read(limit + 1, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            response.close()
            raise TransientApiError(f"GET {short_url(response.url)}: HTTP {response.status_code}: "
                                    f"{_describe_read_error(exc)}",
                                    "connection dropped", status=response.status_code) from None
        if len(body) > limit:
            response.close()  # the rest of the flood is never read
            del body
            raise self._too_large(response.url, "it kept coming")
        response.raw.release_conn()
        return Answer(response.url, response.status_code, response.reason or "",
                      response.headers.get("Retry-After"), body)

    def _too_large(self, url: str, how: str) -> ResponseTooLarge:
        # Not retried: an answer this large is no passing fault (the same request gets the same flood), and
        # asking again would only download it again.
        return ResponseTooLarge(f"GET {short_url(url)}: the answer is larger than the {self.max_response_mb:g} MB "
                                f"cap ({how}); abandoned, not retried (raise it with --max-response-mb or "
                                "TRIALSYNC_MAX_RESPONSE_MB)")

    @staticmethod
    def _checked(answer: Answer) -> Answer:
        """``answer`` if its status is a success; else the error it stands for."""
        status = answer.status
        if status < 400:
            return answer
        text = one_line(answer.body.decode("utf-8", "replace")) or answer.reason
        message = f"GET {short_url(answer.url)}: HTTP {status}: {text}"
        if status in (408, 429) or status >= 500:
            raise TransientApiError(message, f"HTTP {status}", _retry_after_seconds(answer.retry_after), status)
        raise ApiError(message, status)

    def _wait_before_retry(self, retry_state) -> float:
        backoff = self._backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after) if retry_after is not None else backoff

    def _announce_wait(self, retry_state) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        seconds = retry_state.next_action.sleep if retry_state.next_action else 0
        self.on_wait(f"{getattr(exc, 'reason', 'error')}, retrying in {seconds:.0f} s")


def _json_of_type(answer: Answer, kind: type, name: str):
    """The answer's body parsed, if it is JSON of ``kind``; TransientApiError when it is not (a cut or garbled
    body, a maintenance page)."""
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        start = one_line(answer.body[:60].decode("utf-8", "replace"))
        raise TransientApiError(
            f"GET {short_url(answer.url)}: HTTP {answer.status}: answer is not valid JSON "
            f"({len(answer.body)} bytes starting {start!r})", "answer not valid JSON") from None
    if not isinstance(data, kind):
        raise TransientApiError(f"GET {short_url(answer.url)}: HTTP {answer.status}: answer is not {name}",
                                f"answer not {name}")
    return data


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _describe_read_error(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "the answer stopped arriving (idle timeout)"
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return "the compressed answer does not decompress"
    return "connection dropped while reading the answer (truncated body)"


def _unreachable(exc: requests.RequestException) -> str | None:
    """"host name not found" or "connection refused" when ``exc`` means no connection could be made at all."""
    if not isinstance(exc, requests.exceptions.ConnectionError) or isinstance(exc, requests.exceptions.Timeout):
        return None
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return "host name not found"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        cause = reason.__cause__ or reason.__context__
        if isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(reason):
            return "connection refused"
    return None


def _short_network_reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError) and "refused" in str(exc):
        return "connection refused"
    return "connection dropped"


def _describe_network_error(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer before the idle timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped while reading the answer (truncated body)"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "the compressed answer does not decompress"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = str(exc.args[0]) if exc.args else str(exc)
        if "Connection refused" in reason:
            return "cannot connect (connection refused)"
        if "Name or service not known" in reason or "NameResolutionError" in reason or "getaddrinfo" in reason:
            return "cannot connect (host name not found)"
        if "IncompleteRead" in reason or "RemoteDisconnected" in reason or "Connection aborted" in reason \
                or "reset" in reason.lower():
            return "connection dropped before the answer was complete"
        return "cannot connect (" + one_line(reason)[:120] + ")"
    return one_line(f"{type(exc).__name__}: {exc}")
