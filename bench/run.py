#!/usr/bin/env python3
"""Benchmark trialsync side by side with a floor and a naive peer, on one served corpus, in one run.

    python bench/run.py                 # 10,000 and 100,000 studies
    python bench/run.py --size 10000    # one size (repeat --size for more; 560000 is the whole registry)

Up to 20,000 studies the floor and the full pull run three times each and the median is shown.

Every contender runs as its own process against the stand-in API (tests/fakeapi.py), itself a separate
process serving clones of the real fixture records. Wall time is measured around the process, peak
resident memory is the process's own (wait4). Prints a markdown table and writes bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from trialsync.store import COUNT_BY_STATUS  # noqa: E402  the very query status-report runs
from trialsync.store.history import TOPIC_CHANGES  # noqa: E402  the very filter changes and the digest use
from trialsync.reports.breakdowns import breakdown_sql  # noqa: E402
from trialsync.reports.studies import Place, StudyQuery, list_sql  # noqa: E402

FAKEAPI = ROOT / "tests" / "fakeapi.py"
PYTHON = sys.executable

# The floor: fetch every page and parse it, storing nothing, with the same HTTP stack.
FLOOR = r"""
import sys, orjson, requests
url, params, session = sys.argv[1] + "/studies", {"pageSize": "1000", "countTotal": "true"}, requests.Session()
studies = body_bytes = 0
while True:
    body = session.get(url, params=params).content
    page = orjson.loads(body)
    studies += len(page["studies"]); body_bytes += len(body)
    if not page.get("nextPageToken"):
        break
    params = {"pageSize": "1000", "pageToken": page["nextPageToken"]}
print(studies, body_bytes)
"""

# Fetch only: the time the pages take to arrive, for the runs with a delay per page.
FETCH = r"""
import sys, orjson, requests
url, params, session = sys.argv[1] + "/studies", {"pageSize": "1000", "countTotal": "true"}, requests.Session()
while True:
    body = session.get(url, params=params).content
    start = body.rfind(b'"nextPageToken":"')
    if start == -1:
        break
    params = {"pageSize": "1000", "pageToken": body[start + 17:body.index(b'"', start + 17)].decode()}
"""

# The naive peer: what a user would write instead, in twenty lines.
NAIVE = r"""
import json, sys, requests, sqlite_utils
db = sqlite_utils.Database(sys.argv[2])
url, params = sys.argv[1] + "/studies", {"pageSize": 1000}
while True:
    page = requests.get(url, params=params).json()
    db["studies"].insert_all(
        ({"nct_id": s["protocolSection"]["identificationModule"]["nctId"], "raw": json.dumps(s)} for s in page["studies"]),
        pk="nct_id", replace=True)
    if not page.get("nextPageToken"):
        break
    params = {"pageSize": 1000, "pageToken": page["nextPageToken"]}
