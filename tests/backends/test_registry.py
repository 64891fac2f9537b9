"""The backend registry, the alias table and how Client() resolves its backend."""

from __future__ import annotations

import pytest

import hpcdist
from hpcdist.backends import ALIASES, REGISTRY, Backend, canonical_name, get_backend
from hpcdist.errors import HpcdistError
from hpcdist.runtime.world import resolve_backend

MPI_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_RANK", "PMI_RANK")


@pytest.fixture
def no_launcher(monkeypatch):
    for name in (*MPI_VARS, "HPCDIST_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_four_backends_in_doctor_order():
    assert list(REGISTRY) == ["local", "thread", "process", "mpi"]
    assert all(isinstance(b, Backend) and b.name == n for n, b in REGISTRY.items())


@pytest.mark.parametrize("alias, name", [
    ("sync", "local"), ("inline", "local"), ("serial", "local"), ("direct", "local"),
    ("threads", "thread"), ("threaded", "thread"),
    ("processes", "process"), ("mp", "process"), ("multiprocessing", "process"), ("spawn", "process"),
    ("mpirun", "mpi"), ("mpiexec", "mpi"), ("cluster", "mpi"),
])
def test_aliases_any_case(alias, name):
    assert canonical_name(alias) == name
    assert canonical_name(alias.upper()) == name
    assert get_backend(alias.title()).name == name
    assert ALIASES[alias] == name


def test_every_alias_points_at_a_registered_backend():
    assert set(ALIASES.values()) <= set(REGISTRY)
    assert not set(ALIASES) & set(REGISTRY)


def test_unknown_name_lists_valid_names_and_aliases():
    with pytest.raises(HpcdistError) as info:
        get_backend("dask")
    text = str(info.value)
    assert "'dask'" in text
    for name in REGISTRY:
        assert name in text
    assert "spawn -> process" in text and "cluster -> mpi" in text


def test_get_backend_is_public_and_factories_import():
    assert hpcdist.get_backend("THREADS") is REGISTRY["thread"]
    for backend in REGISTRY.values():
        assert callable(backend.load())


def test_resolution_argument_beats_variable(no_launcher):
    no_launcher.setenv("HPCDIST_BACKEND", "thread")
    assert resolve_backend("Serial") == ("local", "argument")
    assert resolve_backend(None) == ("thread", "HPCDIST_BACKEND")


def test_resolution_variable_error_names_its_source(no_launcher):
    no_launcher.setenv("HPCDIST_BACKEND", "gpu")
    with pytest.raises(HpcdistError, match="HPCDIST_BACKEND"):
        resolve_backend(None)


def test_automatic_is_process_outside_mpi_and_mpi_inside(no_launcher):
    name, why = resolve_backend(None)
    assert name == "process" and why.startswith("automatic")
    no_launcher.setenv("PMI_SIZE", "4")
    name, why = resolve_backend(None)
    assert name == "mpi" and "MPI launcher" in why
    no_launcher.setenv("PMI_SIZE", "1")  # a singleton "world" is not an MPI world
    assert resolve_backend(None)[0] == "process"


def test_client_reports_canonical_name(no_launcher):
    no_launcher.setenv("HPCDIST_BACKEND", "INLINE")
    with hpcdist.Client() as client:
        assert client.backend == "local"
    with hpcdist.Client(backend="threaded", workers=2) as client:
        assert client.backend == "thread" and client.nworkers == 2


def stamp(i):
    import threading
    import time

    return i, threading.get_ident(), time.perf_counter_ns()


def test_local_runs_inline_in_order_and_futures_are_done():
    import threading

    with hpcdist.Client(backend="local", workers=8) as client:
        assert client.nworkers == 1  # the caller is the one worker, whatever `workers` says
        futures = []
        for i in range(5):
            futures.append(client.submit(stamp, i, pure=False))
            assert futures[-1].done()  # ran inside submit()
        results = client.gather(futures)
    assert [r[0] for r in results] == list(range(5))
    assert {r[1] for r in results} == {threading.get_ident()}  # in the caller's thread
    assert [r[2] for r in results] == sorted(r[2] for r in results)  # in submit order


def test_bad_worker_count():
    with pytest.raises(HpcdistError, match="at least 1 worker"):
        hpcdist.Client(backend="thread", workers=0)


def test_run_options_pick_backend_ranks_and_workers():
    from hpcdist.launcher import split_run_options

    assert split_run_options(None, None, None) == ("mpi", 4, None)  # plain `hpcdist run` = mpiexec -n 4
    assert split_run_options(None, 3, None) == ("mpi", 3, None)
    assert split_run_options("MPIEXEC", None, 2) == ("mpi", 3, 2)
    assert split_run_options("threads", None, 4) == ("thread", 0, 4)
    with pytest.raises(HpcdistError, match="takes --workers"):
        split_run_options("process", 4, None)
    with pytest.raises(HpcdistError, match="disagree"):
        split_run_options("mpi", 4, 2)
    with pytest.raises(HpcdistError, match="unknown backend 'gpu' \\(from --backend\\)"):
        split_run_options("gpu", None, None)


@pytest.mark.parametrize("backend, workers", [("thread", 3), ("process", 2), ("local", None)])
def test_hpcdist_run_on_a_non_mpi_backend(tmp_path, backend, workers):
    import subprocess
    import sys

    script = tmp_path / "driver.py"
    script.write_text(
        "import os, sys, hpcdist\n"
        "c = hpcdist.Client()\n"
        "print('ran', c.backend, c.nworkers, sys.argv[1:], 'PMI_SIZE' in os.environ)\n"
        "print('sum', sum(c.gather(c.map(abs, [-1, -2, -3]))))\n"
    )
    argv = [sys.executable, "-m", "hpcdist", "run", "--backend", backend, "--timeout", "60"]
    argv += ["--workers", str(workers)] if workers else []
    proc = subprocess.run([*argv, str(script), "x", "--flag"], capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert f"ran {backend} {workers or 1} ['x', '--flag'] False" in proc.stdout  # no mpiexec involved
    assert "sum 6" in proc.stdout
