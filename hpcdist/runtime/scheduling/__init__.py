"""The pure scheduling core: the vocabulary, SchedulerState, the per-worker table, policy and invariant checks.

No MPI, no threads, no clock: everything here is unit-tested in microseconds.
"""
