"""Every format carries the same numbers: each report command's table (rich, on a terminal), text, markdown, CSV
and JSON lines are read back, cell by cell, and compared with its JSON, row for row.

The tables are read by their headers: a number is right-aligned under its header (it ends where the header
ends), any other value starts where its header starts. A column left out to fit the width is not compared;
an "Other" column must hold the sum of the statuses it stands for."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from conftest import SPINE_CONDITION_IDS, fixture_record, pull_spine_twice, with_status
from fakeapi import Corpus, FakeApi, load_fixture_records

from trialsync.places import in_units
from trialsync.render.status import STATUS_HEADERS
from trialsync.statuses import status_label, status_sort_key
from trialsync.vocab import PHASE_LABELS, SPONSOR_CLASS_LABELS, STUDY_TYPE_LABELS

DIMENSIONS = ("phase", "study-type", "sponsor-class", "sponsor", "start-year", "country", "condition")
BY_HEADER = {"phase": "Phase", "study-type": "Study type", "sponsor-class": "Sponsor class", "sponsor": "Lead sponsor",
             "start-year": "Start year", "country": "Country", "condition": "Condition"}
BY_LABELS = {"phase": PHASE_LABELS, "study-type": STUDY_TYPE_LABELS, "sponsor-class": SPONSOR_CLASS_LABELS}
SHOWN = ("table", "text", "markdown")


@pytest.fixture
def stored(cli, tmp_path, monkeypatch):
    """All 140 real records imported as topic 'all'; the 13 spine records pulled twice as topic 'spine' (a
    study terminated and one leaving between the pulls); then one study's status changed on the stand-in
    without a pull, so that verify finds a difference. Yields (cli, the stand-in's URL)."""
    from trialsync import dates

    clock = {"now": "2026-11-19T10:00:00Z"}
    monkeypatch.setattr(dates, "utc_now", lambda: clock["now"])
    path = tmp_path / "all.json"
    path.write_text(json.dumps(load_fixture_records()))
    assert cli("import", str(path), "--topic", "all").code == 0
    with FakeApi(Corpus([fixture_record(i) for i in SPINE_CONDITION_IDS])) as server:
        pull_spine_twice(cli, server, clock)
        server.corpus.put(with_status(fixture_record("NCT06589271"), "ACTIVE_NOT_RECRUITING"))
        yield cli, server.url


# -- reading the output back --------------------------------------------------------------------------------


def _header_spans(line: str, headers) -> dict[str, tuple[int, int]]:
    spans = {}
    for header in headers:
        match = re.search(rf"(?<!\S){re.escape(header)}(?!\S)", line)
        if match:
            spans[header] = match.span()
    return spans


def read_grid(out: str, fmt: str, headers: dict[str, bool]) -> list[dict[str, str]]:
    """The rows of the table in ``out`` whose header line holds the first two of ``headers`` (header ->
    numeric), as {header: cell} for each header shown."""
    names = list(headers)
    lines = out.split("\n")
    if fmt == "markdown":
        start = next(i for i, line in enumerate(lines) if _cells(line)[:1] and _cells(line)[0] in names[:2]
                     and len(set(_cells(line)) & set(names)) >= 2)
        shown = _cells(lines[start])
        assert set(lines[start + 1].replace("|", "").split()) <= {"---", "---:"}, lines[start + 1]
        rows = []
        for line in lines[start + 2:]:
            if not line.startswith("|"):
                break
            cells = _cells(line)
            assert len(cells) == len(shown), line
            rows.append({h: c for h, c in zip(shown, cells) if h in headers})
        return rows
    start = next(i for i, line in enumerate(lines)
                 if len(_header_spans(line, names)) >= 2 and any(line.startswith(h) for h in names[:2]))
    spans = _header_spans(lines[start], names)
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        if set(line) <= {"─", " "}:
            continue
        row = {}
        for header, (begin, end) in spans.items():
            if headers[header]:  # right-aligned: the number ends where its header ends
                assert line[end:end + 1] in ("", " "), (header, line)
                if end > len(line) or line[end - 1] == " ":
                    row[header] = ""
                else:
                    left = line.rfind(" ", 0, end)
                    row[header] = line[left + 1:end]
            else:
                assert begin == 0 or line[begin - 1] == " ", (header, line)
                row[header] = re.split(r"\s{2,}", line[begin:].strip(), maxsplit=1)[0] if line[begin:begin + 1] != " " \
                    else ""
        rows.append(row)
    return rows


def _cells(line: str) -> list[str]:
    inner = line.strip()
    if not (inner.startswith("|") and inner.endswith("|")):
        return []
    return [re.sub(r"\\(.)", r"\1", c.strip()) for c in re.split(r"(?<!\\)\|", inner[1:-1])]  # undo escapes


def same_rows(shown: list[dict], expected: list[dict], required: set[str], statuses: set[str] = frozenset()) -> None:
    """Each row shown equals the one expected in every cell shown; "Other" sums the statuses not shown."""
    assert len(shown) == len(expected), (shown, expected)
    for got, want in zip(shown, expected):
        assert required <= set(got), (required, got)
        for header, cell in got.items():
            if header == "Other":
                value = str(sum(int(want[h]) for h in statuses if h in want and h not in got))
            elif header in want:
                value = want[header]
            else:
                continue  # a column read only to find where the others are
            if cell.endswith("…"):
                assert value.startswith(cell[:-1]), (header, cell, want)
            else:
                assert cell == value, (header, cell, want)


def read_csv(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out)))


