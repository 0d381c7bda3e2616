"""The ClinicalTrials.gov API v2 client: paging, pacing and retries. Yields pages of each study's JSON
bytes as sent (and parsed dicts for the small endpoints); knows no database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
import requests
import urllib3
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from . import __version__
from .errors import ApiError
from .records import nct_id_of

DEFAULT_API_URL = "https://clinicaltrials.gov/api/v2"
DEFAULT_RATE = 50  # requests a minute: the service answers 429 past about 50 from one address
DEFAULT_PAGE_SIZE = 1000  # the API's maximum; larger values are quietly cut to it
DEFAULT_ATTEMPTS = 5
USER_AGENT = f"trialsync/{__version__} (ClinicalTrials.gov mirror; python-requests)"
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After would stall a nightly pull for no gain
ERROR_TEXT_LIMIT = 300


class TransientApiError(ApiError):
    """One attempt failed in a way worth retrying (429, 5xx, dropped connection, broken body)."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


@dataclass
class Page:
    """One `/studies` page: each study as the exact JSON bytes the API sent, not yet parsed."""

    raw_studies: list[bytes]
    next_token: str | None
    total_count: int | None
    body_bytes: int

    def studies(self) -> Iterator[dict]:
        """Parse the studies one at a time (a whole parsed page of full records is hundreds of MB)."""
        for raw in self.raw_studies:
            yield parse_study(raw)


