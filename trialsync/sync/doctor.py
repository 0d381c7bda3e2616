"""``doctor``: is all well with the database and the API? Each check returns results the command line
prints, one line each with what to do. Read-only: nothing is created, migrated, locked or written."""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson

from ..api import ApiClient
from ..defaults import DEFAULT_RATE
from ..errors import ApiError, ApiUnreachable, TrialsyncError
from ..store import SCHEMA_VERSION
from ..store import drift as drift_log
from ..store import pulls as pull_log
from ..store.studies import search_index_set_aside
from ..store.db import describe_error, inspect_file, lock_holder, open_as_is
from ..topics import Topic
from ..transform.drift import UNKNOWN_FIELD, UNKNOWN_STATUS, VANISHED_FIELD
from ..vocab import plural

OK, WARN, FAIL = "ok", "warn", "fail"
STALE_DAYS = 2  # a topic pulled nightly that has not completed a pull for longer than this is behind
DISK_FACTOR = 2  # free space below this many times the database's size may not hold a full pull and its WAL
MEASURED_SECONDS = 30  # a pull shorter than this says little about its pace (times are kept to the second)
RECENT_PULLS = 10
API_LIMIT = DEFAULT_RATE  # requests a minute past which the API answers 429 (defaults.DEFAULT_RATE)


@dataclass(frozen=True)
class Check:
    """One result: what was checked, ``ok``, ``warn`` or ``fail``, what was found, and what to do about it."""

    name: str
    state: str
    message: str
    advice: str = ""


def all_well(checks: list[Check]) -> bool:
    """Whether every check is ``ok``."""
    return all(check.state == OK for check in checks)


def _utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _ago(when: datetime, now: datetime) -> str:
    seconds = max((now - when).total_seconds(), 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "less than a minute ago"


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def check_database(path: Path, now: datetime | None = None) -> list[Check]:
    """The database at ``path``: its file, schema, integrity, unfinished pulls, each topic's last pull, the
    write lock and the free disk space. Never raises for a database that is missing, foreign or damaged."""
    now = now or datetime.now(timezone.utc)
    try:
        state = inspect_file(path)
    except TrialsyncError as exc:
        return [Check("database", FAIL, str(exc))]
    if state.kind in ("missing", "empty"):
        return [Check("database", FAIL, f"no trialsync database at {path}",
                      "`trialsync pull` or `trialsync import FILE` makes one")]
    checks = [_schema(path, state)]
    if checks[0].state == FAIL:
        return checks
    try:
        conn = open_as_is(path)
    except TrialsyncError as exc:
        return [*checks, Check("integrity", FAIL, str(exc))]
    try:
        integrity = _integrity(conn, path)
        checks.append(integrity)
        if integrity.state == OK:
            lock, holder = _lock(path)
            checks.append(lock)
            if state.user_version == SCHEMA_VERSION:
                checks += _content(conn, path, holder, now)
    except sqlite3.Error as exc:
        checks.append(Check("integrity", FAIL, str(describe_error(exc, path)),
                            "restore a backup, or move the file aside and pull again"))
    finally:
        conn.close()
    checks.append(_disk(path))
    return checks


def _schema(path: Path, state) -> Check:
    version = state.user_version
    if state.kind != "ours":
        try:
            open_as_is(path)  # raises the one line that says why it is not used
        except TrialsyncError as exc:
            return Check("database", FAIL, str(exc))
    if version > SCHEMA_VERSION:
        return Check("schema", FAIL, f"version {version}, made by a newer trialsync (this one knows up to "
                     f"{SCHEMA_VERSION}); the file was left untouched", "upgrade trialsync")
    if version < SCHEMA_VERSION:
        return Check("schema", WARN, f"version {version}, older than this trialsync's {SCHEMA_VERSION}",
                     "the next `trialsync pull` upgrades it (doctor does not)")
    return Check("schema", OK, f"version {version}, {path}")


def _integrity(conn: sqlite3.Connection, path: Path) -> Check:
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if problems == ["ok"]:
        return Check("integrity", OK, "quick_check found no damage")
    return Check("integrity", FAIL, f"database {path} is damaged: {problems[0]}"
                 + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""),
                 "restore a backup, or move the file aside and pull again")


UNKNOWN = "unknown"


