"""The per-rank trace file: event kinds, and the chunks a recorder writes and the merge reads.

A file (``RUN_DIR/trace/rank-N.trace``) is a sequence of chunks::

    chunk   = b"HT" version:u8 type:u8 length:u32le payload[length]
    HEADER  = JSON (UTF-8): {"rank", "host", "pid", "role", "clock": {"wall_ns", "perf_ns"}, "threads"}
    EVENTS  = zlib( JSON list of strings  b"\\n"  int64le[...] )
    NAMES   = JSON (UTF-8): {"functions": {fn_id: name}}

A HEADER starts a session (one recorder); the EVENTS and NAMES after it belong to it. In an EVENTS
chunk every string (key, function id, reason) is replaced by its index in the chunk's string list,
and every time by its offset in nanoseconds from the chunk's first time (``base``, the first integer).
Events are laid end to end; each kind has a fixed number of fields (:data:`FIELDS`), so the integer
array needs no separators. A process that died while writing leaves at most one short chunk at the
end: the reader drops it.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from hpcdist.errors import HpcdistError

__all__ = ["RUN", "FETCH", "PLACE", "LOST", "FIELDS", "Session", "encode_header", "encode_events",
           "encode_names", "read_sessions", "VERSION"]

VERSION = 1
MAGIC = b"HT"
_HEAD = struct.Struct("<2sBBI")

HEADER, EVENTS, NAMES = 0, 1, 2

#: a task ran on a worker's executor: (RUN, start_ns, end_ns, key, fn_id)
RUN = 1
#: an input arrived from a peer: (FETCH, asked_ns, arrived_ns, key, nbytes, source rank)
FETCH = 2
#: rank 0 sent a task to a worker: (PLACE, start_ns, end_ns, key, rank) of the sends it went out with
PLACE = 3
#: rank 0 lost a worker: (LOST, ns, rank, reason)
LOST = 4

#: per kind, what each field after the kind is: "t" a time, "s" a string, "i" an integer
FIELDS: dict[int, str] = {RUN: "ttss", FETCH: "ttsii", PLACE: "ttsi", LOST: "tis"}


def _chunk(kind: int, payload: bytes) -> bytes:
    return _HEAD.pack(MAGIC, VERSION, kind, len(payload)) + payload


def encode_header(header: dict[str, Any]) -> bytes:
    """The HEADER chunk of a session."""
    return _chunk(HEADER, json.dumps(header, sort_keys=True).encode())


def encode_names(functions: dict[str, str]) -> bytes:
    """A NAMES chunk: function id -> its name."""
    return _chunk(NAMES, json.dumps({"functions": functions}, sort_keys=True).encode())


def encode_events(events: Iterable[tuple]) -> bytes:
    """An EVENTS chunk of event tuples (kind first, then the fields :data:`FIELDS` names)."""
    strings: dict[str, int] = {}
    ints: list[int] = [0]
    base = None
    for event in events:
        kind = event[0]
        specs = FIELDS[kind]
        if len(event) != len(specs) + 1:
            raise ValueError(f"trace event {event!r}: {len(specs)} fields expected after the kind")
        ints.append(kind)
        for spec, value in zip(specs, event[1:]):
            if spec == "t":
                if base is None:
                    base = ints[0] = value
                ints.append(value - base)
            elif spec == "s":
                index = strings.get(value)
                if index is None:
                    index = strings[value] = len(strings)
                ints.append(index)
            else:
                ints.append(value)
    packed = array("q", ints)
    if sys.byteorder == "big":
        packed.byteswap()
    text = json.dumps(list(strings)).encode()
    return _chunk(EVENTS, zlib.compress(text + b"\n" + packed.tobytes(), 6))


def _decode_events(payload: bytes) -> list[tuple]:
    raw = zlib.decompress(payload)
    cut = raw.index(b"\n")
    strings = json.loads(raw[:cut])
    ints = array("q")
    ints.frombytes(raw[cut + 1:])
    if sys.byteorder == "big":
        ints.byteswap()
    base, i, n, out = ints[0], 1, len(ints), []
    while i < n:
        kind = ints[i]
        spec = FIELDS.get(kind)
        if spec is None:
            raise HpcdistError(f"unknown trace event kind {kind}")
        values: list[Any] = [kind]
        for j, s in enumerate(spec, i + 1):
            v = ints[j]
            values.append(v + base if s == "t" else strings[v] if s == "s" else v)
        out.append(tuple(values))
        i += 1 + len(spec)
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
