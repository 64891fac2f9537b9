"""Tests of hpcdist.runtime.serialize: protocol-5 out-of-band buffers, persistent ids, cloudpickle."""

import pickle

import numpy as np
import pytest

from hpcdist.runtime.serialize import INBAND_MAX, dumps, loads, nbytes


class Ref:
    """Stands in for a client Future: replaced by an id on the wire."""

    def __init__(self, key):
        self.key = key


def test_numpy_array_travels_out_of_band_and_zero_copy():
    arr = np.arange(100_000, dtype=np.float64)
    data, bufs = dumps({"a": arr})
    assert len(bufs) == 1
    assert len(data) < 500  # the 800 kB are not in the byte string
    assert isinstance(bufs[0], memoryview) and bufs[0].nbytes == arr.nbytes
    assert np.shares_memory(np.frombuffer(bufs[0], np.uint8), arr)  # dumps did not copy
    recv = np.empty(arr.nbytes, np.uint8)  # what a transport delivers
    recv[:] = np.frombuffer(bufs[0], np.uint8)
    out = loads(data, [recv])["a"]
    assert np.array_equal(out, arr)
    assert np.shares_memory(out, recv)  # loads did not copy either
    assert out.flags.writeable
    out[0] = 42.0
    assert recv[:8].view(np.float64)[0] == 42.0


def test_fortran_order_and_several_arrays_round_trip():
    a = np.asfortranarray(np.arange(60_000, dtype=np.int32).reshape(200, 300))
    b = np.ones(5000, dtype=np.complex128)
    data, bufs = dumps([a, b, "x"])
    assert [m.nbytes for m in bufs] == [a.nbytes, b.nbytes]
    a2, b2, x = loads(data, bufs)
    assert a2.flags.f_contiguous and np.array_equal(a2, a)
    assert np.array_equal(b2, b) and x == "x"


def test_small_buffers_stay_in_band():
    small = np.arange(10, dtype=np.int8)
    data, bufs = dumps(small)
    assert bufs == [] and small.nbytes < INBAND_MAX
    assert np.array_equal(loads(data), small)
    data, bufs = dumps(small, inband_max=0)
    assert len(bufs) == 1


def test_lambdas_and_closures_via_cloudpickle():
    base = 7

    def adder(x):
        return x + base

    data, bufs = dumps((lambda y: y * 3, adder))
    triple, add = loads(data, bufs)
    assert triple(5) == 15 and add(1) == 8


def test_persistent_id_round_trip_nested():
    refs = {k: Ref(k) for k in ("a", "b", "c")}
    obj = {"list": [refs["a"], [refs["b"], {"deep": refs["c"]}]], "n": 3, "arr": np.zeros(1000)}
    seen = []

    def pid(o):
        if isinstance(o, Ref):
            seen.append(o.key)
            return ("future", o.key)
        return None

    data, bufs = dumps(obj, persistent_id=pid)
    assert sorted(seen) == ["a", "b", "c"]
    assert b"Ref" not in data  # the class itself never went on the wire
    out = loads(data, bufs, persistent_load=lambda p: f"value-of-{p[1]}")
    assert out["list"] == ["value-of-a", ["value-of-b", {"deep": "value-of-c"}]]
    assert out["n"] == 3 and np.array_equal(out["arr"], np.zeros(1000))


def test_persistent_id_without_persistent_load_fails():
    data, bufs = dumps([Ref("k")], persistent_id=lambda o: o.key if isinstance(o, Ref) else None)
    with pytest.raises(pickle.UnpicklingError):
        loads(data, bufs)


def test_nbytes_counts_inband_and_buffers():
    arr = np.zeros(50_000, dtype=np.uint8)
    payload = dumps([arr, arr[::2].copy()])
    data, bufs = payload
    assert nbytes(payload) == len(data) + 50_000 + 25_000
    assert nbytes((b"abc", [])) == 3
    assert nbytes((b"", [np.zeros(10, np.float64), bytearray(4)])) == 84
