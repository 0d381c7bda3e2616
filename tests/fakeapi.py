"""A stand-in for the ClinicalTrials.gov API v2 on loopback, for tests and benchmarks.

It serves a corpus of real study records (from ``tests/fixtures/studies``), or N clones of them with
NCT ids in the reserved range NCT90000000-NCT99999999, which no real study has. It speaks the API's
paging (``pageSize``, opaque ``nextPageToken`` bound to the other parameters, ``countTotal`` on the first
page), ``fields=NCTId``, ``filter.overallStatus``, ``filter.ids``, the
``AREA[LastUpdatePostDate]RANGE[from,to]`` filter, ``/studies/{id}`` and ``/version``. Other search
parameters are accepted and ignored: the corpus is the topic.

Each study is serialised once; a page is a join of those bytes, so the server is not what a benchmark
measures. It can answer gzip, add a delay per page, and inject faults into the next requests
(429 with Retry-After, 500, a truncated body, an HTML page served as 200, a dropped connection).

Run it alone: ``python tests/fakeapi.py --studies 10000 --port 8765``.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import http.server
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import orjson

FIXTURES = Path(__file__).parent / "fixtures" / "studies"
CLONE_BASE = 90_000_000
_RANGE = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[([^,\]]*),\s*([^\]]*)\]")


def load_fixture_records(directory: Path = FIXTURES) -> list[dict]:
    """The real study records in ``directory``, by file name."""
    return [orjson.loads(path.read_bytes()) for path in sorted(directory.glob("NCT*.json"))]


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

    def put(self, record: dict) -> None:
        """Serve ``record`` (added at the end, or replacing the study with its NCT id in place)."""
        nct_id = record["protocolSection"]["identificationModule"]["nctId"]
        with self.lock:
            if nct_id not in self.body:
                self.order.append(nct_id)
            self.body[nct_id] = orjson.dumps(record)
            self.status[nct_id], self.updated[nct_id] = self._index_fields(record)

    def get(self, nct_id: str) -> dict:
        """The record currently served for ``nct_id``."""
        return orjson.loads(self.body[nct_id])

    def remove(self, nct_id: str) -> None:
        """Stop serving ``nct_id``."""
        with self.lock:
            self.order.remove(nct_id)
            for table in (self.body, self.status, self.updated):
                del table[nct_id]

    def select(self, params: dict[str, str]) -> list[str]:
        """The NCT ids, in serving order, that ``params``' filters keep (call with the lock held)."""
        ids = self.order
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


class FakeApi:
    """The server. Use as a context manager; ``url`` is the API base URL to give trialsync."""

    def __init__(self, corpus: Corpus, data_timestamp: str = "2026-11-24T09:00:05", page_delay: float = 0.0,
                 gzip_answers: bool = False, port: int = 0):
        self.corpus = corpus
        self.data_timestamp = data_timestamp
        self.page_delay = page_delay
        self.gzip_answers = gzip_answers
        self.faults: list[str] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.request_times: list[float] = []
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

    def take_fault(self) -> str | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def record(self, path: str, params: dict[str, str]) -> None:
        if path.startswith("/_control/"):
            return
        with self.lock:
            self.requests.append((path, params))
            self.request_times.append(time.time())

    # -- answers ------------------------------------------------------------------------------------

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, str, bytes]:
        """Status, content type and body for one GET."""
        if path.startswith("/_control/"):
            return self.control(path.rsplit("/", 1)[1], params)
        if path.endswith("/version"):
            return 200, "application/json", orjson.dumps({"apiVersion": "2.0.5", "dataTimestamp": self.data_timestamp})
        if path.endswith("/studies"):
            return self.studies_page(params)
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
        studies (spread over the corpus) to status S and last update D; /_control/timestamp?value=T sets
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
        if action == "timestamp":
            self.data_timestamp = params["value"]
            return 200, "application/json", b"{}"
        if action == "requests":
            with self.lock:
                return 200, "application/json", orjson.dumps(self.request_times)
        return 404, "text/plain", b"unknown control"

    def studies_page(self, params: dict[str, str]) -> tuple[int, str, bytes]:
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
            if params.get("fields", "").lower() == "nctid":
                bodies = [b'{"protocolSection":{"identificationModule":{"nctId":"%s"}}}' % i.encode() for i in chosen]
            else:
                bodies = [self.corpus.body[i] for i in chosen]
        parts = [b'{"studies":[', b",".join(bodies), b"]"]
        if len(chosen) == size:  # like the real service: a full page always gets a token, even at the end
            next_token = base64.urlsafe_b64encode(f"{offset + size}:{signature}".encode()).decode()
            parts.append(b',"nextPageToken":"%s"' % next_token.encode())
        if not token and params.get("countTotal") == "true":
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

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            api.record(parts.path, dict(params))
            fault = None if parts.path.startswith("/_control/") else api.take_fault()
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault == "429":
                return self.send(429, "text/plain", b"Too Many Requests", {"Retry-After": "1"})
            if fault == "500":
                return self.send(500, "text/plain", b"Internal Server Error")
            if fault == "html":
                return self.send(200, "text/html", b"<html><body><h1>Service maintenance</h1></body></html>")
            status, content_type, body = api.answer(parts.path, params)
            if fault == "truncate":
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            self.send(status, content_type, body)

        def send(self, status: int, content_type: str, body: bytes, headers: dict | None = None) -> None:
            if api.gzip_answers and "gzip" in self.headers.get("Accept-Encoding", ""):
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