def read_nl(out: str) -> list:
    return [json.loads(line) for line in out.splitlines() if line]


def csv_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def signed(n: int) -> str:
    return f"{n:+d}" if n else "0"


def share(count: int, total: int) -> str:
    return f"{100.0 * count / total:.1f}%" if total else "0.0%"


# -- what each command's JSON says each format must show -----------------------------------------------------


def check_status_report(data: dict, out: str, fmt: str) -> None:
    total = data["total"]
    counts = {e["status"]: e["count"] for e in data["statuses"]}
    before = {e["status"]: e["count"] for e in data["previous"]["statuses"]} if data.get("previous") else None
    statuses = sorted(set(counts) | set(before or {}), key=status_sort_key)
    if fmt == "csv" or fmt == "nl":
        rows = [{"status": s, "label": status_label(s), "count": counts.get(s, 0), "percent": share(counts.get(s, 0), total),
                 "previous_count": None if before is None else before.get(s, 0)} for s in statuses]
        if fmt == "nl":
            assert read_nl(out) == rows
        else:
            assert read_csv(out) == [{k: csv_text(v) for k, v in row.items()} for row in rows]
        return
    expected = [{"Status": status_label(s), "Studies": str(counts.get(s, 0)), "Share": share(counts.get(s, 0), total),
                 **({"Change": signed(counts.get(s, 0) - before.get(s, 0))} if before is not None else {})}
                for s in statuses]
    expected.append({"Status": "Total", "Studies": str(total), "Share": share(total, total) if total else "",
                     **({"Change": signed(total - sum(before.values()))} if before is not None else {})})
    headers = {"Status": False, "Studies": True, "Share": True, "Change": True}
    required = {"Status", "Studies", "Share"} | ({"Change"} if before is not None else set())
    same_rows(read_grid(out, fmt, headers), expected, required)
    if data["unknown_by_last_known"]:
        unknown = [{"Last known status": status_label(s), "Studies": str(n)} for s, n in data["unknown_by_last_known"].items()]
        same_rows(read_grid(out, fmt, {"Last known status": False, "Studies": True}), unknown, {"Last known status", "Studies"})
    sentence = re.search(r"(\d+) stud(?:y|ies) left the topic since the previous pull", out)
    assert (int(sentence.group(1)) if sentence else None) == (data["left_since_previous"] if before is not None else None)


def _status_cells(counts: dict[str, int], statuses: list[str]) -> dict[str, str]:
    return {STATUS_HEADERS[s]: str(counts.get(s, 0)) for s in statuses}


