"""Payload serialization: cloudpickle with pickle protocol 5 and out-of-band buffers.

``dumps`` turns an object into a small in-band byte string plus a list of raw memoryviews
(numpy arrays, bytes-like objects exposing ``PickleBuffer``) that point into the original
objects' memory: nothing big is ever copied into the byte string. A transport sends each
buffer as its own message and ``loads`` rebuilds the object on top of the receive buffers,
so the unpickled numpy array shares memory with what the transport received.

Values of plain built-in types (numbers, strings, bytes, None and small tuples, lists and
dicts of them, see :func:`is_plain`) skip cloudpickle: the C pickler writes the same bytes
for them several times faster, and they can hold neither a buffer nor a persistent id.
"""

from __future__ import annotations

import io
import linecache
import os
import pickle
import types
from collections import ChainMap
from typing import Any, Callable, Iterable, Sequence

import cloudpickle

from hpcdist.errors import SerializationError

#: pickle protocol of payloads: 5 is the first with out-of-band buffers
PROTOCOL = 5

#: buffers smaller than this many bytes stay in-band: one extra transport message costs
#: more than copying a few hundred bytes
INBAND_MAX = 1024

#: containers (tuple, list, dict) :func:`is_plain` looks into hold at most this many items in all
PLAIN_MAX_ITEMS = 64
#: and are nested at most this deep
PLAIN_MAX_DEPTH = 4

Payload = tuple[bytes, list[memoryview]]

_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes})


def is_plain(obj: Any) -> bool:
    """Whether ``obj`` is made of plain built-in values only.

    Plain: ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes`` (exact
    types, no subclasses), and tuples, lists and dicts of them (at most
    :data:`PLAIN_MAX_ITEMS` items in all, nested at most :data:`PLAIN_MAX_DEPTH` deep). The C
    pickler writes such a value exactly as cloudpickle does (cloudpickle only differs for
    functions, classes and modules, and for objects it pickles by value), with no persistent
    id and no out-of-band buffer, so :func:`dumps` may take the fast path for it. The check
    is cheap by construction: it gives up on anything bigger.
    """
    if type(obj) in _ATOMS:
        return True
    return _plain_items(obj, PLAIN_MAX_DEPTH, PLAIN_MAX_ITEMS) >= 0


def is_plain_call(args: tuple, kwargs: dict) -> bool:
    """``is_plain((args, kwargs))`` for a call's positional and keyword arguments, faster."""
    atoms = _ATOMS
    budget = PLAIN_MAX_ITEMS - 2 - len(args)  # as if (args, kwargs) went through is_plain
    if budget < 0:
        return False
    for arg in args:
        if type(arg) not in atoms:
            budget = _plain_items(arg, PLAIN_MAX_DEPTH - 2, budget)
            if budget < 0:
                return False
    return not kwargs or _plain_items(kwargs, PLAIN_MAX_DEPTH - 1, budget) >= 0


def _plain_items(obj: Any, depth: int, budget: int) -> int:
    """``budget`` minus the items of ``obj`` (a container), or -1 if it is not plain."""
    kind = type(obj)
    if kind is tuple or kind is list:
        values = obj
    elif kind is dict:
        values = obj.values()
        for key in obj:
            if type(key) not in _ATOMS:
                return -1
    else:
        return -1
    budget -= len(obj)
    if budget < 0 or depth == 0:
        return -1
    atoms = _ATOMS
    for value in values:
        if type(value) not in atoms:
            budget = _plain_items(value, depth - 1, budget)
            if budget < 0:
                return -1
    return budget


_CLOUDPICKLE_CODE_REDUCE = cloudpickle.CloudPickler.dispatch_table[types.CodeType]
_DYNAMIC_FILENAME = "<dynamic-code>"


#: source files up to this size travel with the functions pickled by value from them
SOURCE_MAX = 1 << 20
_sources: dict[str, tuple[int, str | None]] = {}  # file name -> (id of linecache's lines, their text)


def _code_reduce(code: types.CodeType) -> Any:
    """cloudpickle's reduction of a code object, keeping its real file name and source.

    cloudpickle writes ``<dynamic-code>`` as the file name of every function it pickles by value
    (those of the driver script, ``__main__``), so tracebacks and debuggers on workers could not
    show the user's file. The real name makes them show ``driver.py, line N``; the source text
    (as :mod:`linecache` has it here) goes along, so a worker that cannot read the file (no
    shared file system, a notebook cell) still shows the lines.
    """
    rebuild, args = _CLOUDPICKLE_CODE_REDUCE(code)
    filename = code.co_filename
    args = tuple(filename if type(a) is str and a == _DYNAMIC_FILENAME else a for a in args)
    return _rebuild_code, (rebuild, args, filename, _source_of(filename))


def _source_of(filename: str) -> str | None:
    lines = linecache.getlines(filename)
    cached = _sources.get(filename)
    if cached is not None and cached[0] == id(lines):
        return cached[1]  # the same str object: pickled once per stream (memo)
    text = "".join(lines) if lines else None
    if text is not None and len(text) > SOURCE_MAX:
        text = None
    _sources[filename] = (id(lines), text)
    return text