def parse_study(raw: bytes) -> dict:
    """One study's JSON bytes, parsed; ApiError if the API sent something that does not parse."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(f"the API sent a damaged study record ({_one_line(raw[:60].decode('utf-8', 'replace'))!r}...)") from None


_STUDY_KEY = b'"protocolSection"'
_WHITESPACE = b" \t\r\n"


def split_page(body: bytes) -> tuple[dict, list[bytes]] | None:
    """Cut a `/studies` body into its envelope (token, total) and the exact bytes of each study.

    Studies are found by their leading ``{"protocolSection":`` key, which cannot occur inside a JSON
    string. The framing is checked: studies separated by commas, and the body minus the studies parses
    to an object whose ``studies`` is empty. Returns None whenever the body does not fit that shape,
    and the caller parses it whole instead.
    """
    starts = []
    at = body.find(_STUDY_KEY)
    while at != -1:
        brace = at - 1
        while brace >= 0 and body[brace] in _WHITESPACE:
            brace -= 1
        if brace < 0 or body[brace] != 0x7B:  # "{": the key does not open a study object
            return None
        starts.append(brace)
        at = body.find(_STUDY_KEY, at + len(_STUDY_KEY))
    if not starts:
        return None
    head = body[:starts[0]]
    end = len(body)
    for _ in range(8):  # the array's closing bracket is the first or one of the first from the end
        end = body.rfind(b"]", starts[-1], end)
        if end == -1:
            return None
        try:
            envelope = orjson.loads(head + body[end:])
        except orjson.JSONDecodeError:
            continue
        if isinstance(envelope, dict) and envelope.get("studies") == []:
            break
    else:
        return None
    raw_studies = []
    for start, following in zip(starts, starts[1:] + [None]):
        piece = body[start:following if following is not None else end].rstrip(_WHITESPACE)
        if following is not None:
            if not piece.endswith(b","):
                return None
            piece = piece[:-1].rstrip(_WHITESPACE)
        raw_studies.append(piece)
    return envelope, raw_studies


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


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + "..."


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)


def _in_background(fn: Callable, *args) -> Future:
    """Run ``fn`` on a daemon thread, so that an abandoned prefetch never delays exit."""
    future: Future = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True, name="trialsync-prefetch").start()
    return future


class ApiClient:
    """A paced, retrying client for the endpoints trialsync uses.

    ``requests_made`` counts every HTTP request sent, retries included.
    """

    def __init__(
        self,
        base_url: str | None = None,
        rate: float = DEFAULT_RATE,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: tuple[float, float] = (10.0, 120.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = (base_url or DEFAULT_API_URL).rstrip("/")
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self.requests_made = 0
        self._count_lock = threading.Lock()
        self._sleep = sleep
        self._backoff = wait_exponential(multiplier=backoff, min=backoff, max=max_backoff)
        self.pacer = RequestPacer(rate, sleep=sleep)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    # -- public endpoints -------------------------------------------------------------------

    def version(self) -> dict:
        """`GET /version`: ``{"apiVersion": ..., "dataTimestamp": ...}``."""
        data = self.get_json("/version", {})
        if not isinstance(data, dict):
            raise ApiError(f"GET {self.url_for('/version', {})}: answer is not a JSON object")
        return data

    def study(self, nct_id: str) -> dict:
        """`GET /studies/{nctId}`: one full study record."""
        return self.get_json(f"/studies/{nct_id}", {})

    def iter_pages(self, params: Mapping[str, str], page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Page]:
        """Yield every page of `GET /studies` for ``params``, following ``nextPageToken`` to the end.

        The first request carries ``countTotal=true``; every later one repeats ``params`` exactly plus
        ``pageToken``. An empty page with a token is not the end. The same token twice raises ApiError.
        While the caller works on one page, the next one is already being downloaded.
        """
        base = {**params, "pageSize": str(page_size)}
        request_params: dict[str, str] = {**base, "countTotal": "true"}
        pending = self._start_fetch("/studies", request_params)
        seen_tokens: set[str] = set()
        while True:
            page = self._page("/studies", request_params, pending)
            pending = None
            token = page.next_token
            if token:
                if token in seen_tokens:
                    raise ApiError(
                        f"GET {self.url_for('/studies', request_params)}: the API sent the same "
                        f"nextPageToken twice ({token[:40]}); stopping instead of looping"
                    )
                seen_tokens.add(token)
                request_params = {**base, "pageToken": token}
                pending = self._start_fetch("/studies", request_params)
            yield page
            del page  # let the caller's page go before the next one is parsed
            if not token:
                return

    def iter_ids(self, params: Mapping[str, str]) -> Iterator[list[str]]:
        """Yield the NCT ids of every study ``params`` selects, one page (up to 1000) at a time."""
        for page in self.iter_pages({**params, "fields": "NCTId"}, page_size=DEFAULT_PAGE_SIZE):
            yield [nct_id_of(study) for study in page.studies()]

    def url_for(self, path: str, params: Mapping[str, str]) -> str:
        """The full URL a request for ``path`` with ``params`` goes to (openable in a browser)."""
        query = urlencode(list(params.items()))
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def get_json(self, path: str, params: Mapping[str, str]):
        """GET ``path`` and return the parsed JSON, retrying transient failures."""
        return self._with_retries(lambda body: self._parse(path, params, body), path, params, None)

    # -- internals ----------------------------------------------------------------------------

    def _start_fetch(self, path: str, params: Mapping[str, str]) -> Future:
        return _in_background(self._fetch_once, path, dict(params))

    def _page(self, path: str, params: Mapping[str, str], pending: Future | None) -> Page:
        def parse_page(body: bytes) -> Page:
            split = split_page(body)
            if split is not None:
                data, raw_studies = split
            else:  # not the usual compact shape: parse it whole, then give each study its own bytes
                data = self._parse(path, params, body)
                studies = data.get("studies") if isinstance(data, dict) else None
                if not isinstance(studies, list):
                    raise TransientApiError(
                        f"GET {self.url_for(path, params)}: HTTP 200: answer has no 'studies' list"
                    )
                raw_studies = [orjson.dumps(study) for study in studies]
            token = data.get("nextPageToken") or None
            total = data.get("totalCount")
            return Page(raw_studies, token, total if isinstance(total, int) else None, len(body))

        return self._with_retries(parse_page, path, params, pending)

    def _with_retries(self, use_body: Callable[[bytes], object], path: str,
                      params: Mapping[str, str], pending: Future | None):
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._wait_before_retry,
            retry=retry_if_exception_type(TransientApiError),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if pending is not None:
                        body, pending = pending.result(), None
                    else:
                        body = self._fetch_once(path, params)
                    return use_body(body)
        except TransientApiError as exc:
            tries = "1 try" if self.attempts == 1 else f"{self.attempts} tries"
            raise ApiError(f"{exc} (gave up after {tries})", exc.status) from None

    def _wait_before_retry(self, retry_state) -> float:
        backoff = self._backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        return max(backoff, retry_after) if retry_after is not None else backoff

    def _fetch_once(self, path: str, params: Mapping[str, str]) -> bytes:
        """One HTTP request; returns the body of a 2xx answer or raises ApiError/TransientApiError."""
        url = f"{self.base_url}{path}"
        self.pacer.wait_turn()
        with self._count_lock:
            self.requests_made += 1
        try:
            response = self.session.get(url, params=params, timeout=self.timeout, stream=True)
        except requests.exceptions.InvalidURL as exc:
            raise ApiError(f"invalid API URL {url}: {exc}") from None
        except requests.exceptions.MissingSchema:
            raise ApiError(f"invalid API URL {url}: it must start with http:// or https://") from None
        except requests.RequestException as exc:
            raise TransientApiError(f"GET {self.url_for(path, params)}: {_describe_network_error(exc)}") from None
        try:
            # One read of the whole body: requests' own loop of 10 kB chunks costs several times the CPU.
            body = response.raw.read(decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            response.close()
            raise TransientApiError(f"GET {response.url}: HTTP {response.status_code}: {_describe_read_error(exc)}") from None
        response.raw.release_conn()
        status = response.status_code
        text = _one_line(body.decode("utf-8", "replace")) if status >= 400 else ""
        if status == 429 or status >= 500:
            raise TransientApiError(
                f"GET {response.url}: HTTP {status}: {text or response.reason}",
                retry_after=_retry_after_seconds(response.headers.get("Retry-After")), status=status,
            )
        if status >= 400:
            raise ApiError(f"GET {response.url}: HTTP {status}: {text or response.reason}", status)
        return body

    def _parse(self, path: str, params: Mapping[str, str], body: bytes):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            start = _one_line(body[:60].decode("utf-8", "replace"))
            raise TransientApiError(
                f"GET {self.url_for(path, params)}: HTTP 200: answer is not valid JSON "
                f"({len(body)} bytes starting {start!r})"
            ) from None


def _describe_read_error(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "no answer before the read timeout"
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return "the compressed answer does not decompress"
    return "connection dropped while reading the answer (truncated body)"


def _describe_network_error(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no answer before the read timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped while reading the answer (truncated body)"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = str(exc.args[0]) if exc.args else str(exc)
        if "Connection refused" in reason:
            return "cannot connect (connection refused)"
        if "Name or service not known" in reason or "NameResolutionError" in reason or "getaddrinfo" in reason:
            return "cannot connect (host name not found)"
        if "IncompleteRead" in reason or "RemoteDisconnected" in reason or "Connection aborted" in reason:
            return "connection dropped before the answer was complete"
        return "cannot connect (" + _one_line(reason)[:120] + ")"
    return _one_line(f"{type(exc).__name__}: {exc}")