def check_breakdown(data: dict, out: str, fmt: str) -> None:
    statuses = sorted({s for row in data["rows"] for s in row["statuses"]}, key=status_sort_key)
    if fmt in ("csv", "nl"):
        rows = [{"value": r["value"], "total": r["total"], **{s: r["statuses"].get(s, 0) for s in statuses}}
                for r in data["rows"]]
        if fmt == "nl":
            assert read_nl(out) == rows
        else:
            assert read_csv(out) == [{k: csv_text(v) for k, v in row.items()} for row in rows]
        return
    header = BY_HEADER[data["by"]]
    labels = BY_LABELS.get(data["by"], {})
    expected = [{header: (labels.get(r["value"], r["value"]) if r["value"] is not None else None) or "(none)",
                 "Studies": str(r["total"]), **_status_cells(r["statuses"], statuses)} for r in data["rows"]]
    status_headers = {STATUS_HEADERS[s] for s in statuses}
    headers = {header: False, "Studies": True, **dict.fromkeys(sorted(status_headers), True), "Other": True}
    shown = read_grid(out, fmt, headers)
    same_rows(shown, expected, {header, "Studies"}, status_headers)
    if fmt == "markdown":  # nothing merged, nothing left out
        assert all(set(row) == {header, "Studies"} | status_headers for row in shown)


def check_history(data: dict, out: str, fmt: str) -> None:
    pulls = data["pulls"]
    statuses = sorted({s for p in pulls for s in p["statuses"]}, key=status_sort_key)
    if fmt in ("csv", "nl"):
        if fmt == "nl":
            assert read_nl(out) == [{**{k: v for k, v in p.items() if k != "statuses"},
                                     **{s: p["statuses"].get(s, 0) for s in statuses}} for p in pulls]
        else:
            assert read_csv(out) == [{**{k: csv_text(v) for k, v in p.items() if k != "statuses"},
                                      **{s: str(p["statuses"].get(s, 0)) for s in statuses}} for p in pulls]
        return
    expected = [{"Pull finished": p["finished_at"].replace("T", " ").rstrip("Z"), "Studies": str(p["total"]),
                 **_status_cells(p["statuses"], statuses)} for p in pulls]
    status_headers = {STATUS_HEADERS[s] for s in statuses}
    headers = {"Pull finished": False, "Studies": True, **dict.fromkeys(sorted(status_headers), True), "Other": True}
    same_rows(read_grid(out, fmt, headers), expected, {"Pull finished", "Studies"}, status_headers)


def check_every_topic(data: list, out: str, fmt: str) -> None:
    if fmt == "nl":
        assert read_nl(out) == data
        return
    if fmt == "csv":
        statuses = sorted({s for t in data for s in t["statuses"]}, key=status_sort_key)
        assert read_csv(out) == [{"topic": t["topic"], "total": str(t["total"]), "as_of": csv_text(t["as_of"]),
                                  **{s: str(t["statuses"].get(s, 0)) for s in statuses}} for t in data]
        return
    starts = [match.start() for match in re.finditer(r"^[a-z0-9][a-z0-9_.-]*: \d", out, re.M)]  # a topic's line, wrapped
    lines = [" ".join(out[a:b].split()) for a, b in zip(starts, starts[1:] + [len(out)])]
    assert len(lines) == len(data) and "".join(out[:starts[0]].split()) == "", out
    for line, topic in zip(lines, data):
        assert line.startswith(f"{topic['topic']}: ")
        numbers = [int(n) for n in re.findall(r"\b\d+\b", line[len(topic["topic"]) + 2:])]
        counts = sorted(topic["statuses"].items(), key=lambda item: status_sort_key(item[0]))
        assert numbers == [topic["total"]] + [n for _, n in counts], line


