"""A pipeline's stored results, saved outputs and their hash, in the run directory
(:class:`hpcdist.paths.RunDir` names every file there).

Results are written as ``.npy`` (numpy arrays without Python objects), ``.json`` (when JSON
represents the value exactly: None, bool, int, finite float, str, lists and str-keyed dicts
of those) or ``.pkl`` (cloudpickle) otherwise. Every file is written under a temporary name
and renamed into place; a result's ``KEY.meta.json`` record is written last, so a result counts
only once it is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hpcdist.paths import RunDir, atomic_write, write_json

__all__ = ["encode", "save_object", "load_object", "stored_meta", "copy_outputs", "output_hash", "file_sha256"]


def _exact_json(value: Any, depth: int = 0) -> bool:
    # exact types only: a numpy float64 or a tuple would not come back as itself
    if depth > 100:
        return False
    t = type(value)
    if value is None or t in (bool, int, str):
        return True
    if t is float:
        return math.isfinite(value)
    if t is list:
        return all(_exact_json(v, depth + 1) for v in value)
    if t is dict:
        return all(type(k) is str and _exact_json(v, depth + 1) for k, v in value.items())
    return False


def encode(value: Any) -> tuple[str, bytes]:
    """``(extension, file contents)`` for a result: npy, json or pkl (see the module doc)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is optional
        np = None  # type: ignore[assignment]
    if np is not None and type(value) is np.ndarray and not value.dtype.hasobject:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
        return "npy", buf.getvalue()
    if _exact_json(value):
        return "json", (json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode()
    import cloudpickle

    return "pkl", cloudpickle.dumps(value, protocol=5)


def save_object(objects_dir: Path, key: str, value: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store ``value`` as ``objects_dir/KEY.EXT`` and its record as ``KEY.meta.json``.

    Returns:
        The record: key, file, format, bytes, length (for lists/tuples) and ``extra``.
    """
    ext, data = encode(value)
    name = f"{key}.{ext}"
    atomic_write(objects_dir / name, data, fsync=False)
    meta: dict[str, Any] = {"key": key, "file": name, "format": ext, "bytes": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()}
    if isinstance(value, (list, tuple)):
        meta["length"] = len(value)
    meta.update(extra or {})
    write_json(objects_dir / f"{key}.meta.json", meta, fsync=False)
    return meta


def stored_meta(objects_dir: Path, key: str, verify: bool = False) -> dict[str, Any] | None:
    """The record of a stored result that is complete (file present, size as recorded), or None.

    With ``verify``, the file's sha256 must also match the recorded one (``--resume`` reuses
    nothing whose bytes changed since they were written).
    """
    try:
        meta = json.loads((objects_dir / f"{key}.meta.json").read_text(encoding="utf-8"))
        path = objects_dir / meta["file"]
        size = path.stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if meta.get("key") != key or size != meta.get("bytes"):
        return None
    if verify:
        try:
            ok = isinstance(meta.get("sha256"), str) and file_sha256(path) == meta["sha256"]
        except OSError:
            ok = False
        if not ok:
            return None
    return meta


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_object(path: str | os.PathLike[str]) -> Any:
    """Read a stored result back (the inverse of :func:`encode`)."""
    path = Path(path)
    if path.suffix == ".npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))

    with open(path, "rb") as fh:
        return pickle.load(fh)


def copy_outputs(run_dir: Path, saved: dict[str, list[str | None]], mapped: set[str]) -> list[str]:
    """Copy the saved tasks' stored results into ``outputs/`` (replacing what was there).

    Args:
        saved: task name -> object file names of its concrete tasks, in item order
            (None for an item without a result; such an item is left out).
        mapped: names of mapped tasks (their outputs become a folder of items).

    Returns:
        The paths written, relative to the run directory.
    """
    out_dir, objects = RunDir(run_dir).outputs, RunDir(run_dir).objects
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".outputs-"))
    written = []
    try:
        for name, files in saved.items():
            if name in mapped:
                (tmp / name).mkdir()
            for i, f in enumerate(files):
                if f is None:
                    continue
                ext = f.rsplit(".", 1)[-1]
                rel = f"{name}/{i:05d}.{ext}" if name in mapped else f"{name}.{ext}"
                shutil.copyfile(objects / f, tmp / rel)
                written.append(f"{RunDir.OUTPUTS}/{rel}")
    except BaseException:  # disk full, say: the old outputs/ stay, nothing half-copied is left
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = run_dir / ".outputs-old"
    shutil.rmtree(old, ignore_errors=True)  # left by a run killed in the middle of this swap
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return sorted(written)


def output_hash(run_dir: Path) -> str:
    """sha256 over every file under ``outputs/`` (relative path, size and bytes, in path order).

    The stored encodings are canonical (sorted JSON keys, C-ordered .npy), so the hash is the
    same on every backend, with any number of workers, and across reruns.
    """
    h = hashlib.sha256()
    base = RunDir(run_dir).outputs
    files = sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []
    for p in files:
        rel = p.relative_to(base).as_posix()
        h.update(f"{rel}\0{p.stat().st_size}\0".encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
