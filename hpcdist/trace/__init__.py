"""The trace of a run: every rank records its events, the merge draws them on one timeline.

- :mod:`~hpcdist.trace.recorder`: a rank's bounded buffer of event tuples and its file
  (``HPCDIST_TRACE_DIR``, ``HPCDIST_TRACE=off``);
- :mod:`~hpcdist.trace.format`: the event kinds and the on-disk chunks;
- :mod:`~hpcdist.trace.chrome`: the per-rank files -> one Chrome Trace Event JSON (``hpcdist trace RUN_DIR``);
- :mod:`~hpcdist.trace.check`: a strict checker of such JSON.

What the runtime records, and where, is in :mod:`hpcdist.runtime.tracing`.
"""
