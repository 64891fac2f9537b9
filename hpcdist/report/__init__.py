"""A run's report (``hpcdist report RUN_DIR``): one self-contained HTML page, ``report.json``, ``tasks.csv``.

- :mod:`~hpcdist.report.figures`: trace sessions (and a manifest) -> the numbers (pure);
- :mod:`~hpcdist.report.html`: the numbers -> the page (inline CSS, and ``gantt.js`` drawing on a canvas).

:func:`write_report` reads a run directory and writes the three files.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from hpcdist.errors import HpcdistError
from hpcdist.paths import RunDir, atomic_write
from hpcdist.report.figures import TASK_COLUMNS, collect, figures, gantt, pipeline_names, task_rows
from hpcdist.report.html import render

__all__ = ["write_report", "REPORT_HTML", "REPORT_JSON", "TASKS_CSV"]

REPORT_HTML, REPORT_JSON, TASKS_CSV = "report.html", "report.json", "tasks.csv"


def _manifest(run: RunDir) -> dict[str, Any] | None:
    try:
        return json.loads(run.manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise HpcdistError(f"cannot read {run.manifest}: {exc}") from None


def write_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write ``report.html`` (at ``out``, default ``RUN_DIR/report.html``), and next to it ``report.json``
    and ``tasks.csv``; returns the figures.

    Raises:
        HpcdistError: ``run_dir`` has no trace (``RUN_DIR/trace/rank-N.trace``), or a file is unreadable.
    """
    from hpcdist.trace.chrome import find_trace_dir, load_sessions

    run = RunDir(run_dir)
    sessions = load_sessions(find_trace_dir(run_dir))
    if not sessions:
        raise HpcdistError(f"the trace files in {run.trace} hold no session (empty files)")
    manifest = _manifest(run)
    line = collect(sessions, pipeline_names(manifest))
    fig = figures(line, manifest)
    html_path = Path(out) if out else run.root / REPORT_HTML
    html_path.parent.mkdir(parents=True, exist_ok=True)
    title = f"hpcdist report: {Path(run_dir).resolve().name}"
    atomic_write(html_path, render(fig, gantt(line), title).encode("utf-8"), fsync=False)
    atomic_write(html_path.with_name(REPORT_JSON), json.dumps(fig, indent=1).encode(), fsync=False)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(TASK_COLUMNS)
    writer.writerows(task_rows(line))
    atomic_write(html_path.with_name(TASKS_CSV), text.getvalue().encode("utf-8"), fsync=False)
    return fig
