"""A small pipeline project in a temporary folder: tasks.py beside a spec writer."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Callable

import pytest

TASKS = textwrap.dedent('''
    import os, time

    def make(n):
        return list(range(n))

    def square(x):
        return x * x

    def total(xs):
        return sum(xs)

    def scale(x, factor=1):
        return x * factor

    def nap(x, seconds=0.0):
        time.sleep(seconds)
        return x

    def boom(x):
        raise ValueError(f"boom {x}")

    def fail_first(x, marker):
        path = f"{marker}-{x}"
        if not os.path.exists(path):
            open(path, "w").close()
            raise RuntimeError(f"first attempt of {x}")
        return x

    def crash_once(x, marker, delay=0.0, signal_death=False):
        time.sleep(delay)
        if x == 3 and not os.path.exists(marker):
            open(marker, "w").close()
            if signal_death:  # no launcher lets the survivors of a signal death live on but srun -K0
                os.kill(os.getpid(), 9)
            os._exit(3)
        return x * 10

    def arrays(i, n=1000):
        import numpy as np
        return np.arange(n, dtype="float64") * i

    def add(a, b):
        return a + b

    def pair(x):
        return (x, x)

    NOT_CALLABLE = 3
''')

PIPELINE = """\
name: demo
resources: {{ranks: 3}}
program:
  pipeline:
    module: tasks
{body}
output: runs/{{name}}-{{timestamp}}
"""

BASIC = """\
    tasks:
      numbers: {call: make, args: [6]}
      squares: {call: square, map: numbers}
      scaled:  {call: scale, map: squares, kwargs: {factor: 3}}
      sum:     {call: total, args: [{ref: scaled}]}
      lit:     {call: square, map: [1, 2, 3]}
    save: [sum, lit, numbers]
"""


@pytest.fixture
def project(tmp_path: Path) -> Callable[[str], Path]:
    """Write tasks.py and a spec with the given ``tasks:``/``save:`` body; returns the spec path."""
    (tmp_path / "tasks.py").write_text(TASKS)
    sys.modules.pop("tasks", None)

    def write(body: str = BASIC, name: str = "job.yaml") -> Path:
        spec = tmp_path / name
        spec.write_text(PIPELINE.format(body=textwrap.indent(textwrap.dedent(body), "    ")))
        return spec

    yield write
    sys.modules.pop("tasks", None)