def check_changes(data: list, out: str, fmt: str) -> None:
    keys = ("nct_id", "field", "old", "new", "item", "observed_at", "topic", "reason", "brief_title")
    if fmt == "nl":
        assert read_nl(out) == data
        return
    if fmt == "csv":
        assert read_csv(out) == [{k: csv_text(c[k]) for k in keys} for c in data]
        return
    expected = [{"Observed": c["observed_at"][:10], "NCT ID": c["nct_id"],
                 **({"Change": f"status: {status_label(c['old'])} -> {status_label(c['new'])}"}
                    if c["field"] == "overall_status" else {})} for c in data]
    same_rows(read_grid(out, fmt, {"Observed": False, "NCT ID": False, "Change": False}), expected, {"NCT ID"})


def check_pulls(data: list, out: str, fmt: str) -> None:
    if fmt == "nl":
        assert read_nl(out) == data
        return
    if fmt == "csv":
        assert read_csv(out) == [{k: csv_text(v) for k, v in p.items()} for p in data]
        return
    expected = [{"#": str(p["id"]), "Topic": p["topic"], "Took": p["duration"], "Requests": str(p["requests"]),
                 "Received": str(p["received"]), "New": str(p["new"]), "Updated": str(p["updated"]),
                 "Left": str(p["left_topic"]), "Mode": p["mode"], "Outcome": p["outcome"]} for p in data]
    headers = {"#": True, "Topic": False, "Took": True, "Mode": False, "Outcome": False, "Requests": True,
               "Received": True, "New": True, "Updated": True, "Left": True}
    same_rows(read_grid(out, fmt, headers), expected, {"#", "Topic", "Received"})


def check_topics(data: list, out: str, fmt: str) -> None:
    if fmt == "nl":
        assert read_nl(out) == data
        return
    if fmt == "csv":
        assert read_csv(out) == [{k: csv_text(v) for k, v in t.items()} for t in data]
        return
    expected = [{"Topic": t["name"], "Studies": str(t["studies"]), "Last pull": t["last_pull"] or ""} for t in data]
    same_rows(read_grid(out, fmt, {"Topic": False, "Studies": True, "Last pull": False}), expected, {"Topic", "Studies"})


_PHASE_WORDS = {"EARLY_PHASE1": "Early 1", "PHASE1": "1", "PHASE2": "2", "PHASE3": "3", "PHASE4": "4", "NA": "N/A"}


def check_list(data: list, out: str, fmt: str) -> None:
    near = bool(data) and "distance_km" in data[0]
    units = "mi" if near and "distance_mi" in data[0] else "km"
    if fmt == "nl":
        assert read_nl(out) == data
        return
    if fmt == "csv":
        rows = read_csv(out)
        assert len(rows) == len(data)
        for row, study in zip(rows, data):
            for key, value in study.items():
                if key == "nearest_site":
                    for part in ("facility", "city", "state", "country", "status"):
                        assert row[f"nearest_site_{part}"] == csv_text((value or {}).get(part)), (key, part, row)
                elif key == "distance_km" and units == "km":
                    assert row["distance_km"] == csv_text(None if value is None else round(value, 1)), row
                elif key == "distance_km":
                    assert "distance_km" not in row and row["distance_mi"] == csv_text(study["distance_mi"]), row
                else:
                    assert row[key] == csv_text(value), (key, row)
        return
    expected = [{"NCT ID": s["nct_id"], "Status": status_label(s["overall_status"]),
                 "Phase": "/".join(_PHASE_WORDS.get(p, p) for p in s["phases"]), "Start": (s["start_date"] or "")[:7],
                 **({units.capitalize(): "" if s["distance_km"] is None else f"{in_units(s['distance_km'], units):.0f}"}
                    if near else {})}
                for s in data]
    headers = {"NCT ID": False, "Status": False, "Phase": False, "Start": False, units.capitalize(): True}
    same_rows(read_grid(out, fmt, headers), expected, {"NCT ID"} | ({units.capitalize()} if near else set()))


