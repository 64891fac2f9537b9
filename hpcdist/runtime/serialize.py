"""Payload serialization: cloudpickle with pickle protocol 5 and out-of-band buffers.

``dumps`` turns an object into a small in-band byte string plus a list of raw memoryviews
(numpy arrays, bytes-like objects exposing ``PickleBuffer``) that point into the original
objects' memory: nothing big is ever copied into the byte string. A transport sends each
buffer as its own message and ``loads`` rebuilds the object on top of the receive buffers,
so the unpickled numpy array shares memory with what the transport received.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable, Iterable, Sequence

import cloudpickle

#: pickle protocol of payloads: 5 is the first with out-of-band buffers
PROTOCOL = 5

#: buffers smaller than this many bytes stay in-band: one extra transport message costs
#: more than copying a few hundred bytes
INBAND_MAX = 1024

Payload = tuple[bytes, list[memoryview]]


class _IdPickler(cloudpickle.CloudPickler):
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
    buffers: list[memoryview] = []

    def callback(pb: pickle.PickleBuffer) -> bool:
        raw = pb.raw()  # 1-D unsigned-byte view of a C- or F-contiguous buffer, no copy
        if raw.nbytes < inband_max:
            return True  # true = serialize in-band
        buffers.append(raw)
        return False

    file = io.BytesIO()
    if persistent_id is None:
        pickler = cloudpickle.CloudPickler(file, protocol=PROTOCOL, buffer_callback=callback)
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
    file = io.BytesIO(data)
    if persistent_load is None:
        return pickle.Unpickler(file, buffers=buffers).load()
    return _IdUnpickler(file, persistent_load, buffers=buffers).load()


def nbytes(payload: tuple[bytes, Sequence[Any]]) -> int:
    """Total size in bytes of a ``(data, buffers)`` payload: in-band plus out-of-band."""
    data, buffers = payload
    return len(data) + sum(memoryview(b).nbytes for b in buffers)
