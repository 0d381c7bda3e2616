"""Counts by status: the status report, breakdowns, the history of a topic, every topic, verify's comparison."""

from __future__ import annotations

from collections.abc import Sequence

from ..results_rule import CATEGORY_LABELS
from ..statuses import status_label, status_sort_key
from ..vocab import PHASE_LABELS, SPONSOR_CLASS_LABELS, STUDY_TYPE_LABELS, label
from .charts import bar_chart, bar_chart_rich, sparkline, trend_chart, trend_chart_rich
from .formats import to_json
from .visible import visible
from .tables import Column, fit, rows_as, sentence, terminal_width
from .words import plural

# Column headers for counts by status, short enough for a breakdown to fit 80 columns.
STATUS_HEADERS = {
    "NOT_YET_RECRUITING": "Not yet", "RECRUITING": "Recruiting", "ENROLLING_BY_INVITATION": "Invited",
    "ACTIVE_NOT_RECRUITING": "Active", "SUSPENDED": "Suspended", "TERMINATED": "Terminated",
    "COMPLETED": "Completed", "WITHDRAWN": "Withdrawn", "UNKNOWN": "Unknown", "AVAILABLE": "Available",
    "NO_LONGER_AVAILABLE": "No longer", "TEMPORARILY_NOT_AVAILABLE": "Paused", "APPROVED_FOR_MARKETING": "Approved",
    "WITHHELD": "Withheld", "NONE": "None",
}
OTHER = "OTHER"
CHART_WIDTH = 80  # charts are drawn to fit this, or the terminal when it is narrower


def _percent(count: int, total: int) -> str:
    return f"{100.0 * count / total:.1f}%" if total else "0.0%"


def _signed(delta: int | None) -> str:
    if delta is None:
        return ""
    return f"{delta:+d}" if delta else "0"


def status_rows(report: dict) -> list[dict]:
    """One row per status: status, label, count, percent, previous count and change (when known)."""
    previous = report.get("previous")
    before = {e["status"]: e["count"] for e in previous["statuses"]} if previous else {}
    statuses = [e["status"] for e in report["statuses"]]
    statuses += [s for s in before if s not in statuses]  # a status that emptied still shows its -N
    counts = {e["status"]: e["count"] for e in report["statuses"]}
    rows = []
    for status in sorted(statuses, key=status_sort_key):
        count = counts.get(status, 0)
        rows.append({
            "status": status, "label": status_label(status), "count": count,
            "percent": _percent(count, report["total"]),
            "previous_count": before.get(status, 0) if previous else None,
            "change": _signed(count - before.get(status, 0)) if previous else "",
        })
    return rows


def chart_width() -> int:
    """The width charts are drawn to: 80 columns, or the terminal's when narrower."""
    return min(CHART_WIDTH, terminal_width())


def _series(rows: Sequence[dict], statuses: Sequence[str]) -> dict[str, list[int]]:
    """Each status's count at each of the ``history`` rows, in their order (0 where it had none)."""
    return {status: [row["statuses"].get(status, 0) for row in rows] for status in statuses}


def status_report_data(report: dict) -> dict:
    """The status report as ``--format json`` gives it: ``{"topic", "total", "as_of", "statuses",
    "unknown_by_last_known", "data_timestamp", "left_since_previous", "previous"}``."""
    return {key: report[key] for key in ("topic", "total", "as_of", "statuses", "unknown_by_last_known",
                                         "data_timestamp", "left_since_previous", "previous")}


