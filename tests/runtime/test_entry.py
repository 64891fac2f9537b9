"""``hpcdist run``'s launcher side (hpcdist.runtime.entry), with mpiexec faked."""

from __future__ import annotations

import pytest

from hpcdist.runtime import entry


class _FakeProc:
    def __init__(self, argv, env):
        self.argv, self.env = argv, env

    def wait(self, timeout=None):
        return 0


@pytest.mark.parametrize("timeout, expected", [(0.5, "1"), (1.2, "2"), (30, "30")])
def test_mpiexec_timeout_is_rounded_up_to_whole_seconds(monkeypatch, tmp_path, timeout, expected):
    script = tmp_path / "driver.py"
    script.write_text("pass\n")
    seen = []

    def fake_popen(argv, env):
        seen.append(_FakeProc(argv, env))
        return seen[-1]

    monkeypatch.setattr(entry, "find_mpiexec", lambda: "mpiexec")
    monkeypatch.setattr(entry.subprocess, "Popen", fake_popen)
    assert entry.run_script(str(script), [], 2, timeout=timeout) == 0
    assert seen[0].env["MPIEXEC_TIMEOUT"] == expected
    assert seen[0].argv[:3] == ["mpiexec", "-n", "2"]
