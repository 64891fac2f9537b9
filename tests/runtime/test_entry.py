"""``hpcdist run``'s launcher side (hpcdist.launcher), with mpiexec faked."""

from __future__ import annotations

import pytest

from hpcdist import launcher


class _FakeProc:
    def __init__(self, argv, env, **kw):
        self.argv, self.env, self.kw = argv, env, kw
        self.returncode = 0

    def wait(self, timeout=None):
        return 0


# the launcher stops the world itself at the timeout; MPIEXEC_TIMEOUT is only a backstop past it
@pytest.mark.parametrize("timeout, expected", [(0.5, "14"), (1.2, "15"), (30, "43")])
def test_mpiexec_timeout_is_a_whole_second_backstop_past_the_stop(monkeypatch, tmp_path, timeout, expected):
    script = tmp_path / "driver.py"
    script.write_text("pass\n")
    seen = []

    def fake_popen(argv, env, **kw):
        seen.append(_FakeProc(argv, env, **kw))
        return seen[-1]

    monkeypatch.setattr(launcher, "find_mpiexec", lambda: "mpiexec")
    monkeypatch.setattr(launcher, "mpi_flavour", lambda path: "")  # no survival flags for an unknown MPI
    monkeypatch.setattr(launcher.subprocess, "Popen", fake_popen)
    assert launcher.run_script(str(script), [], 2, timeout=timeout) == 0
    assert seen[0].env["MPIEXEC_TIMEOUT"] == expected
    assert seen[0].argv[:3] == ["mpiexec", "-n", "2"]
    assert seen[0].kw["start_new_session"] and seen[0].kw["preexec_fn"] is not None