def render_status_report(report: dict, summary: str, fmt: str, trend: Sequence[dict] = (),
                         chart: bool = False) -> list:
    """The status report in ``fmt``: the summary as a sentence, counts with share and change, the unknown
    breakdown, the date of the data. With ``trend`` (``history`` rows, oldest first; two or more) the table
    and text formats add a sparkline of each status over those pulls. With ``chart`` (table and text only)
    the counts are drawn as horizontal bars instead of the table."""
    if fmt == "json":
        return [to_json(status_report_data(report))]
    rows = status_rows(report)
    if fmt in ("csv", "nl"):
        keys = ("status", "label", "count", "percent", "previous_count")
        return rows_as(rows, [Column(k, k) for k in keys], fmt, data=[{k: r[k] for k in keys} for r in rows])
    title = f"{report['topic']}: {summary}."
    if chart:
        items = [(row["label"], row["count"]) for row in rows]
        if fmt == "table":
            drawn = [sentence(title)] + ([bar_chart_rich(items, chart_width())] if items else [])
        else:
            drawn = ["\n".join([sentence(title), *bar_chart(items, chart_width())])]
        return drawn + [sentence(_as_of_line(report))]
    has_previous = report.get("previous") is not None
    columns = [Column("label", "Status"), Column("count", "Studies", numeric=True),
               Column("percent", "Share", numeric=True)]
    if has_previous:
        columns.append(Column("change", "Change", numeric=True))
    total_row = {"label": "Total", "count": report["total"], "percent": _percent(report["total"], report["total"])
                 if report["total"] else "", "change": ""}
    if has_previous:
        before_total = sum(e["count"] for e in report["previous"]["statuses"])
        total_row["change"] = _signed(report["total"] - before_total)
    if len(trend) >= 2 and fmt in ("table", "text"):
        series = _series(trend, [row["status"] for row in rows])
        for row in rows:
            row["trend"] = sparkline(series[row["status"]])
        total_row["trend"] = sparkline([sum(r["statuses"].values()) for r in trend])
        columns.append(Column("trend", f"Last {len(trend)} pulls", drop=1))
    blocks = rows_as(rows + [total_row], columns, fmt, title=title)
    blocks.append(sentence(_as_of_line(report)))
    if report["unknown_by_last_known"]:
        unknown_rows = [{"label": status_label(s), "count": n} for s, n in report["unknown_by_last_known"].items()]
        blocks += rows_as(unknown_rows, [Column("label", "Last known status"), Column("count", "Studies", numeric=True)],
                          fmt, title="Unknown status, by last known status")
    if has_previous:
        left = report["left_since_previous"]
        blocks.append(sentence(f"{plural(left, 'study', 'studies')} left the topic since the previous pull "
                               f"({report['previous']['as_of']})."))
    return blocks


def _as_of_line(report: dict) -> str:
    if not report["as_of"]:
        if report["total"]:
            return ("No pull or import of this topic has completed yet: these are the studies its unfinished "
                    "first pull stored so far. Run `trialsync pull` to finish it.")
        failed = report.get("last_failed_pull")
        if failed:
            how = {"failed": "failed", "interrupted": "was interrupted", "killed": "was killed"}.get(
                failed["outcome"], failed["outcome"])
            when = f" of {failed['finished_at']}" if failed["finished_at"] else ""
            return f"Not pulled yet: the last pull{when} {how}: {failed['error'] or 'no error recorded'}"
        return "Not pulled yet: run `trialsync pull` (or `trialsync import FILE`)."
    api = f"; API data of {report['data_timestamp']}" if report["data_timestamp"] else ""
    return f"Data as of {report['as_of']} (last successful pull or import{api})."


_VALUE_LABELS = {"phase": PHASE_LABELS, "study-type": STUDY_TYPE_LABELS, "sponsor-class": SPONSOR_CLASS_LABELS,
                 "results": CATEGORY_LABELS}


def _status_columns(statuses: list[str], rows: list[dict], fixed: list[Column], fmt: str) -> tuple[list[str], list[dict]]:
    """The statuses to show as columns, merging the rarest into "Other" until the table fits the width, and
    the rows flattened: each status's count under its own key, as the status columns read them."""
    shown = list(statuses)
    if fmt not in ("table", "text"):  # markdown: every status, each in its own column (flattened like the rest)
        return shown, [_flat(r, shown) for r in rows]
    width = terminal_width()
    overhead = (lambda n: 3 * n + 1) if fmt == "table" else (lambda n: 2 * (n - 1))
    totals = {s: sum(r["statuses"].get(s, 0) for r in rows) for s in statuses}
    while True:
        columns = fixed + [Column(s, STATUS_HEADERS.get(s, s), numeric=True) for s in shown]
        cells = [[c.cell(_flat(r, shown)) for c in columns] for r in rows]
        kept, widths = fit(columns, cells, width, overhead)
        if len(kept) == len(columns) and sum(widths) + overhead(len(columns)) <= width or len(shown) <= 2:
            return shown, [_flat(r, shown) for r in rows]
        rarest = min((s for s in shown if s != OTHER), key=lambda s: (totals.get(s, 0), s))
        shown = [s for s in shown if s not in (rarest, OTHER)] + [OTHER]
        totals[OTHER] = totals.get(OTHER, 0) + totals.pop(rarest, 0)


