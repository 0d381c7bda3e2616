"""Topics: a name plus the API search parameters that define which studies belong to it, or a list of NCT
ids to follow (a watchlist). No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

from .defaults import DEFAULT_TOPIC_NAME
from .errors import UsageError
from .ids import is_nct_id

MAX_WATCHLIST = 10_000

# Command-line option name -> API parameter, in the order they are shown and sent.
SEARCH_PARAMETERS: dict[str, str] = {
    "cond": "query.cond",
    "intr": "query.intr",
    "term": "query.term",
    "titles": "query.titles",
    "spons": "query.spons",
    "locn": "query.locn",
    "status": "filter.overallStatus",
    "advanced": "filter.advanced",
    "geo": "filter.geo",
    "ids": "filter.ids",
}

_TOPIC_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_GEO = re.compile(r"distance\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*(mi|km)\s*\)")


@dataclass(frozen=True)
class Topic:
    """A named search: ``params`` maps API parameter names (``query.cond``...) to their values."""

    name: str
    params: dict[str, str] = field(default_factory=dict)

    def search_params(self) -> dict[str, str]:
        """The API parameters in their canonical order, empty values left out."""
        return {api: self.params[api] for api in SEARCH_PARAMETERS.values() if self.params.get(api)}

    def watched_ids(self) -> list[str]:
        """The NCT ids a watchlist follows (empty for a topic defined by a search)."""
        return [i for i in (self.params.get("filter.ids") or "").split(",") if i]


BUILTIN_TOPICS: dict[str, Topic] = {
    DEFAULT_TOPIC_NAME: Topic(
        DEFAULT_TOPIC_NAME,
        {
            "query.cond": '"back pain" OR "degenerative disc disease" OR "intervertebral disc degeneration"'
            ' OR "disc herniation" OR "spinal cord injury" OR "spinal stenosis"',
            "query.intr": '"stem cell" OR mesenchymal OR "progenitor cell" OR "bone marrow concentrate"'
            ' OR "bone marrow aspirate" OR "adipose derived" OR "stromal vascular fraction"',
        },
    )
}


def validate_topic_name(name: str) -> str:
    """Return ``name`` if it is a usable topic name (lowercase letters, digits, ``-_.``), else raise UsageError."""
    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name):
        raise UsageError(
            f"invalid topic name {name!r}: use 1-64 lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name


def read_ids(text: str) -> list[str]:
    """NCT ids separated by commas, spaces or new lines (any case), each checked; UsageError names a bad one."""
    ids = []
    for word in re.split(r"[\s,;|]+", text or ""):
        if not word:
            continue
        nct_id = word.upper()
        if not is_nct_id(nct_id):
            raise UsageError(f"--ids: {word!r} is not an NCT id (NCT followed by 8 digits)")
        ids.append(nct_id)
    return list(dict.fromkeys(ids))


def check_geo(value: str) -> str:
    """``value`` if it is a ``distance(lat,lon,Nmi|km)`` the API takes, else UsageError."""
    match = _GEO.fullmatch(value.strip())
    if not match:
        raise UsageError(f"--geo takes distance(LAT,LON,DISTANCE) with the distance in mi or km, "
                         f"e.g. distance(39.0035707,-77.1013313,50mi); not {value!r}")
    lat, lon, distance = float(match.group(1)), float(match.group(2)), float(match.group(3))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or distance <= 0:
        raise UsageError(f"--geo: {value!r} needs a latitude between -90 and 90, a longitude between -180 and 180 "
                         "and a distance above 0")
    return value.strip()


def make_topic(name: str, options: dict[str, str | None]) -> Topic:
    """Build a Topic from command-line option values (keys of SEARCH_PARAMETERS); at least one is required.

    Statuses are read as the API or the website writes them ("recruiting" -> RECRUITING; a misspelt one is
    refused with the nearest match); ``geo`` must be a ``distance(...)``; ``ids`` makes a watchlist.
    """
    from .vocab import read_many, read_status

    validate_topic_name(name)
    unknown = set(options) - set(SEARCH_PARAMETERS)
    if unknown:
        raise UsageError(f"unknown search option(s): {', '.join(sorted(unknown))}")
    params = {SEARCH_PARAMETERS[opt]: value.strip() for opt, value in options.items() if value and value.strip()}
    if not params:
        raise UsageError("a topic needs at least one search option, e.g. --condition 'spinal cord injury', or --ids")
    if "filter.overallStatus" in params:
        params["filter.overallStatus"] = ",".join(read_many(params["filter.overallStatus"], read_status))
    if "filter.geo" in params:
        params["filter.geo"] = check_geo(params["filter.geo"])
    if "filter.ids" in params:
        ids = read_ids(params["filter.ids"])
        if not ids:
            raise UsageError("--ids needs at least one NCT id")
        if len(ids) > MAX_WATCHLIST:
            raise UsageError(f"a watchlist follows at most {MAX_WATCHLIST} studies, not {len(ids)}")
        params["filter.ids"] = ",".join(sorted(ids))
    return Topic(name, params)


def website_search_url(topic: Topic) -> str:
    """The ClinicalTrials.gov website's search for the same query, to open in a browser. Filters the
    website has no parameter for are written into its search terms as Essie ``AREA[...]`` expressions;
    a ``filter.geo`` distance is left out."""
    params = topic.search_params()
    query: dict[str, str] = {}
    for api, website in (("query.cond", "cond"), ("query.intr", "intr"), ("query.titles", "titles"),
                         ("query.spons", "spons"), ("query.locn", "locn")):
        if params.get(api):
            query[website] = params[api]
    terms = [params["query.term"]] if params.get("query.term") else []
    if params.get("filter.overallStatus"):
        terms.append(f"AREA[OverallStatus]({' OR '.join(params['filter.overallStatus'].split(','))})")
    if params.get("filter.ids"):
        terms.append(f"AREA[NCTId]({' OR '.join(params['filter.ids'].split(','))})")
    if params.get("filter.advanced"):
        terms.append(params["filter.advanced"])
    if terms:
        query["term"] = " AND ".join(f"({t})" for t in terms) if len(terms) > 1 else terms[0]
    return "https://clinicaltrials.gov/search" + (f"?{urlencode(query)}" if query else "")
