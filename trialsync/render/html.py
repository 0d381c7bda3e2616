"""A topic's report as one self-contained HTML page: its counts by status and over time as SVG charts drawn
here, its recent changes, its breakdowns, and a table of its studies that the page's own few lines of script
sort and filter. The page loads nothing (no font, stylesheet, script or image from anywhere; its Content
Security Policy forbids it), so it opens offline; it links out only to the studies' pages.

Record text is untrusted: every value is made ``visible`` and HTML-escaped, in SVG too, and the JSON the
page carries escapes the characters that could end its script element."""

from __future__ import annotations

import base64
import hashlib
import html

import orjson

from .. import __version__
from ..ids import is_nct_id, study_url
from ..statuses import status_label, status_sort_key
from ..vocab import PHASE_LABELS, SPONSOR_CLASS_LABELS, STUDY_TYPE_LABELS, label, phases_label, plural
from .status import status_rows
from .visible import visible
from .words import describe_change

BREAKDOWN_ROWS = 15  # a breakdown shows its first this many values; the rest are counted in a line below it
HISTORY_POINTS = 60  # up to this many pulls, each pull's counts are dots that name themselves on hover

# Colours of the statuses in the charts, in the order of statuses.STATUS_LABELS; a status the spec does not
# list is grey.
STATUS_COLOURS = {
    "NOT_YET_RECRUITING": "#8e6cc9", "RECRUITING": "#2e9d4a", "ENROLLING_BY_INVITATION": "#7cbf5a",
    "ACTIVE_NOT_RECRUITING": "#2f7ec1", "SUSPENDED": "#e0a100", "TERMINATED": "#c0392b", "COMPLETED": "#4f5b6b",
    "WITHDRAWN": "#a0522d", "UNKNOWN": "#9a9a9a", "AVAILABLE": "#1797a8", "NO_LONGER_AVAILABLE": "#795548",
    "TEMPORARILY_NOT_AVAILABLE": "#e67e22", "APPROVED_FOR_MARKETING": "#00897b", "WITHHELD": "#607d8b",
}
OTHER_COLOUR = "#b0b0b0"
BREAKDOWN_HEADINGS = {"phase": "Phase", "study-type": "Study type", "sponsor-class": "Sponsor class",
                      "sponsor": "Lead sponsor", "start-year": "Start year", "country": "Country",
                      "condition": "Condition"}
_VALUE_LABELS = {"phase": PHASE_LABELS, "study-type": STUDY_TYPE_LABELS, "sponsor-class": SPONSOR_CLASS_LABELS}
# (header, whether it sorts as a number)
STUDY_COLUMNS = [("NCT ID", False), ("Title", False), ("Status", False), ("Phase", False), ("Start", False),
                 ("Updated", False), ("Enrollment", True), ("Lead sponsor", False)]

_STYLE = """
:root{color-scheme:light;--line:#d8dce2;--muted:#5b6470}
*{box-sizing:border-box}
body{margin:0 auto;max-width:72rem;padding:1rem;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1d232b;background:#fff;overflow-wrap:break-word}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid var(--line)}
h3{font-size:1rem;display:inline}
.muted,footer{color:var(--muted);font-size:.9rem}
a{color:#1558b0}
svg{display:block;width:100%;max-width:32rem;height:auto}svg text{font-size:12px;fill:#1d232b}
svg .axis{stroke:#9aa3ad;stroke-width:1}svg .grid{stroke:#e6e9ee;stroke-width:1}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;font-size:.9rem}
th,td{padding:.3rem .5rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#studies{width:100%}
#studies td:nth-child(1),#studies td:nth-child(5),#studies td:nth-child(6){white-space:nowrap}
#studies td:nth-child(7){text-align:right;font-variant-numeric:tabular-nums}
#studies td:nth-child(2){min-width:14rem}#studies td:nth-child(8){min-width:8rem}
#studies td:nth-child(3),#studies td:nth-child(4){min-width:6.5rem}
th button{font:inherit;font-weight:600;border:0;background:none;padding:0;cursor:pointer;color:inherit;text-align:left}
th[aria-sort=ascending] button::after{content:" \\25B2"}th[aria-sort=descending] button::after{content:" \\25BC"}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.9rem}
.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-.05rem;border-radius:2px}
ul.changes{padding-left:1.1rem}ul.changes li{margin:.25rem 0}
input[type=search]{font:inherit;width:100%;max-width:28rem;padding:.4rem .5rem;border:1px solid #9aa3ad;border-radius:4px}
details{margin:.6rem 0}summary{cursor:pointer}
"""

