"""Message kinds of the runtime's wire protocol.

A message is ``(kind, *fields)``: a small tuple header (pickled by the transport) plus
out-of-band buffers. Payload values travel as ``(data, nbuf)`` pairs: ``data`` is the
in-band pickle and the next ``nbuf`` buffers of the message are its out-of-band buffers.

Rank 0, driver thread -> scheduler thread (loopback, never pickled):
    SUBMIT (tasks)                 tasks: list of (TaskSpec, fn_id, fn_bytes, data, buffers)
    SCATTER (items)                items: list of (key, ranks | None, data, buffers)
    CANCEL (keys)
    GATHER (keys, cfuture)         cfuture receives {key: (data, buffers)}
    QUERY (name, args, cfuture)    cfuture receives scheduler.<name>(*args), name one of QUERIES
    CLOSE (code, cfuture)          shut the workers down
Scheduler -> worker:
    COMPUTE (entries, path, frees) path: rank 0's sys.path when it changed, else None;
                                   frees: keys to drop before the tasks (or None);
                                   entry: (key, fn_id, fn_bytes | None, data, nbuf, {dep: [holders] | pushed}),
                                   pushed: (pusher, [holders]): pusher was told to push the dep here
                                   (the worker asks the next of holders only if the pusher dies)
    PUT (key, data, nbuf)          GET (req, keys)   FREE (keys)   STEAL (key)   SHUTDOWN (code)
    PUSH (items)                   items: [(key, dest)]: send these keys to worker dest as HAVE (as if it sent WANT)
    PEER_DOWN (rank, reason)       worker rank was lost (sent to every live worker once rank 0 has applied the
                                   loss): forget it, ask the next holder of each input asked of it
Worker -> scheduler:
    HELLO (info)                   info: {"host", "cores", "pid"}
    DONE (records)                 record: (key, nbytes, duration, fetched_keys, small_result_pickle | None)
    FAILED (key, exc_bytes, traceback_text, duration, fetched_keys, infra)
                                   infra: True when the task failed only because an input could not come
                                   from a dead peer (PeerLost): placed again, its own retries kept
    DATA (req, entries)            entries: [(key, data | None if not held | str why it cannot travel, nbuf)],
                                   buffers in order
    STEAL_REPLY (key, ok)          BYE ()
From the transport (rank 0; the source is the dead rank):
    LOST (reason)                  the worker died (see transports.base.PEER_LOST)
Worker -> worker:
    WANT (keys)                    HAVE (entries) as in DATA; a key not held yet is sent when it lands;
                                   data None: the key cannot come, every holder the sender knew of died
"""

from hpcdist.transports.base import PEER_LOST

SUBMIT = "submit"
SCATTER = "scatter"
CANCEL = "cancel"
GATHER = "gather"
QUERY = "query"
CLOSE = "close"

COMPUTE = "compute"
PUT = "put"
GET = "get"
FREE = "free"
STEAL = "steal"
SHUTDOWN = "shutdown"

HELLO = "hello"
DONE = "done"
FAILED = "failed"
DATA = "data"
STEAL_REPLY = "steal-reply"
BYE = "bye"
LOST = PEER_LOST

WANT = "want"
HAVE = "have"
PUSH = "push"
PEER_DOWN = "peer-down"

#: persistent-id tag the client uses for a Future inside task arguments
FUTURE_REF = "hpcdist-future"
