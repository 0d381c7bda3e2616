"""``trialsync report --html``: one page that opens offline, opened in headless Chromium (Debian's ``chromium``,
driven by playwright, a test dependency): no console or page error, no request but the file itself, the
counts of ``status-report --format json``, sorting and filtering that work, a phone's width without
sideways scrolling, and a record whose title is markup staying text. Without chromium or playwright those
tests skip, saying why; the rest (escaping, size, the command's refusals) run anyway.

One database, one page and one browser serve the whole module."""

from __future__ import annotations

import copy
import json
import re
import shutil
from html.parser import HTMLParser

import pytest

from conftest import SPINE_CONDITION_IDS, ModuleCli, fixture_record, pull_spine_twice
from fakeapi import Corpus, FakeApi, clone_id, load_fixture_records

from trialsync.ids import nct_id_of
from trialsync.render.html import line_points, render_html, script_json, text
from trialsync.reports.overview import RECENT_CHANGES
from trialsync.statuses import status_label, status_sort_key

HOSTILE_ID = "NCT05305430"
# What a registry record could hold in its title: markup that must stay text.
HOSTILE_TITLE = '<script>window.__pwned = 1</script>"><img src=x onerror="window.__pwned = 2">'
HOSTILE_SPONSOR = "</td></tr></table><b onmouseover=alert(1)>Acme & Co"


# Every element the page is made of: a record's text adds none.
PAGE_TAGS = {"html", "head", "meta", "title", "link", "style", "body", "header", "h1", "h2", "h3", "p", "main",
             "section", "svg", "g", "text", "rect", "line", "polyline", "circle", "ul", "li", "span", "div", "table",
             "thead", "tbody", "tr", "th", "td", "a", "br", "code", "details", "summary", "input", "button",
             "footer", "script", "noscript"}


def parsed_tags(source: str) -> list[tuple[str, dict]]:
    """Each start tag of ``source`` with its attributes, as an HTML parser reads them."""
    tags = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, dict(attrs)))

    Parser().feed(source)
    return tags


Cli = ModuleCli


