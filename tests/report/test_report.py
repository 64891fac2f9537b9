"""``hpcdist report``: the three files from a real traced run, partial runs, a missing trace, 10^5 tasks."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest

from hpcdist.cli import main
from hpcdist.errors import HpcdistError
from hpcdist.paths import trace_files
from hpcdist.report import write_report
from hpcdist.report.figures import collect, figures, gantt
from hpcdist.report.html import render
from hpcdist.trace.format import PLACE, RUN, Session


@pytest.mark.timeout(120)
def test_report_of_a_real_run_writes_html_json_and_csv(run_dir, tmp_path):
    path, keys = run_dir
    out = tmp_path / "out" / "r.html"
    fig = write_report(path, out)
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == fig
    s = fig["summary"]
    assert (s["tasks"], s["runs"], s["ranks"], s["unfinished"], s["complete"]) == (200, 200, 3, 0, True)
    assert s["failed"] is None and s["bytes_moved"] > 0 and s["wall_s"] > 0
    assert {f["function"].rsplit(".", 1)[-1]: f["count"] for f in fig["functions"]} == {"inc": 100, "add": 100}
    assert sum(map(sum, fig["bytes_matrix"]["bytes"])) == s["bytes_moved"]
    assert [r["rank"] for r in fig["ranks"]] == [0, 1, 2] and sum(r["tasks"] for r in fig["ranks"]) == 200
    with open(tmp_path / "out" / "tasks.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["key"] for r in rows} == keys and len(rows) == 200
    assert all(float(r["end"]) >= float(r["start"]) >= 0 and r["rank"] in ("1", "2") for r in rows)
    html = out.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)  # self-contained: nothing to fetch
    assert 'data-rows="3"' in html and "Bytes moved between ranks" in html


@pytest.mark.timeout(120)
def test_the_cli_writes_the_report_in_the_run_directory(run_dir, tmp_path, capsys):
    path, _ = run_dir
    copy = tmp_path / "run"
    shutil.copytree(path, copy)
    main(["report", str(copy)])
    out = capsys.readouterr().out
    assert "200 tasks on 3 ranks" in out and "(complete)" in out
    assert {p.name for p in copy.iterdir()} >= {"report.html", "report.json", "tasks.csv"}
    main(["report", str(copy), "-o", str(tmp_path / "elsewhere" / "x.html")])
    assert capsys.readouterr().out.startswith(str(tmp_path / "elsewhere" / "x.html"))
    assert {p.name for p in (tmp_path / "elsewhere").iterdir()} == {"x.html", "report.json", "tasks.csv"}


def test_a_directory_without_a_trace_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path)])
    assert exc.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no trace files (rank-N.trace)" in err and str(tmp_path) in err
    with pytest.raises(HpcdistError, match="rank-N.trace"):
        write_report(tmp_path)


@pytest.mark.timeout(120)
def test_a_run_cut_short_still_reports_and_says_so(run_dir, tmp_path):
    path, _ = run_dir
    copy = tmp_path / "run"
    shutil.copytree(path, copy)
    for rank, file in trace_files(copy / "trace"):
        if rank:  # the workers died: their traces end after the header and half a chunk
            data = file.read_bytes()
            header_end = 8 + int.from_bytes(data[4:8], "little")
            file.write_bytes(data[:header_end + 20])
    (copy / "manifest.json").write_text(json.dumps({"final": False, "tasks": {
        "t.3": {"status": "failed", "error": "KeyError: 'x'", "rank": 2, "attempts": 1,
                "traceback": "Traceback\nKeyError"},
        "t.4": {"status": "running"}}}))
    fig = write_report(copy)
    s = fig["summary"]
    assert s["complete"] is False and s["runs"] == 0 and s["unfinished"] == 200 and s["failed"] == 1
    assert any("not final" in n for n in s["notes"]) and any("placed but never run" in n for n in s["notes"])
    html = (copy / "report.html").read_text()
    assert "the manifest is not final" in html and "KeyError: &#x27;x&#x27;" in html
    assert (copy / "tasks.csv").read_text().splitlines() == ["key,function,rank,start,end,duration"]


def test_a_trace_with_no_session_is_an_error(tmp_path):
    (tmp_path / "trace").mkdir()
    (tmp_path / "trace" / "rank-0.trace").write_bytes(b"")
    with pytest.raises(HpcdistError, match="no session"):
        write_report(tmp_path)


def test_page_text_is_escaped():
    sessions = [Session({"rank": 0, "host": "<h>", "role": "scheduler", "clock": {"wall_ns": 0, "perf_ns": 0}},
                        [(RUN, 0, 10, "</script><b>", "f")], {"f": "<i>fn"})]
    line = collect(sessions)
    html = render(figures(line), gantt(line))
    assert "</script><b>" not in html and "<i>fn" not in html and "&lt;i&gt;fn" in html


def test_a_hundred_thousand_tasks_stay_compact_arrays_not_dom_nodes():
    n, workers = 100_000, 8
    sched = [(PLACE, i * 1000, i * 1000 + 10, 1 + i % workers, [f"t-{i}"]) for i in range(n)]
    ranks = [Session({"rank": 0, "host": "h", "role": "scheduler", "size": workers + 1,
                      "clock": {"wall_ns": 0, "perf_ns": 0}}, sched, {})]
    for w in range(1, workers + 1):
        runs = [(RUN, i * 1000 + 20, i * 1000 + 900, f"t-{i}", "f") for i in range(w - 1, n, workers)]
        ranks.append(Session({"rank": w, "host": "h", "role": "worker", "clock": {"wall_ns": 0, "perf_ns": 0}},
                             runs, {"f": "pkg.module.work"}))
    line = collect(ranks)
    fig = figures(line)
    assert fig["summary"]["tasks"] == n and fig["summary"]["complete"]
    html = render(fig, gantt(line))
    keys = sum(len(f"t-{i}") + 3 for i in range(n))  # each key once, quoted, with its comma
    slices = 2 * n  # runs and rank 0's rounds
    assert len(html) < keys + slices * 30 + 50_000  # a few digits per number, no markup per task
    assert html.count("<tr") < 50 and html.count("<div") < 10  # the tasks are not DOM nodes
    assert html.count("pkg.module.work") <= 3  # function names interned, not repeated per task