def _flat(row: dict, shown: list[str]) -> dict:
    flat = {k: v for k, v in row.items() if k != "statuses"}
    counts = row["statuses"]
    for status in shown:
        if status != OTHER:
            flat[status] = counts.get(status, 0)
    if OTHER in shown:
        flat[OTHER] = sum(n for s, n in counts.items() if s not in shown)
    return flat


def render_breakdown(report: dict, fmt: str) -> list:
    """A breakdown: one row per value, its total and its count in each status (rare statuses merged into
    "Other" when the table would not fit)."""
    if fmt == "json":
        return [to_json(report)]
    statuses = sorted({s for row in report["rows"] for s in row["statuses"]}, key=status_sort_key)
    by = report["by"]
    labels = _VALUE_LABELS.get(by, {})
    rows = [{**row, "shown": (label(labels, row["value"]) if labels else row["value"]) or "(none)"}
            for row in report["rows"]]
    if fmt in ("csv", "nl"):
        flat = [_flat(row, statuses) for row in report["rows"]]
        return rows_as(flat, [Column("value", "value"), Column("total", "total")] + [Column(s, s) for s in statuses], fmt)
    header = {"phase": "Phase", "study-type": "Study type", "sponsor-class": "Sponsor class", "sponsor": "Lead sponsor",
              "start-year": "Start year", "country": "Country", "condition": "Condition", "results": "Results"}[by]
    fixed = [Column("shown", header, flex=True, min_width=16), Column("total", "Studies", numeric=True)]
    shown, flat = _status_columns(statuses, rows, fixed, fmt)
    columns = fixed + [Column(s, STATUS_HEADERS.get(s, s) if s != OTHER else "Other", numeric=True) for s in shown]
    # said only when it happened: a dimension that allows several values may have given each study one
    counted = sum(row["total"] for row in report["rows"])
    multi = (f"A study with several values counts once in each: the rows add up to more than {report['total']}."
             if report["multi"] and counted > report["total"] else "")
    as_of = f", as of {report['as_of']}" if report.get("as_of") else ""
    title = f"{report['topic']}: {plural(report['total'], 'study', 'studies')} by {header.lower()} and status{as_of}."
    return rows_as(flat, columns, fmt, title=title) + ([sentence(multi)] if multi else [])


def history_data(topic: str, rows: Sequence[dict]) -> dict:
    """The topic's counts at each complete pull as ``history --format json`` gives them: ``{"topic", "pulls"}``."""
    return {"topic": topic, "pulls": list(rows)}


def render_history(topic: str, rows: Sequence[dict], fmt: str, chart: bool = False) -> list:
    """The topic's counts by status at each complete pull or import, oldest first. With ``chart`` (table and
    text only): one sparkline per status over the newest pulls that fit the width, with its first and last
    count."""
    if fmt == "json":
        return [to_json(history_data(topic, rows))]
    if not rows:
        return [f"No complete pull of {topic} is recorded yet."]
    statuses = sorted({s for row in rows for s in row["statuses"]}, key=status_sort_key)
    if chart:
        series = [(status_label(s), counts) for s, counts in _series(rows, statuses).items()]
        series.append(("Total", [row["total"] for row in rows]))
        shown, drawn = (trend_chart_rich if fmt == "table" else trend_chart)(series, chart_width())
        first, last = (rows[-shown]["finished_at"] or "?"), (rows[-1]["finished_at"] or "?")
        which = f"its {plural(shown, 'complete pull')}" if shown == len(rows) else \
            f"its last {shown} of {len(rows)} complete pulls"
        title = sentence(f"{topic}: each status at {which}, " + (f"{first} to {last}." if shown > 1 else f"{last}."))
        return [title, drawn] if fmt == "table" else ["\n".join([title, *drawn])]
    data = [{**row, "when": (row["finished_at"] or "").replace("T", " ").rstrip("Z")} for row in rows]
    if fmt in ("csv", "nl"):
        flat = [_flat(row, statuses) for row in rows]
        fields = [key for key in rows[0] if key != "statuses"]  # what json gives each pull: pull_id, mode too
        return rows_as(flat, [Column(key, key) for key in fields] + [Column(s, s) for s in statuses], fmt)
    fixed = [Column("when", "Pull finished"), Column("total", "Studies", numeric=True)]
    shown, flat = _status_columns(statuses, data, fixed, fmt)
    columns = fixed + [Column(s, STATUS_HEADERS.get(s, s) if s != OTHER else "Other", numeric=True) for s in shown]
    return rows_as(flat, columns, fmt, title=f"{topic}: counts by status at each complete pull.")


