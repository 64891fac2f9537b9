"""The per-rank trace file: event kinds, and the chunks a recorder writes and the merge reads.

A file (``RUN_DIR/trace/rank-N.trace``) is a sequence of chunks::

    chunk   = b"HT" version:u8 type:u8 length:u32le payload[length]
    HEADER  = JSON (UTF-8): {"rank", "host", "pid", "role", "clock": {"wall_ns", "perf_ns"}, ...}
    EVENTS  = zlib( strings:JSON list  b"\\n"  keys_length:u32le  keys  ints:int64le[...] )
    NAMES   = JSON (UTF-8): {"functions": {fn_id: name}}

A HEADER starts a session (one recorder); the EVENTS and NAMES after it belong to it. An EVENTS chunk
holds its events by kind, in columns (see :func:`encode_events`): times are differences in nanoseconds
(small integers that compress well), function ids and reasons indices into the chunk's string list,
and task keys (unique, so not worth a table) one stream of all the chunk's keys, NUL-separated UTF-8
(or, if a key holds a NUL, a JSON list: ``keys`` then starts with ``[``). A process that died while
writing leaves at most one short chunk at the end: the reader drops it.

Times are ``time.perf_counter_ns()`` of the writing process: ranks on one host share that monotonic
clock; the header's ``clock`` pair (wall, perf) read together at start lets the merge put ranks of
other hosts on the same line (to the accuracy of their wall clocks).
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from array import array
from itertools import accumulate, chain, groupby, islice
from operator import add, itemgetter, sub
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from hpcdist.errors import HpcdistError

__all__ = ["RUN", "FETCH", "PLACE", "LOST", "FIELDS", "Session", "encode_header", "encode_events",
           "encode_names", "read_sessions", "VERSION"]

VERSION = 1
MAGIC = b"HT"
_HEAD = struct.Struct("<2sBBI")

HEADER, EVENTS, NAMES = 0, 1, 2
_first, _second = itemgetter(0), itemgetter(1)

#: a task ran on a worker's executor: (RUN, start_ns, end_ns, key, fn_id)
RUN = 1
#: an input arrived from a peer: (FETCH, asked_ns, arrived_ns, key, nbytes, source rank)
FETCH = 2
#: rank 0 sent tasks to a worker in one round of sends: (PLACE, start_ns, end_ns, rank, [key, ...])
PLACE = 3
#: rank 0 lost a worker: (LOST, ns, rank, reason)
LOST = 4

#: per kind, what each field after the kind is: "t" a time, "i" an integer, "s" a string (interned:
#: function ids, reasons), "k" a task key, "K" a list of task keys
FIELDS: dict[int, str] = {RUN: "ttks", FETCH: "ttkii", PLACE: "ttiK", LOST: "tis"}
_KEYS_LEN = struct.Struct("<I")


def _chunk(kind: int, payload: bytes) -> bytes:
    return _HEAD.pack(MAGIC, VERSION, kind, len(payload)) + payload


def encode_header(header: dict[str, Any]) -> bytes:
    """The HEADER chunk of a session."""
    return _chunk(HEADER, json.dumps(header, sort_keys=True).encode())


def encode_names(functions: dict[str, str]) -> bytes:
    """A NAMES chunk: function id -> its name."""
    return _chunk(NAMES, json.dumps({"functions": functions}, sort_keys=True).encode())


def encode_events(events: list[tuple]) -> bytes:
    """An EVENTS chunk of event tuples (kind first, then the fields :data:`FIELDS` names).

    Per kind present: ``kind, count``, then each field's column. A kind's first time column holds the
    difference from the previous event of that kind (the first: from the chunk's base time, the first
    integer), its other time columns the difference from the first (a duration); an ``s`` column
    holds indices into the string list, a ``k`` column nothing (its keys are in the key stream, in
    column order), a ``K`` column each list's length (its keys follow in the key stream).

    Raises:
        ValueError: an event of an unknown kind, or with the wrong number of fields.
    """
    by_kind: dict[int, list[tuple]] = {}
    for kind, group in groupby(events, _first):  # runs of one kind: few groups, at C speed
        by_kind.setdefault(kind, []).extend(group)
    base = min(map(_second, events)) if events else 0
    ints: list[int] = [base]
    interned: dict[str, int] = {}
    keys: list[Any] = []
    for kind, group in sorted(by_kind.items()):
        specs = FIELDS.get(kind)
        if specs is None or set(map(len, group)) != {len(specs) + 1}:
            raise ValueError(f"trace events of kind {kind}: {specs!r} fields expected after the kind")
        columns = list(zip(*group))[1:]
        ints += (kind, len(group))
        first = None
        for spec, column in zip(specs, columns):
            if spec == "t":
                if first is None:
                    first = column
                    ints += map(sub, column, (base,) + column[:-1])
                else:
                    ints += map(sub, column, first)
            elif spec == "i":
                ints += column
            elif spec == "k":
                keys.append(column)
            elif spec == "K":
                ints += map(len, column)
                keys += column
            else:
                for value in dict.fromkeys(column):
                    interned.setdefault(value, len(interned))
                ints += map(interned.__getitem__, column)
    packed = array("q", ints)
    if sys.byteorder == "big":
        packed.byteswap()
    flat = list(chain.from_iterable(keys))
    text = "\0".join(flat)
    if text.count("\0") != max(0, len(flat) - 1) or text.startswith("[") or (flat and not text):
        text = json.dumps(flat)
    blob = text.encode("utf-8", "surrogatepass")
    payload = b"".join((json.dumps(list(interned)).encode(), b"\n", _KEYS_LEN.pack(len(blob)), blob,
                        packed.tobytes()))
    return _chunk(EVENTS, zlib.compress(payload, 1))


def _decode_events(payload: bytes) -> list[tuple]:
    raw = zlib.decompress(payload)
    cut = raw.index(b"\n")
    strings = json.loads(raw[:cut])
    (nkeys,) = _KEYS_LEN.unpack_from(raw, cut + 1)
    at = cut + 1 + _KEYS_LEN.size
    text = raw[at:at + nkeys].decode("utf-8", "surrogatepass")
    keys = iter(json.loads(text) if text.startswith("[") else text.split("\0") if text else [])
    ints = array("q")
    ints.frombytes(raw[at + nkeys:])
    if sys.byteorder == "big":
        ints.byteswap()
    base, i, out = ints[0], 1, []
    while i < len(ints):
        kind, count = ints[i], ints[i + 1]
        specs = FIELDS.get(kind)
        if specs is None:
            raise HpcdistError(f"unknown trace event kind {kind}")
        i += 2
        columns: list[Any] = [[kind] * count]
        first = None
        for spec in specs:
            if spec == "k":
                columns.append(list(islice(keys, count)))
                continue
            column: Any = ints[i:i + count]
            if len(column) != count:
                raise HpcdistError("a short column")
            i += count
            if spec == "t":
                if first is None:
                    first = column = list(accumulate(column, initial=base))[1:]
                else:
                    column = list(map(add, first, column))
            elif spec == "s":
                column = [strings[v] for v in column]
            elif spec == "K":
                column = [list(islice(keys, n)) for n in column]
            columns.append(column)
        if any(len(c) != count for c in columns):
            raise HpcdistError("fewer keys than events")
        out.extend(zip(*columns))
    return out


@dataclass
class Session:
    """One recorder's part of a file: its header, events (decoded tuples) and function names."""

    header: dict[str, Any]
    events: list[tuple] = field(default_factory=list)
    functions: dict[str, str] = field(default_factory=dict)

    @property
    def rank(self) -> int:
        return int(self.header["rank"])

    @property
    def host(self) -> str:
        return str(self.header.get("host") or "?")


