"""Charts in the terminal: bars of status-report --chart, sparklines of history --chart and of the status
report's table, proportional to the counts, within 80 columns, and plain characters through a pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import with_status
from trialsync.render import charts

ROOT = Path(__file__).parent.parent
SAMPLE = ROOT / "data" / "stem-cell-spine-sample.json"
SAMPLE_COUNTS = {"Not yet recruiting": 2, "Recruiting": 3, "Completed": 2}


def bars(out: str) -> dict[str, int]:
    """Each bar line's label and the length of its bar."""
    found = {}
    for line in out.splitlines():
        if charts.BAR in line:
            label, _, rest = line.partition(charts.BAR)
            found[label.strip()] = rest.count(charts.BAR) + 1
    return found


@pytest.fixture
def later_import(cli, tmp_path):
    """The sample imported, then again with one recruiting study completed and one terminated."""
    assert cli("import", str(SAMPLE)).code == 0
    records = json.loads(SAMPLE.read_text())
    recruiting = [r for r in records if r["protocolSection"]["statusModule"]["overallStatus"] == "RECRUITING"]
    changed = {recruiting[0]["protocolSection"]["identificationModule"]["nctId"]: "COMPLETED",
               recruiting[1]["protocolSection"]["identificationModule"]["nctId"]: "TERMINATED"}
    later = [with_status(r, changed[r["protocolSection"]["identificationModule"]["nctId"]])
             if r["protocolSection"]["identificationModule"]["nctId"] in changed else r for r in records]
    path = tmp_path / "later.json"
    path.write_text(json.dumps(later))
    assert cli("import", str(path)).code == 0
    return cli


def test_sparkline_heights_follow_the_values():
    assert charts.sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert charts.sparkline([10, 5, 0]) == "█▅▁"  # round(3.5) is 4: ▅
    assert charts.sparkline([1, 1000]) == "▂█"  # a count above 0 never looks like nothing
    assert charts.sparkline([0, 0]) == "▁▁" and charts.sparkline([]) == ""


def test_bar_chart_is_proportional_and_fits_the_width():
    lines = charts.bar_chart([("Recruiting", 40), ("Completed", 10), ("Withdrawn", 0), ("Suspended", 1)], 80)
    assert all(len(line) <= 80 for line in lines) and len(lines) == 4
    lengths = [line.count(charts.BAR) for line in lines]
    room = 80 - len("Recruiting") - 2 - 2
    assert lengths == [room, round(room / 4), 0, round(room / 40)]
    assert lines[0].startswith("Recruiting ") and lines[0].endswith(" 40") and lines[2].endswith("  0")
    assert charts.bar_chart([], 80) == []


def test_bar_chart_labels_are_made_visible():
    line = charts.bar_chart([("MADE\x1b[31mUP", 1)], 40)[0]
    assert "\x1b" not in line


def test_status_report_chart_draws_proportional_bars(cli):
    assert cli("import", str(SAMPLE)).code == 0
    result = cli("status-report", "--chart")
    assert result.code == 0 and result.err == "", result
    assert "\x1b" not in result.out
    assert result.out.startswith("stem-cell-spine: 7 studies: 2 not yet recruiting, 3 recruiting, 2 completed.\n")
    drawn = bars(result.out)
    assert set(drawn) == set(SAMPLE_COUNTS)
    longest = drawn["Recruiting"]
    for label, count in SAMPLE_COUNTS.items():
        assert drawn[label] == round(count * longest / 3), (label, drawn)
    assert all(len(line) <= 80 for line in result.out.splitlines() if charts.BAR in line)  # COLUMNS=200: still 80
    assert "Data as of" in result.out


def test_charts_through_a_pipe_are_plain_characters(cli, tmp_path):
    assert cli("import", str(SAMPLE)).code == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    for args in (["status-report", "--chart"], ["status-report", "--chart", "--format", "table"],
                 ["history", "--chart", "--format", "table"]):
        done = subprocess.run([sys.executable, "-m", "trialsync", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done
        assert "\x1b" not in done.stdout and done.stderr == ""
        assert all(len(line) <= 80 for line in done.stdout.splitlines())
        if "status-report" in args:
            drawn = bars(done.stdout)
            assert drawn["Not yet recruiting"] == drawn["Completed"] == round(2 * drawn["Recruiting"] / 3)


def test_history_chart_draws_each_status_over_time(later_import):
    result = later_import("history", "--chart")
    assert result.code == 0 and "\x1b" not in result.out, result
    lines = result.out.splitlines()
    assert lines[0].startswith("stem-cell-spine: each status at its 2 complete pulls, ")
    rows = {line[:19].strip(): line[19:].split() for line in lines[1:]}
    assert rows == {"Not yet recruiting": ["██", "2", "→", "2"], "Recruiting": ["█▃", "3", "→", "1"],
                    "Terminated": ["▁█", "0", "→", "1"], "Completed": ["▆█", "2", "→", "3"],
                    "Total": ["██", "7", "→", "7"]}


def test_status_report_table_has_a_sparkline_of_the_last_pulls(later_import):
    lines = later_import("status-report").out.splitlines()
    assert lines[1].split()[-3:] == ["Last", "2", "pulls"]
    assert [line.split()[-1] for line in lines[2:7]] == ["██", "█▃", "▁█", "▆█", "██"]


def test_one_pull_has_no_sparkline_column(cli):
    assert cli("import", str(SAMPLE)).code == 0
    assert "Last" not in cli("status-report").out


def test_chart_refuses_a_format_it_cannot_draw_in_and_other_views(cli):
    assert cli("import", str(SAMPLE)).code == 0
    for args in (["status-report", "--chart", "-f", "json"], ["history", "--chart", "-f", "csv"],
                 ["status-report", "--chart", "--by", "phase"], ["status-report", "--chart", "--all"]):
        result = cli(*args)
        assert result.code == 2 and len(result.err.splitlines()) == 1 and "--chart" in result.err, (args, result)


def test_trend_chart_keeps_the_newest_values_that_fit():
    values = list(range(100))
    shown, lines = charts.trend_chart([("Recruiting", values), ("Total", [1] * 100)], 40)
    assert all(len(line) <= 40 for line in lines)
    assert shown == 40 - len("Recruiting") - (2 * 2 + 3) - 2  # "99 → 99" at the widest
    assert lines[0].endswith(f" {100 - shown} → 99") and lines[1].endswith("1 → 1")
    assert lines[0].split()[1] == charts.sparkline(values[-shown:])