"""


@dataclass
class Run:
    wall: float
    # The peak of the largest single process: the process's own (VmHWM) or one below it, never their sum. Sampled,
    # because wait4's ru_maxrss also counts the peak of this script, which a child inherits through fork and exec.
    rss_mb: float
    out: str
    tree_mb: float = 0.0  # the peak of its resident memory and its children's together, sampled every 20 ms


def _tree_memory_kb(pid: int) -> tuple[int, int]:
    """Of ``pid`` and every process below it, in kB: their resident memory summed, and the largest high-water
    mark of resident memory (VmHWM) among them; (0, 0) once it has gone."""
    total, peak, pending = 0, 0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{current}/status").read_text().splitlines()
                          if ":" in line)
            total += int(fields.get("VmRSS", "0 kB").split()[0])
            peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]))
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total, peak


def run(cmd: list[str], env: dict | None = None) -> Run:
    """Run ``cmd`` to the end; its wall time and its own peak resident memory."""
    # Flush what earlier runs wrote, so that one contender's disk writeback is not timed in the next.
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        tree_peak, own_peak, done = [0], [0], threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                summed, largest = _tree_memory_kb(process.pid)
                tree_peak[0], own_peak[0] = max(tree_peak[0], summed), max(own_peak[0], largest)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:4])}... failed ({process.returncode}): {err.read().decode()[-2000:]}")
        own = own_peak[0] or usage.ru_maxrss  # a process gone before the first sample: wait4's figure
        return Run(wall, own / 1024, out.read().decode(), max(tree_peak[0], own) / 1024)


def median_of(runs: list[Run]) -> Run:
    """The median wall time of ``runs``, with the highest peak memory among them."""
    return Run(statistics.median(r.wall for r in runs), max(r.rss_mb for r in runs), runs[-1].out,
               max(r.tree_mb for r in runs))


def median_run(cmd: list[str], env: dict, times: int = 7) -> Run:
    return median_of([run(cmd, env) for _ in range(times)])


class Server:
    """The stand-in API in its own process."""

    def __init__(self, studies: int, page_delay: float = 0.0):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [PYTHON, str(FAKEAPI), "--studies", str(studies), "--port", str(port), "--page-delay", str(page_delay)],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if "serving" not in line:
            raise SystemExit(f"the stand-in API did not start: {line!r}")
        self.url = f"http://127.0.0.1:{port}/api/v2"

    def control(self, action: str, **params) -> object:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with urllib.request.urlopen(f"{self.url.rsplit('/api/v2', 1)[0]}/_control/{action}?{query}") as answer:
            return orjson.loads(answer.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def trialsync(*args: str) -> list[str]:
    return [PYTHON, "-m", "trialsync", *args]


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def fts_rebuild_seconds(db_path: Path) -> float:
    """How long the full-text index takes to build whole, on a copy of the database: its share of a pull."""
    copy = db_path.with_name(db_path.name + ".fts-copy")
    shutil.copyfile(db_path, copy)
    try:
        with sqlite3.connect(copy) as conn:
            conn.execute("INSERT INTO studies_fts (studies_fts) VALUES ('delete-all')")
            started = time.perf_counter()
            conn.execute("INSERT INTO studies_fts (studies_fts) VALUES ('rebuild')")
            return time.perf_counter() - started
    finally:
        copy.unlink(missing_ok=True)


def query_plans(db_path: Path) -> list[str]:
    """EXPLAIN QUERY PLAN of the queries behind status-report, changes and show."""
    queries = {
        "status-report (snapshot of the last complete pull)":
            "SELECT overall_status, last_known_status, count FROM pull_status_counts WHERE pull_id = 3",
        "status-report (live count, after a pull that failed midway)":
            f"SELECT {COUNT_BY_STATUS}".replace("topic = ?", "topic = 'stem-cell-spine'"),
        "changes stem-cell-spine":
            "SELECT c.nct_id, c.field, c.old, c.new, c.observed_at, c.topic, c.pull_id, s.brief_title "
            "FROM changes c LEFT JOIN studies s ON s.nct_id = c.nct_id WHERE "
            + TOPIC_CHANGES.replace(":topic", "'stem-cell-spine'") + " ORDER BY c.pull_id DESC, c.id",
        "digest of stem-cell-spine (changes after its cursor)":
            "SELECT c.id FROM changes c NOT INDEXED WHERE c.id > (SELECT reported_through FROM topics WHERE name = 'stem-cell-spine') "
            "AND " + TOPIC_CHANGES.replace(":topic", "'stem-cell-spine'") + " ORDER BY c.id",
        "show (study row)": "SELECT * FROM studies WHERE nct_id = 'NCT90000005'",
        "list --status recruiting": list_sql(StudyQuery(statuses=["RECRUITING"])),
        "list --search cervical": list_sql(StudyQuery(search="cervical")),
        "list --near 41.85,-87.65 --within 50": list_sql(StudyQuery(near=Place(41.85, -87.65, "x"), within_km=50)),
        "status-report --by country": breakdown_sql("country"),
        "show (locations)": "SELECT facility, city, state, country, status FROM locations WHERE nct_id = 'NCT90000005' ORDER BY seq",
    }
    lines = []
    with sqlite3.connect(db_path) as conn:
        from trialsync.reports.studies import add_functions

        add_functions(conn)
        for name, sql in queries.items():
            sql, params = sql if isinstance(sql, tuple) else (sql, {})
            plan = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            lines.append(f"- {name}: " + "; ".join(row[-1] for row in plan))
    return lines


def bench_size(size: int, workdir: Path) -> tuple[list[list[str]], list[str], list[str], Run]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALSYNC_")}
    env["PYTHONPATH"] = str(ROOT)
    server = Server(size)
    try:
        repeats = 3 if size <= 20_000 else 1  # medians where a run is short
        floor = median_run([PYTHON, "-c", FLOOR, server.url], env, repeats)
        studies, body_bytes = map(int, floor.out.split())
        assert studies == size, (studies, size)
        raw_per_study = body_bytes / size
        db_path = workdir / f"trialsync-{size}.db"
        common = ["--db", str(db_path), "--api-url", server.url, "--rate", "0"]

        def fresh_full_pull() -> list[str]:
            for leftover in workdir.glob(f"trialsync-{size}.db*"):
                leftover.unlink()
            return trialsync("pull", *common)

        full = median_of([run(fresh_full_pull(), env) for _ in range(repeats)])
        full_db = db_bytes(db_path)
        naive_db = workdir / f"naive-{size}.db"
        naive = run([PYTHON, "-c", NAIVE, server.url, str(naive_db)], env)
        changed = size // 200  # 0.5% changed: the share the nightly refresh is judged on
        server.control("change", count=changed, status="TERMINATED", date="2026-11-25")
        leavers = max(1, size // 1000)  # and 0.1% edited out of the topic's search
        server.control("leave", count=leavers, date="2026-11-25")
        server.control("timestamp", value="2026-11-25T09:00:00")
        incremental = run(trialsync("pull", *common), env)
        # How the incremental pull settled membership (the registry's changed list, for a large topic) and at how
        # many requests: the nightly price of the topic.
        last = orjson.loads(run(trialsync("pulls", "-n", "1", "--db", str(db_path), "-f", "json"), env).out)[0]
        incremental_requests, reconciled, left = last["requests"], last["reconciled"], last["left_topic"]
        unchanged = run(trialsync("pull", *common), env)
        changes_listed = len(orjson.loads(run(trialsync("changes", "--db", str(db_path), "-f", "json"), env).out))
        version = median_run(trialsync("--version"), env)
        queries = {name: median_run(trialsync(*args, "--db", str(db_path)), env) for name, args in (
            ("status-report", ("status-report",)), ("changes", ("changes",)), ("show NCT_ID", ("show", "NCT90000005")),
            ("topics list", ("topics", "list")), ("pulls", ("pulls",)), ("history", ("history",)),
            ("list --status recruiting", ("list", "--status", "recruiting")),
            ("list --search cervical", ("list", "--search", "cervical")),
            ("list --near 41.85,-87.65 --within 50", ("list", "--near", "41.85,-87.65", "--within", "50")),
            ("status-report --by country", ("status-report", "--by", "country")),
            # What a person reads on a screen: the query's cost without printing thousands of lines.
            ("list --status recruiting -n 50", ("list", "--status", "recruiting", "-n", "50")),
            ("list --status recruiting --limit 20", ("list", "--status", "recruiting", "--limit", "20")),
            ("list --search cervical -n 50", ("list", "--search", "cervical", "-n", "50")),
            ("list --near 41.85,-87.65 --within 50 -n 50",
             ("list", "--near", "41.85,-87.65", "--within", "50", "-n", "50")))}
        export_csv = run(trialsync("export", "--format", "csv", "-o", str(workdir / f"export-{size}.csv"),
                                   "--db", str(db_path)), env)
        rebuild = fts_rebuild_seconds(db_path)
        plans = query_plans(db_path)
        # Pacing binds where requests would come fastest: the id listing of an incremental pull.
        paced_db = workdir / f"paced-{size}.db"
        shutil.copyfile(db_path, paced_db)
        server.control("timestamp", value="2026-11-26T09:00:00")
        paced_rate = 600
        paced_times_before = len(server.control("requests"))
        paced = run(trialsync("pull", "--db", str(paced_db), "--api-url", server.url, "--rate", str(paced_rate)), env)
        starts = server.control("requests")[paced_times_before:]
        undelayed_fetch = run([PYTHON, "-c", FETCH, server.url], env).wall if size > 100_000 else 0.0
    finally:
        server.stop()

    pages = -(-size // 1000)
    per_page = full.wall / pages
    delayed_server = Server(size, page_delay=per_page)
    try:
        delayed_db = workdir / f"delayed-{size}.db"
        delayed = run(trialsync("pull", "--db", str(delayed_db), "--api-url", delayed_server.url, "--rate", "0"), env)
        # The latency side: the same pages fetched back to back and not parsed (the token is found by search). Past
        # 100,000 studies that run would take as long as the pull: the pages fetched without delay, plus the delay of
        # each page request (a full last page gets a token, so one more, empty, is asked).
        latency = run([PYTHON, "-c", FETCH, delayed_server.url], env).wall if size <= 100_000 else undelayed_fetch \
            + (size // 1000 + 1) * per_page
    finally:
        delayed_server.stop()

    def row(name: str, r: Run, studies: int | None, db: int | None = None, note: str = "") -> list[str]:
        rate = f"{studies / r.wall:,.0f}" if studies else ""
        per_study = f"{db / size:,.0f} ({db / size / raw_per_study:.2f}x)" if db else ""
        return [name, f"{r.wall:.2f}", rate, f"{r.rss_mb:.0f}", per_study, note]

    intervals = [b - a for a, b in zip(starts, starts[1:])]
    rows = [
        row("floor: fetch + parse every page", floor, size,
            note=f"raw JSON {raw_per_study:,.0f} B/study" + (f"; median of {repeats}" if repeats > 1 else "")),
        row("naive peer: requests + sqlite-utils, raw only", naive, size, db_bytes(naive_db)),
        row("trialsync pull (full)", full, size, full_db,
            f"{full.wall / floor.wall:.2f}x floor, {full.wall / naive.wall:.2f}x naive, RSS {full.rss_mb / floor.rss_mb:.2f}x floor; "
            f"with its flattening worker {full.tree_mb:.0f} MB ({full.tree_mb / floor.rss_mb:.2f}x floor)"
            + (f"; median of {repeats}" if repeats > 1 else "")),
        row(f"trialsync pull, {changed} changed (0.5%), {leavers} left", incremental, changed,
            note=f"{incremental.wall / full.wall:.1%} of full; changes listed: {changes_listed}; "
                 f"{incremental_requests} requests, membership by {reconciled}, {left} of {leavers} leavers seen"),
        row("trialsync pull, dataTimestamp unchanged", unchanged, None,
            note=f"{unchanged.wall - version.wall:.2f} s beyond start-up (--version)"),
        row(f"trialsync pull (full), {per_page * 1000:.0f} ms delay per page", delayed, size,
            note=f"{delayed.wall / max(full.wall, latency):.2f}x max(processing {full.wall:.2f} s, latency {latency:.2f} s)"),
        row(f"trialsync pull (incremental), --rate {paced_rate}", paced, None,
            note=f"{len(starts)} requests, closest starts {min(intervals):.3f} s apart (limit {60 / paced_rate:.3f}), "
                 f"busiest 10 s: {busiest(starts, 10.0)} (limit {paced_rate // 6})" if intervals else ""),
        row("trialsync --version", version, None, note="median of 7"),
    ]
    rows += [row(f"trialsync {name}", r, None, note=f"{r.wall / version.wall:.2f}x --version, median of 7; "
                 f"{len(r.out.splitlines()):,} lines printed")
             for name, r in queries.items()]
    rows.append(row("trialsync export --format csv", export_csv, size, note="every study of the topic, flattened"))
    checks = [
        f"full pull within 1.0x of the floor: {full.wall / floor.wall:.2f}x",
        f"full pull no slower than the naive peer: {full.wall / naive.wall:.2f}x",
        f"peak memory no more than the floor's + 10%: {full.rss_mb:.0f} MB vs {floor.rss_mb:.0f} MB "
        f"({full.tree_mb:.0f} MB with the worker process)",
        f"incremental pull (0.5% changed) at most 5% of the full pull: {incremental.wall / full.wall:.1%}",
        f"incremental pull in fewer than 20 requests: {incremental_requests} (membership by {reconciled})",
        f"unchanged pull under a second beyond start-up: {unchanged.wall - version.wall:.2f} s",
        f"with page delay, at most 1.2x max(processing, latency): {delayed.wall / max(full.wall, latency):.2f}x",
        f"pacing at --rate {paced_rate}: busiest 10 s window {busiest(starts, 10.0)} requests (limit {paced_rate // 6}), "
        f"closest starts {min(intervals) if intervals else 0:.3f} s apart (limit {60 / paced_rate:.3f} s)",
        *(f"{name} within 1.5x of --version: {r.wall / version.wall:.2f}x" for name, r in queries.items()),
        f"database no larger than the raw JSON it holds: {full_db / size / raw_per_study:.2f}x",
        f"full-text index: rebuilding it whole takes {rebuild:.2f} s = {rebuild / full.wall:.1%} of the full pull "
        f"(target: the index costs at most 15% of pull time)",
    ]
    return rows, checks, plans, full


def busiest(starts: list[float], window: float) -> int:
    """The most request starts seen in any half-open window of ``window`` seconds."""
    most, first = 0, 0
    for last, start in enumerate(starts):
        while starts[first] <= start - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores{memory}; "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, action="append", help="studies served (default: 10000 and 100000)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    sizes = args.size or [10_000, 100_000]
    header = ["run", "wall s", "studies/s", "peak RSS MB", "DB bytes/study (vs raw)", "notes"]
    lines = ["# Benchmark results", "", f"Machine: {machine()}.", f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
             f"`python bench/run.py {' '.join(f'--size {s}' for s in sizes)}`.", ""]
    fulls: dict[int, Run] = {}
    with tempfile.TemporaryDirectory(prefix="trialsync-bench-") as tmp:
        for size in sizes:
            rows, checks, plans, fulls[size] = bench_size(size, Path(tmp))
            table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            table += ["| " + " | ".join(r) + " |" for r in rows]
            section = [f"## {size:,} studies", "", *table, "", "Targets:", "", *(f"- {c}" for c in checks), "",
                       "Query plans:", "", *plans, ""]
            print("\n".join(section), flush=True)
            lines += section
    if len(fulls) > 1:
        # Flat memory and throughput: each size's full pull against the smallest one's.
        smallest = min(fulls)
        section = [f"## Across sizes (full pull, against {smallest:,} studies)", "",
                   "| studies | wall s | studies/s | vs smallest | peak RSS MB | vs smallest | with worker MB |",
                   "|---|---|---|---|---|---|---|"]
        section += [f"| {size:,} | {r.wall:.1f} | {size / r.wall:,.0f} | "
                    f"{size / r.wall / (smallest / fulls[smallest].wall):.2f}x | {r.rss_mb:.0f} | "
                    f"{r.rss_mb / fulls[smallest].rss_mb:.2f}x | {r.tree_mb:.0f} |" for size, r in sorted(fulls.items())]
        print("\n".join(section), flush=True)
        lines += ["", *section, ""]
    args.output.write_text("\n".join(lines))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
