"""A stand-in for the ClinicalTrials.gov API v2 on loopback, for tests and benchmarks.

It serves a corpus of real study records (from ``tests/fixtures/studies``), or N clones of them with
NCT ids in the reserved range NCT90000000-NCT99999999, which no real study has. It speaks the API's
paging (``pageSize``, opaque ``nextPageToken`` bound to the other parameters, ``countTotal`` on the first
page), ``fields=NCTId``, ``filter.overallStatus``, ``filter.ids``, the
``AREA[LastUpdatePostDate]RANGE[from,to]`` filter, ``/studies/{id}``, ``/version`` (``apiVersion``: the
``api_version`` given) and ``/studies/metadata`` (the data model given as ``metadata``; by default the one
recorded in ``tests/fixtures/spec``). Other search parameters are accepted and ignored: the corpus is the topic.

Each study is serialised once; a page is a join of those bytes, so the server is not what a benchmark
measures. It can answer gzip, add a delay per page, and inject faults: into the next requests in order
(``fail_next``), or into requests of one kind (``inject``: the version, the data model, a study, the first, a
middle or the last page of a search, an incremental page, an id listing page, a page of the registry's changed
list (a listing without a topic), a ``filter.ids`` batch). Studies put ``in_topic=False`` are served only to a
search of the whole registry. The request
log (``requests``, with ``kinds`` and ``faults`` beside it) lets a test assert which request was hit and
that it was sent again; ``targets`` beside it holds each request's path and query exactly as sent.

Like the real service's front end, it refuses a request whose target (path and query) is longer than
``max_target`` (8 KB) with HTTP 414, and logs it as a request of kind ``too-long``.

Run it alone: ``python tests/fakeapi.py --studies 10000 --port 8765``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import http.server
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import orjson

FIXTURES = Path(__file__).parent / "fixtures" / "studies"
DATA_MODEL = Path(__file__).parent / "fixtures" / "spec" / "studies_metadata.json"
CLONE_BASE = 90_000_000
MAX_TARGET = 8192  # the longest request target (path and query) answered; longer ones get HTTP 414
_RANGE = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[([^,\]]*),\s*([^\]]*)\]")


def load_fixture_records(directory: Path = FIXTURES) -> list[dict]:
    """The real study records in ``directory``, by file name."""
    return [orjson.loads(path.read_bytes()) for path in sorted(directory.glob("NCT*.json"))]


def recorded_data_model() -> list[dict]:
    """The data model the API answered at ``/studies/metadata`` (recorded by AACT), as parsed JSON."""
    return orjson.loads(DATA_MODEL.read_bytes())


def clone_id(index: int) -> str:
    """The NCT id of clone number ``index`` (reserved range, never a real study)."""
    return f"NCT{CLONE_BASE + index:08d}"


class Corpus:
    """The studies served, each kept as serialised bytes plus the fields the filters need."""

    def __init__(self, records: Sequence[dict] = (), clones: int = 0, base: Sequence[dict] | None = None):
        self.lock = threading.Lock()
        self.order: list[str] = []
        self.body: dict[str, bytes] = {}
        self.status: dict[str, str | None] = {}
        self.updated: dict[str, str] = {}
        # Studies of the registry that the topic's search does not select: served only to a search without a
        # topic (the registry's list of changed studies), never to the topic's own requests.
        self.outside: set[str] = set()
        for record in records:
            self.put(record)
        if clones:
            self._add_clones(list(base or load_fixture_records()), clones)

    def _add_clones(self, base: list[dict], count: int) -> None:
        templates = []
        for record in base:
            real_id = record["protocolSection"]["identificationModule"]["nctId"]
            templates.append((orjson.dumps(record), f'"nctId":"{real_id}"'.encode(), *self._index_fields(record)))
        for index in range(count):
            body, marker, status, updated = templates[index % len(templates)]
            nct_id = clone_id(index)
            self.order.append(nct_id)
            self.body[nct_id] = body.replace(marker, f'"nctId":"{nct_id}"'.encode(), 1)
            self.status[nct_id] = status
            self.updated[nct_id] = updated

    @staticmethod
    def _index_fields(record: dict) -> tuple[str | None, str]:
        status = record["protocolSection"].get("statusModule", {})
        return status.get("overallStatus"), status.get("lastUpdatePostDateStruct", {}).get("date", "")

    def put(self, record: dict, in_topic: bool = True) -> None:
        """Serve ``record`` (added at the end, or replacing the study with its NCT id in place); ``in_topic``
        False: as a study of the registry that the topic's search does not select."""
        nct_id = record["protocolSection"]["identificationModule"]["nctId"]
        with self.lock:
            if nct_id not in self.body:
                self.order.append(nct_id)
            self.body[nct_id] = orjson.dumps(record)
            self.status[nct_id], self.updated[nct_id] = self._index_fields(record)
            (self.outside.discard if in_topic else self.outside.add)(nct_id)

    def get(self, nct_id: str) -> dict:
        """The record currently served for ``nct_id``."""
        return orjson.loads(self.body[nct_id])

    def remove(self, nct_id: str) -> None:
        """Stop serving ``nct_id``."""
        with self.lock:
            self.order.remove(nct_id)
            for table in (self.body, self.status, self.updated):
                del table[nct_id]
            self.outside.discard(nct_id)

    def select(self, params: dict[str, str]) -> list[str]:
        """The NCT ids, in serving order, that ``params``' filters keep (call with the lock held): the studies
        outside the topic only for a search of the whole registry (``registry_wide``) or by id."""
        ids = self.order if registry_wide(params) or params.get("filter.ids") or not self.outside else [
            i for i in self.order if i not in self.outside]
        if params.get("filter.ids"):
            wanted = set(re.split(r"[,|\s]+", params["filter.ids"].strip()))
            ids = [i for i in ids if i in wanted]
        if params.get("filter.overallStatus"):
            wanted = set(re.split(r"[,|]", params["filter.overallStatus"].upper()))
            ids = [i for i in ids if self.status[i] in wanted]
        match = _RANGE.search(params.get("filter.advanced", ""))
        if match:
            low, high = (value.strip() for value in match.groups())
            low = "" if low.upper() == "MIN" else low
            high = "9999" if high.upper() == "MAX" else high
            ids = [i for i in ids if self.updated[i] and low <= self.updated[i] <= high]
        return ids