def _lock(path: Path) -> tuple[Check, int | None | str]:
    """The lock's check, and its holder for the other checks (``UNKNOWN``: this system does not say)."""
    try:
        holder = lock_holder(path)
    except OSError:
        return Check("lock", OK, "this system does not say who holds locks; not checked"), UNKNOWN
    if holder is None:
        return Check("lock", OK, "free (no pull or import under way)"), None
    if holder and not _pid_alive(holder):
        return (Check("lock", WARN, f"held by process {holder}, which this system does not see (another "
                      "machine or container?)", "make sure no second machine writes this database"), holder)
    return Check("lock", OK, f"held by process {holder or '(unknown)'}: a pull or import is under way"), holder


def _content(conn: sqlite3.Connection, path: Path, holder, now: datetime) -> list[Check]:
    checks = []
    unfinished, topics = [], set()
    for row in pull_log.unfinished_pulls(conn):
        started = row["started_at"].replace("T", " ")[:16]
        what = f"{row['kind']} #{row['id']} of {row['topic']} (started {started})"
        if row["outcome"] == "running":
            if (_pid_alive(row["pid"]) if holder == UNKNOWN else holder is not None and holder in (0, row["pid"])):
                continue  # under way
            unfinished.append(f"{what} never finished: its process is gone")
        else:
            unfinished.append(f"{what} was killed before it finished")
        topics.add(row["topic"])
    if unfinished:
        checks.append(Check("pulls", WARN, "; ".join(unfinished),
                            f"run `trialsync pull {' '.join(sorted(topics))}`, which records it and pulls again"))
    else:
        checks.append(Check("pulls", OK, "every pull and import finished"))
    stored = [(name, Topic(name, orjson.loads(params)).search_params(), finished)
              for name, params, finished in pull_log.last_complete_pulls(conn)]
    if not stored:
        checks.append(Check("topics", WARN, "no topic is stored", "`trialsync pull` follows the built-in one"))
    for name, search, finished in stored:
        if not search:
            checks.append(Check(f"topic {name}", OK, "holds imported studies only: there is nothing to pull"))
            continue
        if finished is None:
            checks.append(Check(f"topic {name}", WARN, "never pulled", f"run `trialsync pull {name}`"))
            continue
        when = _utc(finished)
        age = _ago(when, now)
        if (now - when).total_seconds() > STALE_DAYS * 86400:
            checks.append(Check(f"topic {name}", WARN, f"last pulled {age}", f"run `trialsync pull {name}`"))
        else:
            checks.append(Check(f"topic {name}", OK, f"last pulled {age}"))
    checks.append(check_pace(pull_log.recent_pulls(conn, RECENT_PULLS)))
    checks.append(check_drift(conn))
    if search_index_set_aside(conn):
        checks.append(Check("search index", WARN, "set aside by another program (search_index_deferred holds a "
                            "row): `list --search` may miss text written since",
                            "the next `trialsync pull` or `trialsync import` rebuilds it"))
    return checks


def check_drift(conn: sqlite3.Connection) -> Check:
    """Schema drift the pulls noted (``sync.drift``): each field records carry that the API's data model lacks,
    each field that left the model, each status outside the 14 known; ``ok`` when there is none."""
    model = drift_log.latest_model(conn)
    notes = drift_log.drift_notes(conn)
    if not notes:
        if model is None:
            return Check("drift", OK, "no pull has fetched the API's data model yet: records are not checked against it")
        return Check("drift", OK, f"the records pulled match the API's data model (apiVersion {model.api_version}, "
                     f"fetched {model.fetched_at[:10]})")

    def listed(kind: str) -> list[str]:
        return [f"{note.value} ({note.nct_id})" if note.nct_id else note.value for note in notes if note.kind == kind]

    found = []
    if fields := listed(UNKNOWN_FIELD):
        found.append(f"records carry {plural(len(fields), 'field')} the API's data model (apiVersion "
                     f"{model.api_version if model else '?'}) lacks: {', '.join(fields)}")
    if gone := listed(VANISHED_FIELD):
        found.append(f"{plural(len(gone), 'field')} left the data model: {', '.join(gone)}")
    if statuses := listed(UNKNOWN_STATUS):
        found.append(f"{plural(len(statuses), 'status', 'statuses')} outside the 14 known: {', '.join(statuses)}")
    return Check("drift", WARN, "; ".join(found),
                 "nothing was dropped (`raw` keeps each record as sent), but trialsync does not read these; "
                 "a newer trialsync may")


