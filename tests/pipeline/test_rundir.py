"""Stored results: formats, atomic writes, validity, outputs and their hash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hpcdist.paths import atomic_write
from hpcdist.pipeline.rundir import copy_outputs, encode, load_object, output_hash, save_object, stored_meta


@pytest.mark.parametrize(("value", "ext"), [
    ({"b": [1, 2.5, None, True], "a": "x"}, "json"),
    (3, "json"),
    ((1, 2), "pkl"),                     # a tuple would come back as a list
    ({1: "a"}, "pkl"),                   # non-string keys
    (np.float64(1.5), "pkl"),            # a float subclass
    (float("nan"), "pkl"),
    ({1, 2}, "pkl"),
    (np.arange(6).reshape(2, 3), "npy"),
    (np.array([object()]), "pkl"),
])
def test_format_is_exact(tmp_path: Path, value, ext: str) -> None:
    meta = save_object(tmp_path, "k", value)
    assert meta["format"] == ext and meta["file"] == f"k.{ext}"
    back = load_object(tmp_path / meta["file"])
    if isinstance(value, np.ndarray) and ext == "npy":
        assert back.dtype == value.dtype and np.array_equal(back, value)
    elif ext == "json" or not isinstance(value, (float, np.ndarray)):
        assert back == value and type(back) is type(value)


def test_json_is_canonical_and_arrays_are_c_ordered() -> None:
    assert encode({"b": 1, "a": 2})[1] == encode({"a": 2, "b": 1})[1]
    f = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    assert encode(f)[1] == encode(np.ascontiguousarray(f))[1]


def test_stored_meta_checks_completeness(tmp_path: Path) -> None:
    meta = save_object(tmp_path, "k", list(range(10)), {"host": "h"})
    assert stored_meta(tmp_path, "k") == meta and meta["length"] == 10 and meta["host"] == "h"
    data = tmp_path / meta["file"]
    data.write_bytes(data.read_bytes()[:-3])  # truncated: no longer valid
    assert stored_meta(tmp_path, "k") is None
    assert stored_meta(tmp_path, "missing") is None
    (tmp_path / "bad.meta.json").write_text("{not json")
    assert stored_meta(tmp_path, "bad") is None


def test_atomic_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    atomic_write(target, b"old")

    def chunks():
        yield b"new"
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, chunks())
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_outputs_and_hash(tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    objects.mkdir()
    files = [save_object(objects, f"m{i}", np.full(3, i))["file"] for i in range(3)]
    total = save_object(objects, "t", {"n": 3})["file"]
    written = copy_outputs(tmp_path, {"total": [total], "parts": files[:2] + [None]}, {"parts"})
    assert written == ["outputs/parts/00000.npy", "outputs/parts/00001.npy", "outputs/total.json"]
    assert json.loads((tmp_path / "outputs/total.json").read_text()) == {"n": 3}
    first = output_hash(tmp_path)
    copy_outputs(tmp_path, {"total": [total], "parts": files[:2] + [None]}, {"parts"})
    assert output_hash(tmp_path) == first
    copy_outputs(tmp_path, {"total": [total]}, set())
    assert output_hash(tmp_path) != first and not (tmp_path / "outputs/parts").exists()


def test_copy_outputs_survives_a_swap_that_was_interrupted(tmp_path: Path) -> None:
    (tmp_path / "objects").mkdir()
    (tmp_path / "objects" / "k.json").write_text("1\n")
    (tmp_path / "outputs").mkdir()
    (tmp_path / ".outputs-old" / "stale").mkdir(parents=True)  # a run killed between the two renames
    assert copy_outputs(tmp_path, {"t": ["k.json"]}, set()) == ["outputs/t.json"]
    assert (tmp_path / "outputs" / "t.json").read_text() == "1\n" and not (tmp_path / ".outputs-old").exists()
