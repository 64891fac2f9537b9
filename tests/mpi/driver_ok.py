"""A driver that finishes normally: every rank must exit 0 soon after."""
import hpcdist

with hpcdist.Client() as client:
    assert client.submit(pow, 2, 10).result() == 1024
print("driver done", flush=True)