def check_pace(recent: list[dict]) -> Check:
    """How close to the API's limit the ``recent`` pulls (rows of the pulls log, newest first) ran: a pull that gave
    up on HTTP 429, else the busiest one long enough to measure (its requests a minute)."""
    throttled = [row for row in recent if row["outcome"] == "failed" and "HTTP 429" in (row["error"] or "")]
    if throttled:
        row = throttled[0]
        return Check("pace", WARN, f"pull #{row['id']} of {row['topic']} gave up on HTTP 429 (too many requests)",
                     f"keep --rate / TRIALSYNC_RATE at {API_LIMIT} a minute or lower")
    measured = []
    for row in recent:
        if row["finished_at"] and row["requests"] > 1:
            seconds = (_utc(row["finished_at"]) - _utc(row["started_at"])).total_seconds()
            if seconds >= MEASURED_SECONDS:
                measured.append(((row["requests"] - 1) * 60 / seconds, row))
    if not measured:
        return Check("pace", OK, f"no recent pull ran {MEASURED_SECONDS} s or longer to measure its pace "
                     f"(the API allows about {API_LIMIT} requests a minute)")
    pace, row = max(measured, key=lambda item: item[0])
    said = f"the busiest recent pull (#{row['id']} of {row['topic']}) sent {pace:.0f} requests a minute, " \
           f"{pace / API_LIMIT:.0%} of the about {API_LIMIT} the API allows"
    if pace > API_LIMIT:
        return Check("pace", WARN, said, f"keep --rate / TRIALSYNC_RATE at {API_LIMIT} or lower")
    return Check("pace", OK, said)


def _disk(path: Path) -> Check:
    real = path.resolve()
    size = sum(f.stat().st_size for f in (real, Path(f"{real}-wal")) if f.exists())
    try:
        free = shutil.disk_usage(real.parent).free
    except OSError as exc:
        return Check("disk", WARN, f"cannot tell the free space of {real.parent}: {exc.strerror or exc}")
    said = f"{_size(free)} free, database {_size(size)}"
    if free < DISK_FACTOR * size:
        return Check("disk", WARN, f"only {said}",
                     f"free space on {real.parent}: a pull may need up to {DISK_FACTOR}x the database's size")
    return Check("disk", OK, said)


def check_api(client: ApiClient, rate: float) -> list[Check]:
    """The API at the client's URL: does ``/version`` answer, with which ``apiVersion`` and ``dataTimestamp``;
    and does the pace pulls are set to (``rate`` a minute) stay under what the API allows. One request."""
    checks = [_rate(rate)]
    try:
        version = client.version()
    except ApiUnreachable as exc:
        return [Check("API", FAIL, f"{client.base_url} cannot be reached ({exc.reason})",
                      "check the network and --api-url / TRIALSYNC_API_URL; `trialsync import FILE` works offline"),
                *checks]
    except ApiError as exc:
        return [Check("API", FAIL, f"cannot be reached: {exc}",
                      "check the network and --api-url / TRIALSYNC_API_URL; `trialsync import FILE` works offline"),
                *checks]
    api_version, stamp = version.get("apiVersion"), version.get("dataTimestamp")
    if not isinstance(api_version, str) or not api_version.startswith("2."):
        checks.insert(0, Check("API", WARN, f"{client.base_url} answers, with apiVersion {api_version!r}",
                               "trialsync reads version 2 of the API: is --api-url right?"))
    else:
        checks.insert(0, Check("API", OK, f"{client.base_url} answers, apiVersion {api_version}"))
    if isinstance(stamp, str) and stamp:
        checks.insert(1, Check("API data", OK, f"dataTimestamp {stamp}"))
    else:
        checks.insert(1, Check("API data", WARN, "the API did not say when its data was refreshed (no dataTimestamp)"))
    return checks


def _rate(rate: float) -> Check:
    if rate <= 0:
        return Check("rate", WARN, "pacing is off (rate 0)",
                     f"set --rate / TRIALSYNC_RATE to {API_LIMIT} a minute: past that the API answers 429")
    if rate > API_LIMIT:
        return Check("rate", WARN, f"pulls pace to {rate:g} requests a minute, above the about {API_LIMIT} the API "
                     "allows", f"set --rate / TRIALSYNC_RATE to {API_LIMIT} or lower")
    return Check("rate", OK, f"pulls pace to {rate:g} requests a minute (the API allows about {API_LIMIT})")