# Builds the studies table from the page's data (each value as text, never as markup), sorts it by the header
# clicked (again: the other way), and keeps the rows that hold every word typed in the filter box.
_SCRIPT = """
(() => {
  const table = document.getElementById("studies"), data = JSON.parse(document.getElementById("report-data").textContent);
  const body = table.tBodies[0], headers = Array.from(table.tHead.rows[0].cells), studies = data.studies;
  const rows = studies.rows.map((study) => {
    const row = body.insertRow();
    study.forEach((value, i) => {
      const cell = row.insertCell();
      if (i === 0 && /^NCT[0-9]{8}$/.test(value)) {
        const link = cell.appendChild(document.createElement("a"));
        link.href = "https://clinicaltrials.gov/study/" + value;
        link.textContent = value;
      } else if (i === 2) {
        cell.dataset.v = value;
        cell.textContent = studies.statuses[value];
      } else {
        cell.textContent = value === null ? "" : value;
      }
    });
    return row;
  });
  const texts = rows.map((row) => row.textContent.toLowerCase());
  const filter = document.getElementById("filter"), shown = document.getElementById("shown");
  const key = (row, i, numeric) => {
    const cell = row.cells[i], v = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
    return numeric ? (v === "" ? -Infinity : Number(v)) : v.toLowerCase();
  };
  headers.forEach((th, i) => th.querySelector("button").addEventListener("click", () => {
    const up = th.getAttribute("aria-sort") !== "ascending", numeric = th.dataset.type === "num";
    headers.forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    const order = rows.map((row, n) => [key(row, i, numeric), n]);
    order.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0) * (up ? 1 : -1) || a[1] - b[1]);
    body.append(...order.map((pair) => rows[pair[1]]));
  }));
  filter.hidden = false;
  filter.addEventListener("input", () => {
    const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let count = 0;
    rows.forEach((row, n) => {
      row.hidden = !words.every((word) => texts[n].includes(word));
      count += row.hidden ? 0 : 1;
    });
    shown.textContent = count + " of " + rows.length + (rows.length === 1 ? " study" : " studies") + " shown";
  });
})();
"""


def text(value) -> str:
    """``value`` as HTML text or attribute content: on one line, control characters shown, and escaped."""
    return html.escape(visible("" if value is None else str(value)), quote=True)


def script_json(data) -> str:
    """``data`` as JSON that can sit inside a ``<script type="application/json">`` element: ``<``, ``>``,
    ``&``, U+2028 and U+2029 written as ``\\u`` escapes, so that no value can end the element or be read
    as markup, and the text is still the same JSON."""
    encoded = orjson.dumps(data).decode()
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        encoded = encoded.replace(char, escape)
    return encoded


def status_colour(status: str) -> str:
    """The colour of ``status`` in the charts."""
    return STATUS_COLOURS.get(status, OTHER_COLOUR)


def status_chart(statuses: list[dict]) -> str:
    """The counts by status (``status_report``'s ``statuses``) as a horizontal bar chart in SVG."""
    if not statuses:
        return '<p class="muted">No studies.</p>'
    width, left, row = 360, 158, 24
    most = max(entry["count"] for entry in statuses)
    bars = []
    for index, entry in enumerate(statuses):
        y = index * row
        length = max(1.0, (width - left - 40) * entry["count"] / most)
        bars.append(
            f'<g data-status="{text(entry["status"])}"><text x="{left - 8}" y="{y + 16}" text-anchor="end">'
            f'{text(entry["label"])}</text><rect x="{left}" y="{y + 4}" width="{length:.1f}" height="16" rx="2" '
            f'fill="{status_colour(entry["status"])}"/><text x="{left + length + 6:.1f}" y="{y + 16}">'
            f'{entry["count"]}</text></g>')
    return (f'<svg id="status-chart" viewBox="0 0 {width} {len(statuses) * row + 4}" role="img" '
            f'aria-labelledby="status-chart-title"><title id="status-chart-title">Studies by overall status</title>'
            f'{"".join(bars)}</svg>')


def _scale_top(most: int) -> int:
    """A round number at or above ``most`` (at least 2) for the top of a chart's axis: 2, 4, 5, 10, 20, 40, ..."""
    scale = 1
    while True:
        for step in (2, 4, 5, 10):
            if step * scale >= most:
                return step * scale
        scale *= 10


