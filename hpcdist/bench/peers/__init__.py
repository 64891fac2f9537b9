"""Benchmark subjects other than hpcdist's runtime: raw MPI, mpi4py.futures, dask.distributed.

These modules are the peers' own code, not hpcdist's runtime: they use mpi4py and dask
directly (imported inside functions, only when that peer is measured).
"""
