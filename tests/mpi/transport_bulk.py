"""Bulk data (-n 3): a 64 MiB array rank 1 -> rank 2 arrives intact and zero-copy; with
CHUNK_BYTES lowered to 1 MiB a 5.5 MiB buffer travels as 6 chunks; several buffers, an empty
buffer and many small messages keep their order; a buffer from another thread arrives too."""

import threading

import numpy as np
from transport_common import run

import hpcdist.transports.mpi as mpi_backend
from hpcdist.transports.mpi import MPITransport
from hpcdist.runtime.serialize import dumps, loads

MB = 1 << 20


def main():
    t = MPITransport.from_world()
    r = t.rank
    if r == 1:
        big = np.arange(64 * MB // 8, dtype=np.int64)  # 64 MiB
        data, bufs = dumps({"x": big, "tag": "big"})
        assert len(bufs) == 1 and len(data) < 1000, (len(data), len(bufs))
        t.send(2, ("big", data), bufs)
        # chunking path: 1 MiB chunks, buffer of 5.5 MiB -> 6 messages, plus a small and an empty one
        mpi_backend.CHUNK_BYTES = MB
        odd = np.random.default_rng(7).integers(0, 2**31, (11 * MB // 2) // 4, dtype=np.int32)
        two = np.linspace(0, 1, 5000).reshape(100, 50).T  # F-contiguous view, 40 kB
        t.send(2, ("chunked", float(odd.sum()), float(two.sum())), [odd, two, b""])
        mpi_backend.CHUNK_BYTES = 1 << 30
        # many small messages in order, from the comm thread and a second thread interleaved
        th = threading.Thread(target=lambda: [t.send(2, ("th", i), [np.full(2000, i, np.int32)]) for i in range(300)])
        th.start()
        for i in range(300):
            t.send(2, ("seq", i))
        th.join()
        t.send(2, ("end",))
        assert t.recv(60)[1] == ("bye",)
    elif r == 2:
        src, (kind, data), bufs = t.recv(60)
        assert (src, kind) == (1, "big")
        obj = loads(data, bufs)
        arr = obj["x"]
        assert arr.dtype == np.int64 and arr.shape == (64 * MB // 8,)
        assert np.array_equal(arr, np.arange(64 * MB // 8, dtype=np.int64)), "64 MiB array corrupted"
        assert np.shares_memory(arr, bufs[0]) and arr.flags.writeable, "not zero-copy"
        print(f"big ok nbytes={arr.nbytes} zero_copy=True buffer_type={type(bufs[0]).__name__}", flush=True)
        src, header, bufs = t.recv(60)
        assert header[0] == "chunked", header
        assert [b.nbytes for b in bufs] == [11 * MB // 2, 40000, 0], [b.nbytes for b in bufs]
        odd = np.frombuffer(bufs[0], dtype=np.int32)
        expect = np.random.default_rng(7).integers(0, 2**31, (11 * MB // 2) // 4, dtype=np.int32)
        assert np.array_equal(odd, expect), "chunked buffer corrupted"
        two = np.frombuffer(bufs[1], dtype=np.float64)
        assert float(two.sum()) == header[2]
        print("chunked ok", flush=True)
        seq = th = 0
        while True:
            src, header, bufs = t.recv(60)
            if header == ("end",):
                break
            if header[0] == "seq":
                assert header[1] == seq, (header, seq)
                seq += 1
            else:
                assert header[1] == th and np.frombuffer(bufs[0], np.int32)[0] == th, (header, th)
                th += 1
        assert seq == th == 300, (seq, th)
        # counted at the end: a recv may take the data of later messages along already.
        # 64 MiB in one piece; 5.5 MiB in 1 MiB chunks + the 40 kB buffer (b"" sends nothing); 300
        chunks = t.stats["data_messages_received"]
        assert chunks == 1 + (6 + 1) + 300, chunks
        print(f"chunks ok data_messages={chunks}", flush=True)
        t.send(1, ("bye",))
        print(f"order ok seq={seq} thread={th}", flush=True)
    t.close()


run(main)