def hostile_record() -> dict:
    """A real spine record whose title and lead sponsor were changed (here, in the test) into markup."""
    record = fixture_record(HOSTILE_ID)
    protocol = record["protocolSection"]
    protocol["identificationModule"]["briefTitle"] = HOSTILE_TITLE
    protocol["sponsorCollaboratorsModule"]["leadSponsor"]["name"] = HOSTILE_SPONSOR
    return record


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Topic 'spine' pulled twice from the stand-in API (a study terminated, one leaving, between the pulls),
    one of its records serving a title and sponsor of markup; the 139 other real records imported as topic
    'all';
    the report of 'spine' written. Yields (cli, the page's path)."""
    from trialsync import dates

    tmp = tmp_path_factory.mktemp("report")
    cli = Cli({"TRIALSYNC_DB": str(tmp / "r.db"), "TRIALSYNC_RATE": "0", "COLUMNS": "200"})
    clock = {"now": "2026-11-19T10:00:00Z"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dates, "utc_now", lambda: clock["now"])
        records = [fixture_record(i) for i in SPINE_CONDITION_IDS if i != HOSTILE_ID] + [hostile_record()]
        with FakeApi(Corpus(records)) as server:
            pull_spine_twice(cli, server, clock)
        path = tmp / "all.json"
        # the real record of the study whose title is markup would replace it: it stays out
        path.write_text(json.dumps([r for r in load_fixture_records() if nct_id_of(r) != HOSTILE_ID]))
        assert cli("import", str(path), "--topic", "all").code == 0
    page = tmp / "spine.html"
    result = cli("report", "spine", "--html", str(page))
    assert result.code == 0, result.err
    assert result.err == f"trialsync: wrote the report of spine (12 studies) to {page}\n"
    yield cli, page


# -- without a browser ---------------------------------------------------------------------------------------


def test_json_for_a_script_element_escapes_what_could_end_it():
    data = {"title": "</script><script>alert(1)</script> & \u2028\u2029 >"}
    encoded = script_json(data)
    assert not set(encoded) & {"<", ">", "&", "\u2028", "\u2029"}
    assert "\\u003c/script\\u003e" in encoded and "\\u0026" in encoded and "\\u2028\\u2029" in encoded
    assert json.loads(encoded) == data


def test_text_is_escaped_and_on_one_line():
    assert text('<b a="1">\x1b[31m\n&') == "&lt;b a=&quot;1&quot;&gt;\\x1b[31m &amp;"
    assert text(None) == ""


def test_a_level_run_of_the_history_chart_is_one_segment():
    points = [(0, 5), (1, 5), (2, 5), (3, 6), (4, 6), (5, 6), (6, 6), (7, 5)]
    assert line_points(points) == [(0, 5), (2, 5), (3, 6), (6, 6), (7, 5)]
    assert line_points(points[:2]) == points[:2]


def test_the_page_keeps_record_markup_as_text(built):
    _, page = built
    source = page.read_text()
    assert HOSTILE_TITLE not in source and "<img" not in source and "</td></tr></table><b" not in source
    assert script_json(HOSTILE_TITLE) in source and script_json(HOSTILE_SPONSOR) in source
    tags = parsed_tags(source)
    assert [attrs for tag, attrs in tags if tag == "script"] == [{"type": "application/json", "id": "report-data"}, {}]
    data = json.loads(source.split('<script type="application/json" id="report-data">')[1].split("</script>")[0])
    assert [HOSTILE_ID, HOSTILE_TITLE] in [row[:2] for row in data["studies"]["rows"]]
    assert {tag for tag, _ in tags} <= PAGE_TAGS
    links = [value for _, attrs in tags for name, value in attrs.items() if name in ("href", "src")]
    assert links[0] == "data:," and all(re.fullmatch(r"https://clinicaltrials\.gov/study/NCT\d{8}", link)
                                        for link in links[1:]), links
    assert not [name for _, attrs in tags for name in attrs if name.startswith("on")]


def test_the_page_is_the_same_bytes_for_the_same_data(built):
    cli, page = built
    again = page.with_name("again.html")
    assert cli("report", "spine", "--html", str(again)).code == 0
    assert again.read_bytes() == page.read_bytes()


def test_report_refuses_an_existing_file_and_the_database(built, tmp_path):
    cli, page = built
    before = page.read_bytes()
    result = cli("report", "spine", "--html", str(page))
    assert result.code == 2 and "exists; choose another file or add --force" in result.err
    assert page.read_bytes() == before
    database = cli.env["TRIALSYNC_DB"]
    result = cli("report", "spine", "--html", database, "--force")
    assert result.code == 2 and "is part of the database" in result.err
    assert cli("report", "spine", "--html", str(page), "--force").code == 0
    assert page.read_bytes() == before


def test_report_to_standard_output(built):
    cli, page = built
    result = cli("report", "spine", "--html", "-")
    assert result.code == 0 and result.out == page.read_text() and result.err == ""


def test_a_topic_never_pulled_still_gives_a_page(tmp_path):
    cli = Cli({"TRIALSYNC_DB": str(tmp_path / "empty.db"), "TRIALSYNC_RATE": "0"})
    assert cli("topics", "add", "nothing", "--condition", "nothing").code == 0
    result = cli("report", "nothing", "--html", "-")
    assert result.code == 0
    assert "No studies." in result.out and "No complete pull or import is recorded yet." in result.out
    assert '<p id="shown" class="muted">0 studies</p>' in result.out


def test_a_thousand_studies_stay_under_300_kb(built):
    """The topic 'all' (139 real records), its rows repeated with new NCT ids (the reserved range) up to 1,000
    studies, as many changes as the page shows and a year of daily pulls whose counts move every day: the page
    stays under 300 KB."""
    from trialsync.reports.overview import topic_overview
    from trialsync.store import open_for_reading

    cli, _ = built
    overview = topic_overview(open_for_reading(cli.env["TRIALSYNC_DB"]), "all")
    real = overview["studies"]
    assert len(real) == 139
    overview["studies"] = [{**real[i % len(real)], "nct_id": clone_id(i)} for i in range(1000)]
    spine = topic_overview(open_for_reading(cli.env["TRIALSYNC_DB"]), "spine")
    assert spine["changes"]
    overview["changes"] = [copy.deepcopy(spine["changes"][i % len(spine["changes"])]) for i in range(RECENT_CHANGES)]
    overview["changes_total"] = 2 * RECENT_CHANGES
    day = overview["history"][0]
    assert len(day["statuses"]) >= 8
    overview["history"] = [{**day, "finished_at": f"2026-{1 + i // 31:02d}-{1 + i % 28:02d}T10:00:00Z",
                            "statuses": {s: n + i % 3 for s, n in day["statuses"].items()}} for i in range(365)]
    size = len(render_html(overview).encode())
    assert size < 300_000, size


# -- in Chromium -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module: Debian's ``chromium``, driven by playwright."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (a test dependency) is not installed")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def opened(built, browser):
    """The report open in a page 1280 px wide, for the module; yields (page, console messages, page errors,
    requests)."""
    _, path = built
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    messages, errors, requests = [], [], []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    yield page, messages, errors, requests
    context.close()


def test_the_page_loads_offline_without_an_error(opened, built):
    page, messages, errors, requests = opened
    page.wait_for_load_state("load")
    assert messages == [] and errors == []
    assert requests and all(url == built[1].as_uri() or url.startswith("data:") for url in requests), requests
    assert page.evaluate("window.__pwned") is None


def test_the_page_shows_the_counts_of_status_report(opened, built):
    cli, _ = built
    page = opened[0]
    result = cli("status-report", "spine", "--format", "json")
    assert result.code == 0
    report = json.loads(result.out)
    shown = page.evaluate("""() => Array.from(document.querySelectorAll('#status-counts tr[data-status]'),
        (row) => [row.dataset.status, Number(row.querySelector('.count').textContent)])""")
    assert shown == [[entry["status"], entry["count"]] for entry in report["statuses"]]
    assert int(page.text_content("#total")) == report["total"] == 12
    bars = page.evaluate("""() => Array.from(document.querySelectorAll('#status-chart g[data-status]'),
        (bar) => [bar.dataset.status, Number(bar.querySelectorAll('text')[1].textContent)])""")
    assert bars == shown
    data = json.loads(page.text_content("#report-data"))
    assert data["statuses"] == report["statuses"] and data["total"] == report["total"]
    pulls = json.loads(cli("history", "spine", "--format", "json").out)["pulls"]
    assert len(pulls) == 2
    dots = page.evaluate("() => Array.from(document.querySelectorAll('#history-chart circle title'), (t) => t.textContent)")
    statuses = sorted({s for pull in pulls for s in pull["statuses"]}, key=status_sort_key)
    assert dots == [f"{pull['finished_at'][:16].replace('T', ' ')}: {status_label(s)} {pull['statuses'].get(s, 0)}"
                    for s in statuses for pull in pulls]
    assert page.text_content("#summary").startswith("12 studies: ")


def test_the_page_lists_the_recent_changes_of_the_change_log(opened, built):
    cli, _ = built
    logged = json.loads(cli("changes", "spine", "--pulls", "10", "--format", "json").out)
    assert [c["field"] for c in logged] == ["overall_status", "membership"]
    shown = opened[0].evaluate("() => Array.from(document.querySelectorAll('#changes li'), (item) => "
                               "[item.querySelector('a').textContent, item.textContent])")
    assert [nct_id for nct_id, _ in shown] == [c["nct_id"] for c in logged]
    assert "status: Recruiting -> Terminated" in shown[0][1] and "left the topic" in shown[1][1]


def test_a_title_of_markup_stays_text_in_the_page(opened):
    page = opened[0]
    row = page.locator("#studies tbody tr", has=page.locator(f'a[href$="{HOSTILE_ID}"]'))
    assert row.locator("td").nth(1).text_content() == HOSTILE_TITLE
    assert row.locator("td").nth(7).text_content() == HOSTILE_SPONSOR
    assert page.evaluate("document.querySelectorAll('img, b').length") == 0
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("window.__pwned") is None


def _column(page, index: int) -> list[str]:
    return page.evaluate(f"""() => Array.from(document.querySelectorAll('#studies tbody tr:not([hidden])'),
        (row) => row.cells[{index}].textContent)""")


def _rows(page) -> list[str]:
    return page.evaluate("() => Array.from(document.querySelectorAll('#studies tbody tr:not([hidden])'), "
                         "(row) => row.textContent)")


def test_the_studies_sort_by_the_header_clicked_and_filter_by_words(opened):
    page = opened[0]
    page.reload()
    ids = _column(page, 0)
    assert ids == sorted(ids) and len(ids) == 12
    assert all(page.get_attribute(f'#studies a[href$="{i}"]', "href") == f"https://clinicaltrials.gov/study/{i}"
               for i in ids)
    enrollment = lambda: [int(c) if c else -1 for c in _column(page, 6)]  # noqa: E731
    before = enrollment()
    assert before != sorted(before)
    page.click("#studies th:nth-child(7) button")  # Enrollment
    assert enrollment() == sorted(before)
    assert page.get_attribute("#studies th:nth-child(7)", "aria-sort") == "ascending"
    page.click("#studies th:nth-child(7) button")
    assert enrollment() == sorted(before, reverse=True)
    assert page.get_attribute("#studies th:nth-child(7)", "aria-sort") == "descending"
    before = _column(page, 1)
    page.click("#studies th:nth-child(2) button")  # Title
    assert _column(page, 1) == sorted(before, key=str.lower) != before

    every = _rows(page)
    page.fill("#filter", "terminated")
    assert _column(page, 2) == ["Terminated"]
    assert page.text_content("#shown") == "1 of 12 studies shown"
    page.fill("#filter", "  lumbar DISC ")
    expected = [row for row in every if "lumbar" in row.lower() and "disc" in row.lower()]
    assert len(expected) == 4 and _rows(page) == expected
    assert page.text_content("#shown") == "4 of 12 studies shown"
    page.fill("#filter", "")
    assert _rows(page) == every


@pytest.mark.parametrize("width", [390, 1280])
def test_screenshots_at_a_phone_and_a_desktop_width(built, browser, width, tmp_path):
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(built[1].as_uri())
    shot = page.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    if width == 390:  # the wide table scrolls inside its own box, not the page
        assert page.evaluate("document.querySelector('#studies').scrollWidth > innerWidth")
    context.close()


def test_the_history_chart_runs_left_to_right_from_the_first_pull_to_the_last():
    """Three pulls a month apart: their points sit evenly from the plot's left edge to its right edge, at the
    height of their counts, and the axis names the first pull's date and the last's."""
    from trialsync.render.html import history_chart

    pulls = [{"finished_at": f"2026-0{month}-01T09:00:00", "statuses": {"RECRUITING": count}}
             for month, count in ((1, 4), (2, 10), (3, 0))]
    svg = history_chart(pulls)
    points = [(float(x), float(y)) for x, y in re.findall(r'<circle cx="([0-9.]+)" cy="([0-9.]+)"', svg)]
    # width 360 less margins 36 and 10; height 200 less margins 10 and 32; the axis tops at 10
    assert points == [(36.0, 10 + 158 * (1 - 4 / 10)), (193.0, 10.0), (350.0, 168.0)]
    labels = re.findall(r'<text x="[0-9.]+" y="190"[^>]*>([^<]*)</text>', svg)
    assert labels == ["2026-01-01", "2026-03-01"]
    assert "Studies by overall status at each of 3 pulls" in svg


def table_cells(source: str) -> tuple[list[list[str]], list[str]]:
    """Each table row's cell texts, and any text inside a table that is in no cell (which a browser shows
    above the table)."""
    rows: list[list[str]] = []
    stray: list[str] = []
    depth = {"table": 0, "cell": 0}

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "table":
                depth["table"] += 1
            elif tag == "tr":
                rows.append([])
            elif tag in ("td", "th"):
                depth["cell"] += 1
                rows[-1].append("")

        def handle_endtag(self, tag):
            if tag == "table":
                depth["table"] -= 1
            elif tag in ("td", "th"):
                depth["cell"] -= 1

        def handle_data(self, data):
            if depth["cell"]:
                rows[-1][-1] += data
            elif depth["table"] and data.strip():
                stray.append(data)

    Parser().feed(source)
    return rows, stray


def test_a_breakdown_table_holds_its_counts_in_cells_and_nothing_between_them():
    from trialsync.render.html import _breakdown

    found = {"by": "phase", "total": 5, "multi": True,
             "rows": [{"value": "PHASE2", "total": 3, "statuses": {"RECRUITING": 2, "COMPLETED": 1}},
                      {"value": None, "total": 2, "statuses": {"RECRUITING": 2}}]}
    rows, stray = table_cells(_breakdown(found, open_=True))
    assert rows == [["Phase", "Studies", "Recruiting", "Completed"], ["Phase 2", "3", "2", "1"],
                    ["(none)", "2", "2", "0"]]
    assert stray == []
