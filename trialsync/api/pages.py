"""`GET /studies` pages: cutting a body into each study's exact bytes, following ``nextPageToken``, and
telling whether a listing is provably complete. Knows no database."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import orjson

from .. import jsontext
from ..defaults import DEFAULT_PAGE_SIZE
from ..errors import IncompleteListing
from ..ids import NctIdSet, nct_id_of
from ..vocab import plural
from .client import Answer, ApiClient, TransientApiError, short_url

MAX_EMPTY_PAGES = 3  # empty pages in a row, each with a new token: the API is looping, not paging
LISTING_FIELDS = "NCTId|OverallStatus"  # 1,000 studies a request, with the status to check counts against


@dataclass
class Page:
    """One `/studies` page: each study as the exact JSON bytes the API sent, not yet parsed."""

    raw_studies: list[bytes]
    next_token: str | None
    total_count: int | None

    def studies(self) -> Iterator[dict]:
        """Parse the studies one at a time (a whole parsed page of full records is hundreds of MB)."""
        for raw in self.raw_studies:
            yield parse_study(raw)


def parse_study(raw: bytes) -> dict:
    """One study's JSON bytes, parsed. A piece that does not parse means the page was damaged on the
    way, so the listing it belongs to cannot be trusted: IncompleteListing."""
    try:
        study = jsontext.loads(raw)  # a number past orjson's range is the transform's to judge, not damage
    except orjson.JSONDecodeError:
        start = raw[:60].decode("utf-8", "replace")
        raise IncompleteListing(f"the API sent a damaged study record ({' '.join(start.split())!r}...)") from None
    if not isinstance(study, dict):
        raise IncompleteListing("the API sent a page item that is not a JSON object")
    return study


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


def read_page(answer: Answer) -> Page:
    """The page an answer holds; TransientApiError when the body is not a `/studies` page."""
    split = split_page(answer.body)
    if split is not None:
        envelope, raw_studies = split
    else:  # not the usual compact shape: parse it whole, then give each study its own bytes
        envelope = ApiClient.json_object(answer)
        studies = envelope.get("studies")
        if not isinstance(studies, list):
            raise TransientApiError(f"GET {short_url(answer.url)}: HTTP {answer.status}: answer has no 'studies' list",
                                    "answer has no studies list")
        raw_studies = [orjson.dumps(study) for study in studies]
    token = envelope.get("nextPageToken")
    total = envelope.get("totalCount")
    if token is not None and not isinstance(token, str) or total is not None and (
            not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise TransientApiError(f"GET {short_url(answer.url)}: HTTP {answer.status}: the page's nextPageToken or totalCount "
                                "is not of the API's type", "malformed page")
    return Page(raw_studies, token or None, total)


def iter_pages(client: ApiClient, params: Mapping[str, str], page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Page]:
    """Yield every page of `GET /studies` for ``params``, following ``nextPageToken`` to the end.

    The first request carries ``countTotal=true``; every later one repeats ``params`` exactly plus
    ``pageToken``. An empty page with a token is not the end. A token seen twice, or empty pages without
    end, raise IncompleteListing. While the caller works on one page, the next is already on its way;
    each page is retried on its own, and a retry is always a new request.
    """
    base = {**params, "pageSize": str(page_size)}
    request_params: dict[str, str] = {**base, "countTotal": "true"}
    pending = client.start("/studies", request_params)
    seen_tokens: set[str] = set()
    empty_in_a_row = 0
    while True:
        page = client.send("/studies", request_params, read_page, first=pending)
        pending = None
        token = page.next_token
        empty_in_a_row = 0 if page.raw_studies else empty_in_a_row + 1
        if token:
            if token in seen_tokens:
                raise IncompleteListing(
                    f"GET {short_url(client.url_for('/studies', request_params))}: the API sent the same nextPageToken "
                    f"twice ({token[:40]}); stopping instead of looping")
            if empty_in_a_row >= MAX_EMPTY_PAGES:
                raise IncompleteListing(f"GET {short_url(client.url_for('/studies', request_params))}: {empty_in_a_row} "
                                        "empty pages in a row, each with a new nextPageToken")
            seen_tokens.add(token)
            request_params = {**base, "pageToken": token}
            pending = client.start("/studies", request_params)
        yield page
        del page  # let the caller's page go before the next one is parsed
        if not token:
            return


@dataclass
class ListingTally:
    """Counts what a listing delivered, to tell whether it is provably complete: the first page's
    ``totalCount`` arrived, the studies received equal it, and no id came twice."""

    what: str
    total: int | None = None
    received: int = 0
    pages: int = 0
    duplicates: list[str] = field(default_factory=list)
    ids: NctIdSet = field(default_factory=NctIdSet)  # flat memory for a listing of the whole registry

    def add(self, page: Page, nct_ids: Iterable[str]) -> None:
        """Count one page, whose studies have ``nct_ids``."""
        if self.pages == 0:
            self.total = page.total_count
        self.pages += 1
        for nct_id in nct_ids:
            if not self.ids.add(nct_id):
                self.duplicates.append(nct_id)
            self.received += 1

    def check(self) -> None:
        """Raise IncompleteListing unless the listing is provably complete."""
        if self.total is None:
            problem = "its first page carried no totalCount"
        elif self.duplicates:
            problem = f"{plural(len(self.duplicates), 'study', 'studies')} came twice ({', '.join(sorted(set(self.duplicates))[:3])})"
        elif self.received != self.total:
            problem = (f"it ended after {self.received} of the {plural(self.total, 'study', 'studies')} its first page "
                       "announced")
        else:
            return
        raise IncompleteListing(f"the API's answer for {self.what} is not complete: {problem}; "
                                "nothing was concluded from it")




def listed_study(raw: bytes) -> tuple[str, str | None]:
    """``(nct_id, overall_status)`` of one study of a ``fields=NCTId|OverallStatus`` listing."""
    study = parse_study(raw)
    nct_id = nct_id_of(study)
    if not nct_id:
        raise IncompleteListing("the API's id listing holds a study without an NCT id")
    status = (study["protocolSection"].get("statusModule") or {}).get("overallStatus")
    return nct_id, status if isinstance(status, str) else None
