"""YAML pipelines: ``program.pipeline`` -> task graph -> run on a Client, with a resumable run directory.

Modules: :mod:`~hpcdist.pipeline.model` (parsing and validation), :mod:`~hpcdist.pipeline.graph`
(expansion into concrete tasks), :mod:`~hpcdist.pipeline.keys` (cache keys),
:mod:`~hpcdist.pipeline.rundir` (stored results, saved outputs, output hash),
:mod:`~hpcdist.pipeline.manifest` (manifest, progress, tracebacks),
:mod:`~hpcdist.pipeline.execute` (the worker side of one task), :mod:`~hpcdist.pipeline.runner`
(dispatch, retries, timeouts, resume, walltime), :mod:`~hpcdist.pipeline.run` (``hpcdist run SPEC``).
"""
