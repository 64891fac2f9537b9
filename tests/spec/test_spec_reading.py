"""Reading a spec file: alias bombs, recursive aliases, deep nesting, and files that are not
UTF-8 text are refused quickly with the file and the position (issue 10, Validation)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from specutil import spec_text

from hpcdist.spec import source
from hpcdist.errors import SpecError
from hpcdist.spec.model import load_spec
from hpcdist.spec.source import MAX_DEPTH, MAX_NODES

GOOD, _, _ = spec_text("name", "job")


def laughs(levels: int, width: int = 9) -> str:
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


BOMBS = [
    # (document, words of the message)
    ("billion laughs", laughs(9) + GOOD, "alias bomb"),
    ("wide laughs", laughs(3, 200) + GOOD, "alias bomb"),
    ("bomb after the spec", GOOD + laughs(9), "alias bomb"),
    ("bomb in a value", laughs(9).replace("l", "x") + GOOD.replace("environment: {}", "environment:\n  vars: {X: *x9}"),
     "alias bomb"),
    ("recursive list", "a: &a [*a]\n" + GOOD, "recursive alias"),
    ("recursive mapping", "a: &a {b: *a}\n" + GOOD, "recursive alias"),
    ("recursive deep", "a: &a [[[[[*a]]]]]\n" + GOOD, "recursive alias"),
    ("flow nesting", "x: " + "[" * 100_000 + "]" * 100_000 + "\n" + GOOD, f"more than {MAX_DEPTH} levels"),
    ("flow mapping nesting", "x: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n" + GOOD, f"more than {MAX_DEPTH} levels"),
    ("block nesting", "".join(" " * i + f"k{i}:\n" for i in range(3000)) + " " * 3000 + "v: 1\n",
     f"more than {MAX_DEPTH} levels"),
    ("aliases nesting deep", "a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: &b " + "[" * 40 + "*a" + "]" * 40
     + "\n" + GOOD, f"more than {MAX_DEPTH} levels"),
]


@pytest.mark.timeout(5)
@pytest.mark.parametrize("doc, words", [b[1:] for b in BOMBS], ids=[b[0] for b in BOMBS])
def test_bombs_and_deep_nesting_are_refused_quickly(project: Path, doc: str, words: str) -> None:
    path = project / "job.yaml"
    path.write_text(doc)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    lines = info.value.problems  # type: ignore[attr-defined]
    assert any(words in line and line.startswith(f"{path}:") for line in lines), lines


@pytest.mark.timeout(5)
@pytest.mark.parametrize("value", ["[" * 10_000 + "]" * 10_000, "&a [*a]"])
def test_bombs_in_set_overrides_are_refused(project: Path, value: str) -> None:
    path = project / "job.yaml"
    path.write_text(GOOD)
    with pytest.raises(SpecError) as info:
        load_spec(path, (f"environment.vars={value}",))
    assert info.value.problems[0].startswith("--set environment.vars=")  # type: ignore[attr-defined]


def test_aliases_within_the_limits_still_work(project: Path) -> None:
    path = project / "job.yaml"
    path.write_text(GOOD.replace("environment: {}", "environment:\n  modules: &mods [gcc/12, openmpi/4.1]")
                    + "launcher_args: *mods\n")
    spec = load_spec(path)
    assert spec.launcher_args == ("gcc/12", "openmpi/4.1") == spec.environment.modules
    assert MAX_NODES >= 10_000


FILES = [
    # (bytes, words of the message)
    (b"name: \xff\xfejob\n", "byte offset 6: byte 0xff is not valid UTF-8"),
    (GOOD.encode() + b"x: \xc3\x28\n", "is not valid UTF-8"),
    (b"\xff\xfe" + GOOD.encode("utf-16-le"), "UTF-16"),
    (b"\xfe\xff" + GOOD.encode("utf-16-be"), "UTF-16"),
    (b"\xff\xfe\x00\x00" + GOOD.encode("utf-32-le"), "UTF-32"),
    (GOOD.encode("utf-16-le"), "NUL byte"),
    (b"name: job\x00\n", "byte offset 9: NUL byte"),
    (b"name: job\x1b[2J\n", "character U+001B is not allowed"),
    (b"name: job\x7f\n", "character U+007F is not allowed"),
    (b"name: \xc2\x9bjob\n", "character U+009B is not allowed"),
    (b"", "the spec is empty"),
    (b"\n\n# only a comment\n", "the spec is empty"),
]


@pytest.mark.parametrize("data, words", FILES, ids=[f"file{i}" for i in range(len(FILES))])
def test_files_that_are_not_utf8_text_name_the_file_and_position(project: Path, data: bytes, words: str) -> None:
    path = project / "job.yaml"
    path.write_bytes(data)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert words in text and str(path) in text, text
    if "offset" in words:
        assert f"{path}:1:" in text


def test_a_utf8_byte_order_mark_is_accepted(project: Path) -> None:
    path = project / "job.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_spec(path).name == "job"


def test_a_directory_a_fifo_and_a_missing_file(project: Path) -> None:
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(project)
    fifo = project / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec(fifo)  # opening a FIFO without a writer would block
    with pytest.raises(SpecError, match="no such file"):
        load_spec(project / "missing.yaml")


def test_an_unreadable_file(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = project / "job.yaml"
    path.write_text(GOOD)
    if os.geteuid() != 0:
        path.chmod(0)
    else:  # root reads every file: make the open fail as it does for a user
        def refuse(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(source, "open", refuse, raising=False)
    with pytest.raises(SpecError, match=f"{path}: cannot read the spec: permission denied"):
        load_spec(path)


def test_a_huge_file_is_refused_without_reading_it_all(project: Path) -> None:
    path = project / "job.yaml"
    with open(path, "wb") as fh:
        fh.write(GOOD.encode())
        fh.truncate(source.MAX_BYTES + 10)
    with pytest.raises(SpecError, match="larger than 16 MiB"):
        load_spec(path)
