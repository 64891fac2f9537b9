"""The runtime: rank 0's client and scheduler loop, the workers, and the worlds that join them.

Data flow (drawn as in CPython's ``concurrent/futures/process.py``)::

  rank 0                                                           | ranks 1..N-1
                                                                   |
  driver --submit/map/gather--> Client --register--> FutureTable   |
    ^                             |      futures per key, their    |
    |                             |      condition, callbacks,     |
    +-- Future.result() ----------+------ the release doorbell     |
                                  |            ^        |          |
                  tasks, requests |     finish |        | ring     |
                  (loopback send) |    futures |        | (keys)   |
                                  v            |        v          |
                Scheduler loop (whoever holds the Baton)           |
                  message -> event -> SchedulerState.handle        |
                                         tasks, WorkerTable,       |
                                         policy (pure Python)      |
                  instructions -> sends                            |
                                  |                                |
                                  v                                |
                Transport (inproc | pipe | mpi) <------------------|-> Worker: executor, comm
                                                                   |    thread, data store
                                                                   |      ^  |  peer transfer
                                                                   |      |  v  (push / fetch)
                                                                   |    Worker

1. ``Client.submit``/``map`` build tasks (a key, the function's hash, the arguments with futures
   replaced by references), register one :class:`~hpcdist.runtime.futures.Future` per key in the
   client's :class:`~hpcdist.runtime.futuretable.FutureTable` and send the tasks to rank 0 over the
   transport's loopback. The table counts the live futures of each key; when the last one is
   dropped, the key goes onto the table's doorbell (no message).
2. The :class:`~hpcdist.runtime.scheduler.Scheduler` loop turns each message into an event of
   :mod:`hpcdist.runtime.scheduling.vocabulary` and calls ``SchedulerState.handle``. The state is
   pure Python (no MPI, threads or clock): its task table, its ``WorkerTable`` (one record per
   rank: occupancy, holdings, replicas, steals) and the decisions of
   :mod:`~hpcdist.runtime.scheduling.policy` (placement, stealing, which holder sends an input).
   It returns instructions; the loop turns them into sends to workers (compute, push an input to
   a peer, free, steal) and into notes to the client (finished, erred, cancelled), which finish
   the futures. At the end of a round the loop rings the doorbell: released keys become events.
   Whichever thread holds the :class:`~hpcdist.runtime.baton.Baton` runs the loop: a client thread
   waiting for a result, or the scheduler thread once nobody has driven it for 1 ms.
3. A :class:`~hpcdist.runtime.worker.Worker` keeps results in its data store, runs tasks on its
   executor and, while the executor is busy, receives on its communication thread (the same
   Baton). An input held by another worker travels between the two directly: the scheduler tells
   the holder to push it when it sends the task, and the worker fetches what is still missing.
   Rank 0 never relays worker-to-worker data.
4. ``result()``/``gather`` take a small result from rank 0 (it came with the task's done report)
   and fetch a large one from a worker that holds it.

The world (:mod:`hpcdist.runtime.world`) is what the client talks to; each backend
(:mod:`hpcdist.backends`) starts one around a transport (:mod:`hpcdist.transports`). The
pure core is :mod:`hpcdist.runtime.scheduling`; docs/architecture.md lists every module and
which class writes each table.
"""
