"""Tracebacks and debuggers show the user's real file and lines for tasks defined in the driver script."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

DRIVER = textwrap.dedent('''
    import sys
    import hpcdist


    def plain(x):
        raise ValueError("plain failed")  # line 7


    square_then_fail = lambda x: 1 / (x - x)  # line 10


    def make_closure():
        scale = 3

        def closure(x):
            raise KeyError("closure failed %d" % scale)  # line 17
        return closure


    class Model:
        def predict(self, x):
            raise RuntimeError("method failed")  # line 23


    backend = sys.argv[1]
    client = hpcdist.Client() if backend == "attached" else hpcdist.Client(backend=backend, workers=1)
    for fn in (plain, square_then_fail, make_closure(), Model().predict):
        try:
            client.submit(fn, 1).result(timeout=60)
        except Exception as exc:
            print("=== TASK", getattr(fn, "__name__", "?"))
            print(exc.__cause__)
    client.close()
''')

# (what to look for in the remote traceback): file line and the source line itself
EXPECTED = {
    "plain": (7, 'raise ValueError("plain failed")'),
    "<lambda>": (10, "square_then_fail = lambda x: 1 / (x - x)"),
    "closure": (17, 'raise KeyError("closure failed %d" % scale)'),
    "predict": (23, 'raise RuntimeError("method failed")'),
}


def _check(out: str, script) -> None:
    assert "<dynamic-code>" not in out, out
    for name, (line, source) in EXPECTED.items():
        section = out.split(f"=== TASK {name}\n", 1)[1].split("=== TASK", 1)[0]
        assert f'File "{script}", line {line}, in {name}' in section, section
        assert source in section, section  # the worker read the source line


@pytest.mark.parametrize("backend", ["local", "thread", "process"])
def test_traceback_names_driver_file_and_line(tmp_path, backend):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.run([sys.executable, str(script), backend], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check(proc.stdout, script)


@pytest.mark.mpi
@pytest.mark.parametrize("how", ["exec", "plain"])
def test_traceback_names_driver_file_and_line_under_mpi(tmp_path, how):
    from mpiutil import run_mpi

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    argv = [sys.executable, "-m", "hpcdist", "exec", str(script), "attached"] if how == "exec" else \
        [sys.executable, str(script), "attached"]
    proc = run_mpi(argv, 2, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check(proc.stdout, script)


PDB_DRIVER = textwrap.dedent('''
    import hpcdist


    def task(x):
        y = x * 2
        breakpoint()
        return y + 1  # the line pdb stops before


    with hpcdist.Client(backend="local") as client:
        print("result", client.submit(task, 20).result())
''')


def test_breakpoint_on_local_backend_lists_source(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(PDB_DRIVER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONBREAKPOINT"}
    proc = subprocess.run([sys.executable, str(script)], input="l\nc\n", capture_output=True, text=True,
                          timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"> {script}(8)task()" in proc.stdout, proc.stdout
    assert "return y + 1  # the line pdb stops before" in proc.stdout, proc.stdout  # `l` listed the source
    assert "y = x * 2" in proc.stdout
    assert "result 41" in proc.stdout


NO_SHARED_FS = textwrap.dedent('''
    import linecache, os, sys
    import hpcdist


    def task(x):
        raise ValueError("failed where the worker cannot read this file")  # line 7


    linecache.getlines(__file__)  # rank 0 knows the source ...
    os.rename(__file__, __file__ + ".gone")  # ... the workers cannot read the file any more
    with hpcdist.Client(backend=sys.argv[1], workers=1) as client:
        try:
            client.submit(task, 1).result(timeout=60)
        except ValueError as exc:
            print(exc.__cause__)
''')


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_source_travels_to_workers_that_cannot_read_the_file(tmp_path, backend):
    script = tmp_path / "driver.py"
    script.write_text(NO_SHARED_FS)
    proc = subprocess.run([sys.executable, str(script), backend], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'File "{script}", line 7, in task' in proc.stdout, proc.stdout
    assert 'raise ValueError("failed where the worker cannot read this file")' in proc.stdout, proc.stdout
