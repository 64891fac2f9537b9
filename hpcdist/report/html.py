"""The report's figures -> one self-contained HTML page (inline CSS and JS: no server, no CDN).

The tables are HTML; the Gantt is drawn by a small script (``gantt.js``, inlined) on a ``<canvas>``
from the column arrays of :func:`hpcdist.report.figures.gantt`, held once in a
``<script type="application/json">``: a run of 10^5 tasks is 10^5 array entries, not DOM nodes.
"""

from __future__ import annotations

import json
from html import escape
from importlib import resources
from typing import Any

__all__ = ["render"]

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.4em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.notes{color:#a40000}.ok{color:#1a7f37}
#gantt-box{position:relative;width:100%;overflow:hidden;border:1px solid #ddd}canvas{display:block;cursor:crosshair}
#tip{position:absolute;display:none;background:#222;color:#fff;padding:3px 6px;border-radius:3px;
font-size:12px;pointer-events:none;white-space:nowrap;z-index:2}pre{background:#f6f6f6;padding:6px;overflow:auto}
.hint{color:#666;font-size:12px}
"""


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _table(head: list[str], rows: list[list[Any]], left: int = 1) -> str:
    """A table; the first ``left`` columns are left-aligned text."""
    def cell(tag: str, i: int, value: Any) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{escape(str(value))}</{tag}>"
    out = ["<table>" + ("<tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + "</tr>" if head else "")]
    out += ["<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows]
    return "".join(out) + "</table>"


def _summary(fig: dict[str, Any], title: str) -> str:
    s = fig["summary"]
    rows = [["wall time", f"{s['wall_s']:.3f} s"], ["ranks", s["ranks"]], ["tasks", s["tasks"]],
            ["task runs", s["runs"]], ["re-runs (recomputed)", s["reruns"]],
            ["placed on a lost worker, run elsewhere", s["recovered"]],
            ["placed, never run", s["unfinished"]],
            ["failed", "no manifest" if s["failed"] is None else s["failed"]],
            ["bytes moved", f"{_bytes(s['bytes_moved'])} in {s['fetches']} fetches"],
            ["workers lost", s["workers_lost"]]]
    status = ('<p class="ok">complete: every task placed ran, nothing failed or was lost</p>' if s["complete"] else
              '<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in s["notes"]) + "</ul>")
    util = _table(["rank", "host", "role", "tasks", "busy", "utilisation"],
                  [[r["rank"], r["host"], r["role"], r["tasks"], f"{r['busy_s']:.3f} s",
                    f"{100 * r['utilisation']:.1f} %"] for r in fig["ranks"]], left=3)
    return (f"<h1>{escape(title)}</h1><section id=\"summary\"><h2>Summary</h2>{status}"
            f"{_table([], rows)}<h3>Utilisation per rank (busy time / wall time)</h3>{util}</section>")


def _matrix(fig: dict[str, Any]) -> str:
    m = fig["bytes_matrix"]
    top = max((v for row in m["bytes"] for v in row), default=0) or 1
    head = "<tr><th class=\"l\">from \\ to</th>" + "".join(f"<th>rank {r}</th>" for r in m["ranks"]) + "</tr>"
    body = []
    for src, row in zip(m["ranks"], m["bytes"]):
        cells = "".join(f'<td style="background:rgba(78,121,167,{0.6 * v / top:.2f})">{escape(_bytes(v))}</td>'
                        for v in row)
        body.append(f'<tr><th class="l">rank {src}</th>{cells}</tr>')
    hosts = fig["hosts_matrix"]
    between = ""
    if len(hosts["hosts"]) > 1:
        between = "<h3>Between hosts</h3>" + _table(["from \\ to"] + hosts["hosts"], [
            [h] + [_bytes(v) for v in row] for h, row in zip(hosts["hosts"], hosts["bytes"])])
    return (f'<section id="bytes"><h2>Bytes moved between ranks</h2><p class="hint">{escape(m["note"])}</p>'
            f"<table>{head}{''.join(body)}</table>{between}</section>")


def _functions(fig: dict[str, Any]) -> str:
    rows = [[f["function"], f["count"], f"{1000 * f['mean_s']:.3f} ms", f"{1000 * f['p95_s']:.3f} ms",
             _bytes(f["bytes_fetched"])] for f in fig["functions"]]
    return ('<section id="functions"><h2>Per function</h2><p class="hint">bytes fetched: of the function\'s '
            "results, by other ranks</p>" + _table(["function", "runs", "mean", "p95", "bytes fetched"], rows)
            + "</section>")


def _lost_and_failed(fig: dict[str, Any]) -> str:
    out = ['<section id="lost"><h2>Lost workers</h2>']
    out.append(_table(["rank", "at", "reason"], [[x["rank"], f"{x['t_s']:.3f} s", x["reason"]] for x in fig["lost"]],
                      left=3) if fig["lost"] else "<p>none</p>")
    out.append('</section><section id="failures"><h2>Failures</h2>')
    if fig["summary"]["failed"] is None:
        out.append("<p>no manifest: a Client script's failures are in its own output</p>")
    elif not fig["failures"]:
        out.append("<p>none</p>")
    for f in fig["failures"]:
        out.append(f"<details><summary>{escape(str(f['task']))} (rank {escape(str(f['rank']))}, "
                   f"{escape(str(f['attempts']))} attempt(s)): {escape(str(f['error']))}</summary>"
                   f"<pre>{escape(f['traceback'] or 'no traceback kept')}</pre></details>")
    return "".join(out) + "</section>"


def _script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


def render(fig: dict[str, Any], gantt: dict[str, Any], title: str = "hpcdist run report") -> str:
    """The whole page.

    Args:
        fig: the figures (:func:`hpcdist.report.figures.figures`).
        gantt: the Gantt's arrays (:func:`hpcdist.report.figures.gantt`).
        title: the page's heading.
    """
    script = resources.files("hpcdist.report").joinpath("gantt.js").read_text(encoding="utf-8")
    gantt_html = (f'<section id="timeline"><h2>Tasks per rank</h2><p class="hint">{len(gantt["s"])} slices; '
                  "wheel: zoom, drag: pan, double click: the whole run, hover: a task's name and duration</p>"
                  f'<div id="gantt-box"><canvas id="gantt" data-rows="{len(gantt["rows"])}"></canvas></div>'
                  '<div id="tip"></div></section>')
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
            + _summary(fig, title) + gantt_html + _matrix(fig) + _functions(fig) + _lost_and_failed(fig)
            + f'<script type="application/json" id="gantt-data">{_script_json(gantt)}</script>'
            + f"<script>{script}</script></body></html>\n")