def history_chart(pulls: list[dict]) -> str:
    """Each status's count at each complete pull (``history``'s rows, oldest first) as a line chart in SVG,
    with its legend."""
    if not pulls:
        return '<p class="muted">No complete pull or import is recorded yet.</p>'
    statuses = sorted({s for pull in pulls for s in pull["statuses"]}, key=status_sort_key)
    width, height, left, right, top, bottom = 360, 200, 36, 10, 10, 32
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _scale_top(max((n for pull in pulls for n in pull["statuses"].values()), default=0))
    x = (lambda i: left + plot_w / 2) if len(pulls) == 1 else (lambda i: left + plot_w * i / (len(pulls) - 1))
    y = lambda n: top + plot_h * (1 - n / peak)  # noqa: E731
    parts = []
    for tick in (0, peak // 2, peak):
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    first, last = (pulls[0]["finished_at"] or "")[:10], (pulls[-1]["finished_at"] or "")[:10]
    parts.append(f'<text x="{left}" y="{height - 10}">{text(first)}</text>')
    if len(pulls) > 1:
        parts.append(f'<text x="{width - right}" y="{height - 10}" text-anchor="end">{text(last)}</text>')
    for status in statuses:
        colour = status_colour(status)
        points = [(x(i), y(pull["statuses"].get(status, 0))) for i, pull in enumerate(pulls)]
        if len(points) > 1:
            path = " ".join(f"{px:.0f},{py:.0f}" for px, py in line_points(points))
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        if len(pulls) <= HISTORY_POINTS:
            for (px, py), pull in zip(points, pulls):
                tip = f'{(pull["finished_at"] or "")[:16].replace("T", " ")}: {status_label(status)} ' \
                      f'{pull["statuses"].get(status, 0)}'
                parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"><title>{text(tip)}'
                             f'</title></circle>')
    legend = "".join(f'<li><span class="sw" style="background:{status_colour(s)}"></span>{text(status_label(s))}</li>'
                     for s in statuses)
    return (f'<svg id="history-chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="history-chart-title">'
            f'<title id="history-chart-title">Studies by overall status at each of {plural(len(pulls), "pull")}'
            f'</title>{"".join(parts)}</svg><ul class="legend">{legend}</ul>')


