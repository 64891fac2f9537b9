"""Print how much data the tree sum moved between ranks, from a run's manifest.

    python examples/array_tree/report.py RUN_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run_dir: str) -> None:
    manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    t = manifest["transfer"]
    share = t["moved_bytes"] / t["input_bytes"] if t["input_bytes"] else 0.0
    print(f"input bytes {t['input_bytes']}, moved between ranks {t['moved_bytes']} ({share:.0%})")
    for tid, task in sorted(manifest["tasks"].items()):
        print(f"  {tid:8s} rank {task['rank']}  {task['bytes'] or 0:>9d} bytes  inputs {task['inputs']}")


if __name__ == "__main__":
    main(sys.argv[1])
