"""The report in a real browser: headless Chromium over the DevTools protocol (tests/report/cdp.py).

Skipped when no Chromium is installed, unless HPCDIST_REQUIRE_CHROMIUM=1 (CI) makes that a failure.
"""

from __future__ import annotations

import csv
import os

import pytest

from cdp import Browser, find_chromium
from hpcdist.report import write_report
from hpcdist.report.figures import collect, figures, gantt
from hpcdist.report.html import render
from hpcdist.trace.format import RUN, Session


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        message = "no chromium on PATH (Debian: apt-get install chromium)"
        if os.environ.get("HPCDIST_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message + " [HPCDIST_REQUIRE_CHROMIUM=1 makes this a failure]", pytrace=False)
        pytest.skip(message)
    return exe


TIP = "document.getElementById('tip')"


@pytest.mark.timeout(180)
def test_the_report_renders_one_row_per_rank_and_hover_names_the_task(chromium, run_dir, tmp_path):
    path, keys = run_dir
    fig = write_report(path, tmp_path / "report.html")
    with open(tmp_path / "tasks.csv", newline="") as fh:
        durations = {r["key"]: float(r["duration"]) for r in csv.DictReader(fh)}
    with Browser(chromium) as browser:
        browser.open((tmp_path / "report.html").as_uri())
        assert browser.errors() == []
        assert browser.evaluate("document.getElementById('gantt').dataset.drawn") == "1"
        rows = browser.evaluate("document.getElementById('gantt').dataset.rows")
        assert rows == "3" == str(len(fig["ranks"]))
        data = "JSON.parse(document.getElementById('gantt-data').textContent)"
        runs = browser.evaluate(f"(function (D) {{ return D.f.filter(function (f) {{ "
                                f"return D.fns[f] !== 'dispatch'; }}).length; }})({data})")
        assert runs == 200 and browser.evaluate("hpcdistGantt.tasks") == browser.evaluate(f"{data}.s.length")
        assert browser.evaluate(f"getComputedStyle({TIP}).display") == "none"
        task = browser.evaluate("hpcdistGantt.longest()")
        key = browser.evaluate(f"{data}.k[{task}]")
        assert key in keys
        point = browser.evaluate(f"hpcdistGantt.point({task})")
        browser.mouse_move(point["x"], point["y"])
        assert browser.evaluate(f"getComputedStyle({TIP}).display") == "block"
        text = browser.evaluate(f"{TIP}.textContent")
        assert key in text and text.split()[0].rsplit(".", 1)[-1] == key.split("-")[0]  # e.g. "m.add add-..."
        assert browser.evaluate(f"{TIP}.dataset.task") == str(task)
        # zoom in around it (a real wheel event): it is still there, wider, and hover still names it
        browser.call("Input.dispatchMouseEvent", {"type": "mouseWheel", "x": point["x"], "y": point["y"],
                                                  "deltaX": 0, "deltaY": -600})
        browser.mouse_move(1, 1)
        assert browser.evaluate(f"getComputedStyle({TIP}).display") == "none"
        point = browser.evaluate(f"hpcdistGantt.point({task})")
        browser.mouse_move(point["x"], point["y"])
        assert key in browser.evaluate(f"{TIP}.textContent")
        browser.screenshot(tmp_path / "report.png")
        assert browser.errors() == []
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert durations[key] > 0


@pytest.mark.timeout(180)
def test_a_report_of_a_hundred_thousand_tasks_draws_without_errors(chromium, tmp_path):
    n, workers = 100_000, 4
    sessions = [Session({"rank": 0, "host": "h", "role": "scheduler", "size": workers + 1,
                         "clock": {"wall_ns": 0, "perf_ns": 0}}, [], {})]
    for w in range(1, workers + 1):
        runs = [(RUN, i * 1000, i * 1000 + 700, f"t-{i}", "f") for i in range(w - 1, n, workers)]
        sessions.append(Session({"rank": w, "host": "h", "role": "worker", "clock": {"wall_ns": 0, "perf_ns": 0}},
                                runs, {"f": "m.work"}))
    line = collect(sessions)
    (tmp_path / "big.html").write_text(render(figures(line), gantt(line)))
    with Browser(chromium, timeout=120) as browser:
        browser.open((tmp_path / "big.html").as_uri())
        assert browser.evaluate("document.getElementById('gantt').dataset.drawn") == "1"
        assert browser.evaluate("hpcdistGantt.tasks") == n
        assert browser.evaluate("document.getElementById('gantt').dataset.rows") == str(workers + 1)
        point = browser.evaluate("hpcdistGantt.point(12345)")
        browser.mouse_move(point["x"], point["y"])
        assert "m.work t-" in browser.evaluate(f"{TIP}.textContent")
        assert browser.errors() == []
