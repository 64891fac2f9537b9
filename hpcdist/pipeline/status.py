"""Exit statuses of a pipeline run (``hpcdist run SPEC``), in one table.

=====  ==================  =====================================================================
code   name                meaning
=====  ==================  =====================================================================
0      OK                  every task done (or reused from the run directory)
2      SPEC                the spec is invalid (nothing ran)
5      WALLTIME            stopped at the walltime warning or end time; resume to finish
6      TASKS_FAILED        some tasks failed (after their retries) or were skipped because of it
70     INTERNAL            an error inside hpcdist, not in a task
74     IO_ERROR            the run directory could not be written (disk full, quota); free space, resume
130    INTERRUPTED         stopped by Ctrl-C or SIGTERM; finished results kept, resume to finish
=====  ==================  =====================================================================
"""

from __future__ import annotations

OK = 0
SPEC = 2
WALLTIME = 5
TASKS_FAILED = 6
INTERNAL = 70
IO_ERROR = 74
INTERRUPTED = 130

#: code -> (name, meaning), as documented in docs/pipelines.md
EXIT_STATUSES: dict[int, tuple[str, str]] = {
    OK: ("ok", "every task done (or reused from the run directory)"),
    SPEC: ("spec", "the spec is invalid (nothing ran)"),
    WALLTIME: ("walltime", "stopped at the walltime warning or end time; resume to finish"),
    TASKS_FAILED: ("tasks_failed", "some tasks failed (after their retries) or were skipped because of it"),
    INTERNAL: ("internal", "an error inside hpcdist, not in a task"),
    IO_ERROR: ("io_error", "the run directory could not be written (disk full, quota); free space, then resume"),
    INTERRUPTED: ("interrupted", "stopped by Ctrl-C or SIGTERM; finished results kept, resume to finish"),
}
