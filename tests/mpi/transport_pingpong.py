"""Ping-pong of headers between rank 0 and every worker, plus loopback on rank 0."""

import threading

from transport_common import run

from hpcdist.transports.mpi import MPITransport

N = 200


def main():
    t = MPITransport.from_world()
    if t.rank == 0:
        # loopback from another thread (the driver) and from the comm thread itself
        th = threading.Thread(target=lambda: t.send(0, ("loop", "thread")))
        th.start()
        th.join()
        t.send(0, ("loop", "self"))
        got = sorted(t.recv(5)[1][1] for _ in range(2))
        assert got == ["self", "thread"], got
        print("loopback ok", flush=True)
        for w in range(1, t.size):
            for i in range(N):
                t.send(w, ("ping", i))
                src, header, bufs = t.recv(10)
                assert (src, header, bufs) == (w, ("pong", i), []), (src, header, bufs)
        for w in range(1, t.size):
            t.send(w, ("stop",))
        hosts = sorted({t.host_of(r) for r in range(t.size)})
        print(f"pingpong ok size={t.size} round_trips={N * (t.size - 1)} hosts={len(hosts)}", flush=True)
    else:
        while True:
            src, header, _ = t.recv(None)
            if header[0] == "stop":
                break
            t.send(src, ("pong", header[1]))
    t.close()


run(main)
