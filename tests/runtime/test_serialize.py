"""Tests of hpcdist.runtime.serialize: protocol-5 out-of-band buffers, persistent ids, cloudpickle."""

import pickle

import numpy as np
import pytest

import cloudpickle

from hpcdist.runtime.serialize import (
    INBAND_MAX,
    PLAIN_MAX_ITEMS,
    PROTOCOL,
    dumps,
    is_plain,
    is_plain_call,
    loads,
    nbytes,
)


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


PLAIN = [
    None, True, 0, -(10**40), 2.5, -0.0, float("inf"), 1 + 2j, "", "text é", b"\x00bytes",
    (), (1, "a"), [1, [2.0, (None, b"x")]], {"a": 1, 2: (3, 4)}, ((5,), {}),
    list(range(PLAIN_MAX_ITEMS)),
]
NOT_PLAIN = [
    object(), Ref("k"), np.float64(1.0), np.zeros(3), bytearray(b"x"), {1, 2}, frozenset(),
    [1, object()], {"k": Ref("k")}, {(1, 2): 3}, list(range(PLAIN_MAX_ITEMS + 1)), [[[[[1]]]]],
    True.__class__, len, lambda: 1,
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_take_the_c_pickler_with_the_same_bytes(value):
    assert is_plain(value)
    data, bufs = dumps(value)
    # byte for byte what cloudpickle writes: keys derived from these bytes do not depend on the path
    assert data == cloudpickle.dumps(value, protocol=PROTOCOL) and bufs == []
    assert loads(data) == value


@pytest.mark.parametrize("value", NOT_PLAIN, ids=lambda v: type(v).__name__)
def test_other_values_are_not_plain(value):
    assert not is_plain(value)


def test_plain_values_never_call_persistent_id():
    calls = []
    data, _ = dumps(((1, "x"), {"k": 2.0}), persistent_id=lambda o: calls.append(o))
    assert calls == [] and loads(data) == ((1, "x"), {"k": 2.0})


def test_plain_subclasses_take_the_general_path():
    class Number(int):
        pass

    assert not is_plain(Number(3)) and not is_plain((Number(3),))
    data, _ = dumps(Number(3))  # a local class: only cloudpickle can send it
    out = loads(data)
    assert out == 3 and type(out).__name__ == "Number"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1,), {}), ((1, (2, 3)), {"a": "b"}), ((object(),), {}), ((1,), {"a": object()}),
     (tuple(range(PLAIN_MAX_ITEMS - 2)), {}), (tuple(range(PLAIN_MAX_ITEMS - 1)), {}),
     ((list(range(30)),), {"k": list(range(30))}), (([[[1]]],), {}), (([[[[1]]]],), {}), ((), {"k": [[[1]]]})],
)
def test_is_plain_call_agrees_with_is_plain(args, kwargs):
    assert is_plain_call(args, kwargs) == is_plain((args, kwargs))