def render_every_topic(reports: Sequence[dict], summaries: Sequence[str], fmt: str) -> list:
    """One line per topic: its counts in words."""
    if fmt in ("json", "nl", "csv"):
        rows = [{"topic": r["topic"], "total": r["total"], "as_of": r["as_of"],
                 "statuses": {e["status"]: e["count"] for e in r["statuses"]}} for r in reports]
        if fmt == "json":
            return [to_json(rows)]
        if fmt == "nl":
            return rows_as(rows, [], "nl")
        statuses = sorted({s for row in rows for s in row["statuses"]}, key=status_sort_key)
        return rows_as([_flat(row, statuses) for row in rows],
                       [Column("topic", "topic"), Column("total", "total"), Column("as_of", "as_of")]
                       + [Column(s, s) for s in statuses], "csv")
    if not reports:
        return ["No topics stored yet."]
    return ["\n".join(sentence(f"{r['topic']}: {summary}.") for r, summary in zip(reports, summaries))]


def render_verification(check, fmt: str) -> list:
    """How a topic in the store compares with the API: counts by status side by side, then each difference."""
    if fmt == "json":
        return [to_json({
            "topic": check.topic, "agrees": check.agrees, "api_total": check.api_total,
            "store_total": check.store_total,
            "statuses": [{"status": s, "label": status_label(s), "api": a, "store": b} for s, a, b in check.by_status],
            "only_in_api": check.only_in_api, "only_in_store": check.only_in_store,
            "status_differs": [{"nct_id": i, "api": a, "store": b} for i, a, b in check.status_differs],
        })]
    if fmt in ("csv", "nl"):  # the JSON's statuses, one a row, and nothing else: a file a script can read
        keys = ("status", "label", "api", "store")
        data = [{"status": s, "label": status_label(s), "api": a, "store": b} for s, a, b in check.by_status]
        return rows_as(data, [Column(k, k) for k in keys], fmt)
    rows = [{"label": status_label(s), "api": a, "store": b, "difference": _signed(b - a) if a != b else ""}
            for s, a, b in check.by_status]
    rows.append({"label": "Total", "api": check.api_total, "store": check.store_total,
                 "difference": _signed(check.store_total - check.api_total) if check.api_total != check.store_total else ""})
    verdict = ("the store agrees with the API" if check.agrees else "the store differs from the API")
    blocks = rows_as(rows, [Column("label", "Status"), Column("api", "API", numeric=True),
                            Column("store", "Store", numeric=True), Column("difference", "Difference", numeric=True)],
                     fmt, title=f"{check.topic}: {verdict}.")
    lines = [f"{i} is in the API's listing, not in the store" for i in check.only_in_api]
    lines += [f"{i} is in the store, not in the API's listing" for i in check.only_in_store]
    lines += [f"{i}: the API says {status_label(a)}, the store says {status_label(b)}" for i, a, b in check.status_differs]
    lines = [visible(line) for line in lines]
    if lines:
        blocks.append(sentence("\n".join(lines)))
    if not check.agrees:
        blocks.append(sentence(f"`trialsync pull {check.topic}` brings the store up to date."))
    return blocks