def line_points(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points a line through ``points`` needs: the inner points of a level run are left out."""
    return [point for i, point in enumerate(points)
            if i in (0, len(points) - 1) or not points[i - 1][1] == point[1] == points[i + 1][1]]


def _as_of(report: dict) -> str:
    if not report["as_of"]:
        return "No pull or import of this topic has completed yet."
    api = f"; API data of {report['data_timestamp']}" if report["data_timestamp"] else ""
    return f"Data as of {report['as_of']} (last successful pull or import{api})."


def _status_table(report: dict) -> str:
    rows = status_rows(report)
    has_previous = report.get("previous") is not None
    head = '<tr><th>Status</th><th class="n">Studies</th><th class="n">Share</th>' + \
           ('<th class="n">Change</th>' if has_previous else "") + "</tr>"
    body = "".join(
        f'<tr data-status="{text(r["status"])}"><td>{text(r["label"])}</td><td class="n count">{r["count"]}</td>'
        f'<td class="n">{text(r["percent"])}</td>' + (f'<td class="n">{text(r["change"])}</td>' if has_previous else "")
        + "</tr>" for r in rows)
    total = f'<tr class="total"><th>Total</th><td class="n" id="total">{report["total"]}</td><td></td>' + \
            ("<td></td>" if has_previous else "") + "</tr>"
    return f'<div class="scroll"><table id="status-counts"><thead>{head}</thead><tbody>{body}{total}</tbody></table></div>'


def _study_link(nct_id: str) -> str:
    if not is_nct_id(nct_id):
        return text(nct_id)
    return f'<a href="{study_url(nct_id)}">{nct_id}</a>'


def _changes(changes: list[dict], total: int) -> str:
    if not changes:
        return '<p class="muted">No changes in the last pulls.</p>'
    items = []
    for change in changes:
        words = describe_change(change)[len(change["nct_id"]) + 1:]
        title = f'<br><span class="muted">{text(change["brief_title"])}</span>' if change.get("brief_title") else ""
        items.append(f'<li><span class="muted">{text((change["observed_at"] or "")[:10])}</span> '
                     f'{_study_link(change["nct_id"])} {text(words)}{title}</li>')
    more = (f'<p class="muted">The newest {len(changes)} of {total} changes; '
            f'<code>trialsync changes</code> lists them all.</p>' if total > len(changes) else "")
    return f'<ul class="changes">{"".join(items)}</ul>{more}'


def _breakdown(found: dict, open_: bool) -> str:
    by = found["by"]
    labels = _VALUE_LABELS.get(by, {})
    rows = found["rows"][:BREAKDOWN_ROWS]
    statuses = sorted({s for row in found["rows"] for s in row["statuses"]}, key=status_sort_key)
    head = (f'<tr><th>{text(BREAKDOWN_HEADINGS.get(by, by))}</th><th class="n">Studies</th>'
            + "".join(f'<th class="n">{text(status_label(s))}</th>' for s in statuses) + "</tr>")
    body = "".join(
        f'<tr><td>{text((label(labels, row["value"]) if labels else row["value"]) or "(none)")}</td>'
        f'<td class="n">{row["total"]}</td>' + "".join(f'<td class="n">{row["statuses"].get(s, 0)}</td>' for s in statuses)
        + "</tr>" for row in rows)
    notes = []
    if len(found["rows"]) > len(rows):
        notes.append(f"{plural(len(found['rows']) - len(rows), 'more value')} not shown "
                     f"(<code>trialsync status-report --by {text(by)}</code> lists them all).")
    if found["multi"]:
        notes.append(f"A study with several values counts once in each: the rows can add up to more than "
                     f"{found['total']}.")
    note = f'<p class="muted">{" ".join(notes)}</p>' if notes else ""
    return (f'<details id="by-{text(by)}"{" open" if open_ else ""}><summary><h3>By '
            f'{text(BREAKDOWN_HEADINGS.get(by, by).lower())}</h3></summary><div class="scroll"><table>'
            f'<thead>{head}</thead><tbody>{body}</tbody></table></div>{note}</details>')


def studies_data(studies: list[dict]) -> dict:
    """The studies as the page's script builds its table from them: ``{"statuses": [label, ...], "rows":
    [[nct_id, title, status, phase, start, updated, enrollment, lead sponsor], ...]}``, where a row's status is
    its label's index (the labels in report order, so that the index sorts as the statuses do) and every text
    is made ``visible``."""
    statuses = sorted({study["overall_status"] for study in studies}, key=status_sort_key)
    index = {status: n for n, status in enumerate(statuses)}
    shown = lambda value: None if value is None else visible(str(value))  # noqa: E731
    rows = [[shown(study["nct_id"]), shown(study["brief_title"]), index[study["overall_status"]],
             shown(phases_label(", ".join(study["phases"] or []))), shown(study["start_date"]),
             shown(study["last_update_posted"]), study["enrollment_count"], shown(study["lead_sponsor"])]
            for study in studies]
    return {"statuses": [status_label(status) for status in statuses], "rows": rows}


def _studies(count: int) -> str:
    head = "".join(f'<th{" class=n data-type=num" if numeric else ""}{" aria-sort=ascending" if index == 0 else ""}>'
                   f'<button type="button">{name}</button></th>' for index, (name, numeric) in enumerate(STUDY_COLUMNS))
    return (f'<input id="filter" type="search" placeholder="Filter: words in any column" aria-label="Filter the studies" '
            f'hidden><p id="shown" class="muted">{plural(count, "study", "studies")}</p>'
            '<noscript><p>The table of the studies needs JavaScript; <code>trialsync list</code> prints them.</p>'
            f'</noscript><div class="scroll"><table id="studies"><thead><tr>{head}</tr></thead><tbody></tbody></table>'
            '</div>')


def _hash(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


def render_html(overview: dict) -> str:
    """The whole page of a topic's report (``reports.overview.topic_overview``'s dict), as text. The same
    data gives the same bytes: the page says when its data is from, never when it was written."""
    report = overview["status"]
    topic = text(overview["topic"])
    data = {key: report[key] for key in ("topic", "total", "as_of", "data_timestamp", "statuses")}
    data["studies"] = studies_data(overview["studies"])
    policy = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src '{_hash(_SCRIPT)}'; "
              "base-uri 'none'; form-action 'none'")
    breakdowns = "".join(_breakdown(found, by in ("phase", "study-type", "sponsor-class"))
                         for by, found in overview["breakdowns"].items())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<title>{topic}: trialsync report</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{topic}</h1>
<p id="summary">{text(overview["summary"])}.</p>
<p class="muted">{text(_as_of(report))}</p>
</header>
<main>
<section id="status"><h2>Studies by status</h2>
{status_chart(report["statuses"])}
{_status_table(report)}
</section>
<section id="history"><h2>Over time</h2>
{history_chart(overview["history"])}
</section>
<section id="changes"><h2>Recent changes</h2>
{_changes(overview["changes"], overview["changes_total"])}
</section>
<section id="breakdowns"><h2>Breakdowns</h2>
{breakdowns}
</section>
<section id="study-list"><h2>The studies</h2>
{_studies(len(overview["studies"]))}
</section>
</main>
<footer><p>Data: ClinicalTrials.gov, U.S. National Library of Medicine. Written by trialsync {text(__version__)}.</p></footer>
<script type="application/json" id="report-data">{script_json(data)}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