def _chunks(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset + _HEAD.size <= len(data):
        magic, version, kind, length = _HEAD.unpack_from(data, offset)
        if magic != MAGIC:
            raise HpcdistError(f"not a trace chunk at byte {offset}")
        if version != VERSION:
            raise HpcdistError(f"trace format version {version} (this hpcdist reads {VERSION})")
        start = offset + _HEAD.size
        if start + length > len(data):
            return  # the writer died mid-chunk: drop the tail
        yield kind, data[start:start + length]
        offset = start + length


def read_sessions(path: str | Path) -> list[Session]:
    """Every session of one rank's trace file, in the order they were written.

    Raises:
        HpcdistError: the file is not a trace file (or of another format version).
    """
    sessions: list[Session] = []
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise HpcdistError(f"cannot read trace file {path}: {exc.strerror}") from None
    try:
        for kind, payload in _chunks(data):
            if kind == HEADER:
                sessions.append(Session(json.loads(payload)))
            elif not sessions:
                raise HpcdistError("events before the first header")
            elif kind == EVENTS:
                sessions[-1].events.extend(_decode_events(payload))
            elif kind == NAMES:
                sessions[-1].functions.update(json.loads(payload)["functions"])
    except HpcdistError as exc:
        raise HpcdistError(f"{path}: {exc}") from None
    except (ValueError, zlib.error, IndexError) as exc:
        raise HpcdistError(f"{path}: a damaged trace chunk: {exc}") from None
    return sessions