def registry_wide(params: dict[str, str]) -> bool:
    """Whether a search asks for the whole registry: no query, no filter but a last-update date range."""
    if params.get("filter.ids") or any(key.startswith(("query.", "postFilter.")) for key in params):
        return False
    if any(params.get(key) for key in ("filter.overallStatus", "filter.geo")):
        return False
    advanced = params.get("filter.advanced", "")
    return not advanced or _RANGE.fullmatch(advanced.strip()) is not None


class FakeApi:
    """The server. Use as a context manager; ``url`` is the API base URL to give trialsync."""

    def __init__(self, corpus: Corpus, data_timestamp: str = "2026-11-24T09:00:05", page_delay: float = 0.0,
                 gzip_answers: bool = False, port: int = 0, api_version: str = "2.0.5",
                 metadata: list | None = None):
        self.corpus = corpus
        self.data_timestamp = data_timestamp
        self.api_version = api_version
        self.metadata = recorded_data_model() if metadata is None else metadata  # a test may change it
        self.page_delay = page_delay
        self.gzip_answers = gzip_answers
        self.faults: list[str] = []
        self.rules: list[dict] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.kinds: list[str] = []  # beside ``requests``: what each request was
        self.injected: list[str | None] = []  # beside ``requests``: the fault it was answered with
        self.targets: list[str] = []  # beside ``requests``: the path and query exactly as sent
        self.request_times: list[float] = []
        self.max_target = MAX_TARGET
        self.lock = threading.Lock()
        self.server = _QuietServer(("127.0.0.1", port), _handler_for(self))
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v2"

    def start(self) -> "FakeApi":
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "FakeApi":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, *faults: str) -> None:
        """Answer the next requests with these faults, in order: 429, 500, truncate, html, drop (ok: no fault)."""
        with self.lock:
            self.faults.extend(faults)

    def inject(self, kind: str, fault: str, times: int = 1, after: int = 0, seconds: float = 3.0,
               retry_after: int = 1, size: int = 3 * 1024 * 1024) -> None:
        """Answer requests of ``kind`` (see ``request_kind``; "page" matches any page of a search, "any" every
        request) with ``fault``, ``times`` times, after letting ``after`` of them through. Faults: 429 (with
        Retry-After: 1), 429-bare (without), 500, 503, reset (connection reset, no answer), drop (closed, no
        answer), cut (half the body, then closed: shorter than its Content-Length), truncate (a whole answer
        of half the JSON), html (a maintenance page as 200), bad-gzip (gzip that does not decompress),
        empty (an empty page without a token), no-token (the page without its nextPageToken), no-count (the
        page without the totalCount asked for), hang (no answer
        for ``seconds``, then the right one), trickle (the right answer, one byte every ``seconds``/100).
        ``retry_after``: the Retry-After a 429 carries. flood (the right answer padded with whitespace to ``size``
        bytes, with its Content-Length) and flood-stream (the same without a length, sent in 64 kB pieces until
        the client hangs up or ``size`` is sent, then closed): a body too large to read."""
        with self.lock:
            self.rules.append({"kind": kind, "fault": fault, "times": times, "after": after, "seconds": seconds,
                               "retry_after": retry_after, "size": size})

    def clear_faults(self) -> None:
        """Drop every fault not yet served."""
        with self.lock:
            self.rules.clear()
            self.faults.clear()

    def take_fault(self, kind: str) -> dict | None:
        with self.lock:
            if self.faults:
                return {"fault": self.faults.pop(0), "seconds": 3.0, "retry_after": 1, "size": 3 * 1024 * 1024}
            for rule in self.rules:
                if rule["times"] <= 0 or not (rule["kind"] in (kind, "any") or
                                              rule["kind"] == "page" and kind.startswith("page:") or
                                              rule["kind"] == "page:first" and kind == "page:only" or
                                              rule["kind"] == "page:last" and kind == "page:only"):
                    continue
                if rule["after"] > 0:
                    rule["after"] -= 1
                    continue
                rule["times"] -= 1
                return rule
        return None

    def record(self, path: str, params: dict[str, str], kind: str, fault: str | None, target: str = "") -> None:
        if path.startswith("/_control/"):
            return
        with self.lock:
            self.requests.append((path, params))
            self.kinds.append(kind)
            self.injected.append(fault)
            self.targets.append(target)
            self.request_times.append(time.time())

    def reset_log(self) -> None:
        """Forget the requests logged so far."""
        with self.lock:
            self.requests.clear()
            self.kinds.clear()
            self.injected.clear()
            self.targets.clear()
            self.request_times.clear()

    # -- answers ------------------------------------------------------------------------------------

    def answer(self, path: str, params: dict[str, str], fault: str | None = None) -> tuple[int, str, bytes]:
        """Status, content type and body for one GET (``fault``: empty, no-token or no-count, for a page)."""
        if path.startswith("/_control/"):
            return self.control(path.rsplit("/", 1)[1], params)
        if path.endswith("/version"):
            return 200, "application/json", orjson.dumps({"apiVersion": self.api_version,
                                                          "dataTimestamp": self.data_timestamp})
        if path.endswith("/studies/metadata"):
            return 200, "application/json", orjson.dumps(self.metadata)
        if path.endswith("/studies"):
            return self.studies_page(params, fault)
        match = re.search(r"/studies/([^/]+)$", path)
        if match:
            with self.corpus.lock:
                body = self.corpus.body.get(match.group(1).upper())
            if body is None:
                return 404, "text/plain", f"NCT number {match.group(1)} not found".encode()
            return 200, "application/json", body
        return 404, "text/plain", b"Not found"

    def control(self, action: str, params: dict[str, str]) -> tuple[int, str, bytes]:
        """What a benchmark in another process changes: /_control/change?count=N&status=S&date=D moves N
        studies (spread over the corpus) to status S and last update D; /_control/leave?count=N&date=D edits N
        others (last update D) so that the topic's search no longer selects them (a search of the whole registry
        still does); /_control/timestamp?value=T sets
        dataTimestamp; /_control/requests lists the start time of every request so far."""
        if action == "change":
            count, status, day = int(params["count"]), params["status"], params["date"]
            with self.corpus.lock:
                ids = self.corpus.order[:: max(1, len(self.corpus.order) // count)][:count]
            for nct_id in ids:
                record = self.corpus.get(nct_id)
                record["protocolSection"]["statusModule"]["overallStatus"] = status
                record["protocolSection"]["statusModule"].setdefault("lastUpdatePostDateStruct", {})["date"] = day
                self.corpus.put(record)
            return 200, "application/json", orjson.dumps(ids)
        if action == "leave":
            count, day = int(params["count"]), params["date"]
            with self.corpus.lock:
                ids = [i for i in self.corpus.order if i not in self.corpus.outside][1:: max(1, len(self.corpus.order)
                                                                                           // count)][:count]
            for nct_id in ids:
                record = self.corpus.get(nct_id)
                record["protocolSection"]["statusModule"].setdefault("lastUpdatePostDateStruct", {})["date"] = day
                self.corpus.put(record, in_topic=False)
            return 200, "application/json", orjson.dumps(ids)
        if action == "timestamp":
            self.data_timestamp = params["value"]
            return 200, "application/json", b"{}"
        if action == "requests":
            with self.lock:
                return 200, "application/json", orjson.dumps(self.request_times)
        return 404, "text/plain", b"unknown control"

    def _listed(self, nct_id: str, with_status: bool) -> bytes:
        ident = b'"identificationModule":{"nctId":"%s"}' % nct_id.encode()
        status = self.corpus.status[nct_id]
        if with_status and status is not None:
            return b'{"protocolSection":{%s,"statusModule":{"overallStatus":"%s"}}}' % (ident, status.encode())
        return b'{"protocolSection":{%s}}' % ident

    def request_kind(self, path: str, params: dict[str, str]) -> str:
        """What a request is, for fault injection and the request log: version, metadata, study, ids, listing,
        registry, incremental, or page:first / page:middle / page:last of a search (page:only when it is all
        three)."""
        if path.endswith("/version"):
            return "version"
        if path.endswith("/studies/metadata"):
            return "metadata"
        if not path.endswith("/studies"):
            return "study" if "/studies/" in path else "other"
        if params.get("filter.ids"):
            return "ids"
        if params.get("fields"):
            return "registry" if registry_wide(params) else "listing"
        if _RANGE.search(params.get("filter.advanced", "")):
            return "incremental"
        offset, size = self._offset(params.get("pageToken")), min(int(params.get("pageSize") or 10) or 10, 1000)
        with self.corpus.lock:
            total = len(self.corpus.select(params))
        first, last = offset == 0, offset + size >= total
        return "page:only" if first and last else "page:first" if first else "page:last" if last else "page:middle"

    @staticmethod
    def _offset(token: str | None) -> int:
        if not token:
            return 0
        try:
            return int(base64.urlsafe_b64decode(token.encode()).decode().split(":")[0])
        except ValueError:
            return 0

    def studies_page(self, params: dict[str, str], fault: str | None = None) -> tuple[int, str, bytes]:
        token = params.pop("pageToken", None)
        # The token is bound to every other parameter except countTotal, which only the first page carries.
        bound = sorted((k, v) for k, v in params.items() if k != "countTotal")
        signature = hashlib.sha1(orjson.dumps(bound)).hexdigest()[:12]
        offset = 0
        if token:
            try:
                offset_text, token_signature = base64.urlsafe_b64decode(token.encode()).decode().split(":")
                offset = int(offset_text)
            except ValueError:
                return 400, "text/plain", b"Invalid value in parameter `pageToken`"
            if token_signature != signature:
                return 400, "text/plain", b"pageToken does not match the other parameters of the first request"
        size = int(params.get("pageSize") or 10) or 10
        size = min(size, 1000)
        with self.corpus.lock:
            ids = self.corpus.select(params)
            chosen = ids[offset:offset + size]
            fields = {f.strip().lower() for f in re.split(r"[,|]", params.get("fields", "")) if f.strip()}
            if fields and fields <= {"nctid", "overallstatus"}:
                bodies = [self._listed(i, "overallstatus" in fields) for i in chosen]
            elif fields:
                return 400, "text/plain", b"this stand-in projects only NCTId and OverallStatus"
            else:
                bodies = [self.corpus.body[i] for i in chosen]
        if fault == "empty":  # an empty page that claims to be the last
            bodies, chosen = [], []
        parts = [b'{"studies":[', b",".join(bodies), b"]"]
        if len(chosen) == size and fault != "no-token":  # like the real service: a full page gets a token, even at the end
            next_token = base64.urlsafe_b64encode(f"{offset + size}:{signature}".encode()).decode()
            parts.append(b',"nextPageToken":"%s"' % next_token.encode())
        if not token and params.get("countTotal") == "true" and fault != "no-count":
            parts.append(b',"totalCount":%d' % len(ids))
        parts.append(b"}")
        if self.page_delay:
            time.sleep(self.page_delay)
        return 200, "application/json", b"".join(parts)


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that hangs up mid-answer (a killed pull, a timeout) is expected here, not news.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _handler_for(api: FakeApi):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # small answers go out at once, not 40 ms later (delayed ACK on loopback)

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            if parts.path.startswith("/_control/"):
                return self.send(*api.answer(parts.path, params))
            if len(self.path) > api.max_target:  # as the real front end does, before the API sees it
                api.record(parts.path, dict(params), "too-long", "414", self.path)
                return self.send(414, "text/html", b"<html><body><h1>414 Request-URI Too Large</h1></body></html>")
            kind = api.request_kind(parts.path, params)
            rule = api.take_fault(kind)
            fault = rule["fault"] if rule else None
            api.record(parts.path, dict(params), kind, fault, self.path)
            if fault == "hang":
                time.sleep(rule["seconds"])
            if fault in ("drop", "reset"):
                if fault == "reset":  # RST instead of FIN: the client sees "connection reset by peer"
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
                return
            if fault in ("429", "429-bare"):
                headers = {"Retry-After": str(rule["retry_after"])} if fault == "429" else {}
                return self.send(429, "text/plain", b"Too Many Requests", headers)
            if fault in ("500", "503"):
                return self.send(int(fault), "text/plain", b"upstream error" if fault == "500" else b"Service Unavailable")
            if fault == "html":
                return self.send(200, "text/html", b"<html><body><h1>Service maintenance</h1></body></html>")
            status, content_type, body = api.answer(parts.path, params, fault)
            if fault in ("truncate", "cut"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                # truncate: a whole answer that is half the JSON; cut: half of an answer that claims it all
                self.send_header("Content-Length", str(len(body) // 2 if fault == "truncate" else len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            if fault == "trickle":
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                deadline = time.monotonic() + 30  # bounded: the stand-in never trickles for ever
                for index in range(len(body)):
                    try:
                        self.wfile.write(body[index:index + 1])
                        self.wfile.flush()
                    except OSError:
                        return
                    if time.monotonic() > deadline:
                        break
                    time.sleep(rule["seconds"] / 100)
                self.close_connection = True
                return
            if fault in ("flood", "flood-stream"):
                # Valid JSON all the way: whitespace after the answer, so that only its size is wrong.
                padding = max(rule["size"] - len(body), 0)
                if fault == "flood":
                    return self.send(status, content_type, body + b" " * padding, compress=False)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Connection", "close")  # no length: the body ends when the connection does
                self.end_headers()
                piece = b" " * 65536
                try:
                    self.wfile.write(body)
                    for start in range(0, padding, len(piece)):  # exactly ``size`` bytes in all
                        self.wfile.write(piece[:padding - start])
                    self.wfile.flush()
                except OSError:
                    pass  # the client hung up, as it should
                self.close_connection = True
                return
            if fault == "bad-gzip":
                return self.send(status, content_type, b"\x1f\x8b\x08\x00" + body[:200], {"Content-Encoding": "gzip"},
                                 compress=False)
            self.send(status, content_type, body)

        def send(self, status: int, content_type: str, body: bytes, headers: dict | None = None,
                 compress: bool = True) -> None:
            if compress and api.gzip_answers and "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body, compresslevel=1)
                headers = {**(headers or {}), "Content-Encoding": "gzip"}
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a stand-in ClinicalTrials.gov API v2 on loopback.")
    parser.add_argument("--studies", type=int, default=0, help="serve this many clones (default: the fixtures as they are)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--page-delay", type=float, default=0.0, help="seconds to wait before each page")
    parser.add_argument("--gzip", action="store_true", help="answer gzip when the client asks for it")
    args = parser.parse_args()
    corpus = Corpus(clones=args.studies) if args.studies else Corpus(load_fixture_records())
    api = FakeApi(corpus, page_delay=args.page_delay, gzip_answers=args.gzip, port=args.port)
    print(f"serving {len(corpus.order)} studies at {api.url}", flush=True)
    try:
        api.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
