"""The report tests' shared traced run (one per session: it starts worker processes)."""

from __future__ import annotations

import pytest

from report_workload import traced_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A run directory with the trace of a real 3-rank process-backend run (no manifest), and its keys."""
    path = tmp_path_factory.mktemp("traced-run")
    keys = traced_run(path)
    return path, keys
