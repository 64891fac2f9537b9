"""A driver whose code raises: every rank must exit non-zero, the traceback printed once."""
import sys

import hpcdist

client = hpcdist.Client()
client.submit(pow, 2, 3).result()
if len(sys.argv) > 1 and sys.argv[1] == "with":
    with client:
        raise RuntimeError("driver failed on purpose")
raise RuntimeError("driver failed on purpose")