def check_verify(data: dict, out: str, fmt: str) -> None:
    rows = [{"label": e["label"], "api": e["api"], "store": e["store"],
             "difference": signed(e["store"] - e["api"]) if e["api"] != e["store"] else ""} for e in data["statuses"]]
    rows.append({"label": "Total", "api": data["api_total"], "store": data["store_total"],
                 "difference": signed(data["store_total"] - data["api_total"])
                 if data["api_total"] != data["store_total"] else ""})
    if fmt == "nl":
        assert read_nl(out) == data["statuses"]
        return
    if fmt == "csv":
        assert read_csv(out) == [{k: csv_text(v) for k, v in row.items()} for row in data["statuses"]]
        return
    expected = [{"Status": r["label"], "API": str(r["api"]), "Store": str(r["store"]), "Difference": r["difference"]}
                for r in rows]
    headers = {"Status": False, "API": True, "Store": True, "Difference": True}
    same_rows(read_grid(out, fmt, headers), expected, set(headers))
    for nct_id, api, store in ((d["nct_id"], d["api"], d["store"]) for d in data["status_differs"]):
        assert f"{nct_id}: the API says {status_label(api)}, the store says {status_label(store)}" in " ".join(out.split())


COMMANDS = [
    (("status-report", "all"), check_status_report),
    (("status-report", "spine"), check_status_report),
    (("status-report", "spine", "--as-of", "2026-11-21"), check_status_report),
    *[(("status-report", "all", "--by", by), check_breakdown) for by in DIMENSIONS],
    (("status-report", "spine", "--by", "phase"), check_breakdown),
    (("status-report", "spine", "--by", "country", "--as-of", "2026-11-21"), check_breakdown),
    (("status-report", "--all"), check_every_topic),
    (("history", "spine"), check_history),
    (("history", "all"), check_history),
    (("changes",), check_changes),
    (("changes", "spine"), check_changes),
    (("pulls",), check_pulls),
    (("topics", "list"), check_topics),
    (("list", "all"), check_list),
    (("list", "spine", "--status", "recruiting"), check_list),
    (("list", "all", "--near", "Chicago"), check_list),
    (("list", "all", "--near", "60601", "--within", "500mi"), check_list),
    (("verify", "spine"), check_verify),
]


def run(cli, url: str, args: tuple, fmt: str | None):
    extra = ("--api-url", url) if args[0] == "verify" else ()
    result = cli(*args, *extra, *(("-f", fmt) if fmt else ()))
    assert result.code == (1 if args[0] == "verify" else 0), (args, fmt, result)
    return result.out


@pytest.mark.parametrize("width", [200, 80])
def test_every_format_of_every_report_carries_the_numbers_of_its_json(stored, monkeypatch, width):
    cli, url = stored
    from trialsync.cli import options

    monkeypatch.setattr(options, "is_terminal", lambda: True)  # rich draws the tables, as on a terminal
    monkeypatch.setenv("COLUMNS", str(width))
    for args, check in COMMANDS:
        data = json.loads(run(cli, url, args, "json"))
        assert data, args
        for fmt in ("table", "text", "markdown", "csv", "nl"):
            out = run(cli, url, args, fmt)
            try:
                check(data, out, fmt)
            except (AssertionError, StopIteration) as exc:
                raise AssertionError(f"{' '.join(args)} -f {fmt} at {width} columns:\n{out}") from exc
        check(data, run(cli, url, args, None), "table")  # a terminal's default is the table


def test_markdown_breakdowns_and_history_fill_every_cell(stored):
    cli, url = stored
    for args in [("status-report", "all", "--by", by) for by in DIMENSIONS] + [("history", "spine")]:
        out = run(cli, url, args, "markdown")
        rows = [line for line in out.split("\n") if line.startswith("| ")][2:]
        assert rows and all("|  |" not in row for row in rows), (args, out)


def test_export_csv_and_json_lines_carry_the_values_of_its_json(stored):
    cli, url = stored
    data = json.loads(run(cli, url, ("export", "all"), "json"))
    assert len(data) == 140
    assert read_nl(run(cli, url, ("export", "all"), "nl")) == data
    assert read_csv(run(cli, url, ("export", "all"), "csv")) == [{k: csv_text(v) for k, v in row.items()} for row in data]
