"""Run under ``mpiexec -n 3`` with HPCDIST_TRACE_DIR set: 200 tasks (100 with two inputs each)."""
import hpcdist


def inc(x):
    return x + 1


def add(a, b):
    return a + b


with hpcdist.Client() as client:
    firsts = client.map(inc, range(100))
    seconds = [client.submit(add, firsts[i], firsts[-1 - i]) for i in range(100)]
    assert sum(f.result() for f in seconds) == 10100
print("driver done", flush=True)