def _rebuild_code(rebuild: Callable, args: tuple, filename: str, source: str | None) -> types.CodeType:
    """Unpickle a code object of :func:`_code_reduce`; make its source known to :mod:`linecache`."""
    if source is not None and not os.path.exists(filename):
        entry = linecache.cache.get(filename)
        if entry is None or len(entry) != 4 or entry[1] is not None:  # absent, lazy, or read from the file
            # no modification time: linecache.checkcache keeps the entry
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return rebuild(*args)


class _Pickler(cloudpickle.CloudPickler):
    """A CloudPickler whose by-value functions keep their file names (see :func:`_code_reduce`)."""

    dispatch_table = ChainMap({types.CodeType: _code_reduce}, *cloudpickle.CloudPickler.dispatch_table.maps)


class _IdPickler(_Pickler):
    """A CloudPickler that lets a callback replace some objects by persistent ids."""

    def __init__(self, file: io.BytesIO, persistent_id: Callable[[Any], Any], **kwargs: Any) -> None:
        # the C pickler looks the method up at __init__, so the callback must be set first
        self._pid = persistent_id
        super().__init__(file, **kwargs)

    def persistent_id(self, obj: Any) -> Any:  # noqa: D102 - pickle hook
        return self._pid(obj)


class _IdUnpickler(pickle.Unpickler):
    """An Unpickler that resolves persistent ids through a callback."""

    def __init__(self, file: io.BytesIO, persistent_load: Callable[[Any], Any], **kwargs: Any) -> None:
        self._pload = persistent_load
        super().__init__(file, **kwargs)

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 - pickle hook
        return self._pload(pid)


def dumps(
    obj: Any,
    *,
    persistent_id: Callable[[Any], Any] | None = None,
    inband_max: int = INBAND_MAX,
) -> Payload:
    """Serialize ``obj`` with cloudpickle, protocol 5, big buffers out of band.

    Args:
        obj: any object cloudpickle can handle (lambdas and closures included).
        persistent_id: optional ``callable(obj) -> id | None``; a non-None id replaces
            ``obj`` in the stream (the client replaces its Future objects by references).
            The ids themselves must be picklable.
        inband_max: buffers smaller than this many bytes are copied in-band instead.

    Returns:
        ``(data, buffers)``: the in-band bytes and a list of contiguous, 1-D byte
        memoryviews sharing memory with ``obj``. Do not mutate ``obj`` until the buffers
        have been sent.
    """
    if is_plain(obj):  # same bytes, no persistent id to find, no buffer: the C pickler alone
        return pickle.dumps(obj, PROTOCOL), []
    buffers: list[memoryview] = []

    def callback(pb: pickle.PickleBuffer) -> bool:
        raw = pb.raw()  # 1-D unsigned-byte view of a C- or F-contiguous buffer, no copy
        if raw.nbytes < inband_max:
            return True  # true = serialize in-band
        buffers.append(raw)
        return False

    file = io.BytesIO()
    if persistent_id is None:
        pickler = _Pickler(file, protocol=PROTOCOL, buffer_callback=callback)
    else:
        pickler = _IdPickler(file, persistent_id, protocol=PROTOCOL, buffer_callback=callback)
    pickler.dump(obj)
    return file.getvalue(), buffers


def loads(
    data: bytes | bytearray | memoryview,
    buffers: Iterable[Any] = (),
    *,
    persistent_load: Callable[[Any], Any] | None = None,
) -> Any:
    """Rebuild an object from :func:`dumps` output.

    Args:
        data: the in-band bytes.
        buffers: the out-of-band buffers, in order (memoryviews or uint8 numpy arrays as a
            transport delivers them). Objects such as numpy arrays are rebuilt on top of
            them without copying, and are writable if the buffers are.
        persistent_load: ``callable(id) -> object`` resolving the ids ``persistent_id``
            produced; required if the stream contains any.

    Returns:
        The object.

    Raises:
        pickle.UnpicklingError: the stream holds a persistent id but no ``persistent_load``
            was given, or the data is corrupt.
    """
    if persistent_load is None:
        return pickle.loads(data, buffers=buffers)
    return _IdUnpickler(io.BytesIO(data), persistent_load, buffers=buffers).load()


def load_result(key: str, data: bytes | bytearray | memoryview, buffers: Iterable[Any] = ()) -> Any:
    """:func:`loads` for the value of ``key`` arriving on rank 0; a failure names the key.

    Raises:
        SerializationError: the value cannot be rebuilt here (its class is not importable, its
            ``__reduce__`` raises, ...); the original error is the ``__cause__``.
    """
    try:
        return pickle.loads(data, buffers=buffers)
    except Exception as exc:  # noqa: BLE001 - whatever a __setstate__ or reducer raises
        raise SerializationError(
            f"the result of task {key!r} cannot be unpickled on rank 0: {type(exc).__name__}: {exc}"
        ) from exc


def nbytes(payload: tuple[bytes, Sequence[Any]]) -> int:
    """Total size in bytes of a ``(data, buffers)`` payload: in-band plus out-of-band."""
    data, buffers = payload
    return len(data) + sum(memoryview(b).nbytes for b in buffers)
