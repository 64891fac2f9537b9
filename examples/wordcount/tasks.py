"""Word count as a pipeline: generated text files -> counts per file (map) -> merged total.

Run it with ``hpcdist run examples/wordcount/job.yaml -n 4`` (see job.yaml).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
         "tau upsilon phi chi psi omega").split()


def make_corpus(folder: str, files: int, words_per_file: int, seed: int) -> str:
    """Write ``files`` text files of seeded random words into ``folder``; returns the folder."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(files):
        lines = [" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(words_per_file // 10)]
        tmp = out / f".part-{i:03d}.txt.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(out / f"part-{i:03d}.txt")
    return str(out)


def list_files(folder: str) -> list[str]:
    """The text files in ``folder``, sorted."""
    return sorted(str(p) for p in Path(folder).glob("*.txt"))


def count_words(path: str) -> dict[str, int]:
    """Word -> count in one file."""
    return dict(Counter(Path(path).read_text().split()))


def merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    """The per-file counts added up (keys sorted, so the saved JSON is canonical)."""
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(sorted(total.items()))
