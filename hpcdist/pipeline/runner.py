"""Running a pipeline on a :class:`~hpcdist.runtime.client.Client`.

Rank 0 dispatches concrete tasks as their dependencies finish, at most one per worker at a
time (so ``running`` and per-task timeouts mean what they say), retries failures, reuses
valid stored results, writes the manifest as it goes and stops cleanly on the walltime
warning, the job's end time, Ctrl-C/SIGTERM or ``on_error: stop``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hpcdist.exitcodes import ExitCode
from hpcdist.errors import TaskInterrupted, TaskTimeout
from hpcdist.pipeline.execute import Element, load_stored, run_task
from hpcdist.pipeline.graph import OK_STATES, TERMINAL, Item, Plan
from hpcdist.pipeline.imports import resolve_callable
from hpcdist.pipeline.codehash import reachable_code
from hpcdist.pipeline.keys import function_identity, make_key_fn
from hpcdist.pipeline.model import Pipeline, Ref
from hpcdist.pipeline.manifest import (
    TaskRecord, disk_full, lost_workers, manifest, previous_records, progress, remote_traceback, traceback_file,
)
from hpcdist.pipeline.rundir import copy_outputs, output_hash, stored_meta
from hpcdist.paths import RunDir, atomic_write, write_json

__all__ = ["RunResult", "Runner", "Deadline"]

#: seconds rank 0 waits past a task's timeout before it gives up on it itself
TIMEOUT_SLACK = 2.0
#: how often the manifest is rewritten while tasks finish (at least)
MANIFEST_INTERVAL = 1.0
#: a large manifest is rewritten less often: at most this share of rank 0's time goes to it
MANIFEST_SHARE = 0.2
#: seconds between rewrites of progress.json (also written at the start and at the end)
PROGRESS_INTERVAL = 15.0


@dataclass
class Deadline:
    """When the job must be finished: ``end`` (epoch seconds) or None for no limit.

    ``margin`` seconds are kept free at the end for writing the manifest and shutting down.
    """

    end: float | None = None
    margin: float = 10.0

    @classmethod
    def from_environment(cls, walltime: int | None = None, environ: dict[str, str] | None = None) -> Deadline:
        """``SLURM_JOB_END_TIME`` or ``HPCDIST_JOB_END_TIME`` (epoch seconds); else, inside a batch
        job, its start (``SLURM_JOB_START_TIME``, or now) plus ``walltime``; else no limit."""
        env = os.environ if environ is None else environ
        for name in ("SLURM_JOB_END_TIME", "HPCDIST_JOB_END_TIME"):
            text = env.get(name, "").strip()
            if text.isdigit() and int(text) > 0:
                return cls(float(text))
        if walltime and ("SLURM_JOB_ID" in env or "JOB_ID" in env):
            start = env.get("SLURM_JOB_START_TIME", "")
            return cls((float(start) if start.isdigit() else time.time()) + walltime)
        return cls(None)

    def left(self, now: float | None = None) -> float:
        """Seconds left before the margin (infinite without a limit)."""
        if self.end is None:
            return float("inf")
        return self.end - self.margin - (time.time() if now is None else now)


@dataclass
class RunResult:
    """How a run ended: exit ``code`` (:class:`~hpcdist.exitcodes.ExitCode`), counts, hash."""

    code: int
    counts: dict[str, int]
    output_hash: str
    reason: str = ""
    manifest: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # what could not be written (disk full ...)


class Runner:
    """Runs one pipeline into one run directory.

    Args:
        client: a connected client (any backend).
        pipeline: the validated pipeline.
        run_dir: the run directory (created if needed; stored results there are reused).
        deadline: the job's end time.
        walltime_event: set when the walltime warning arrived.
        stop_event: set on Ctrl-C/SIGTERM.
        progress: called with ``(counts, running, elapsed)`` after every change.
        log: receives plain log lines (rank 0's log).
        cancelled: asked when the walltime warning comes: True if it is really a cancel
            (Grid Engine's qdel -notify sends the same signal), which stops as SIGTERM does.
    """

    def __init__(self, client: Any, pipeline: Pipeline, run_dir: Path, *, deadline: Deadline | None = None,
                 walltime_event: threading.Event | None = None, stop_event: threading.Event | None = None,
                 progress: Callable[[dict[str, int], int, float], None] | None = None,
                 log: Callable[[str], None] | None = None, cancelled: Callable[[], bool] | None = None) -> None:
        self.client = client
        self.pipeline = pipeline
        self.run_dir = Path(run_dir)
        self.dir = RunDir(run_dir)
        self.deadline = deadline or Deadline()
        self.walltime_event = walltime_event or threading.Event()
        self.stop_event = stop_event or threading.Event()
        self.progress = progress or (lambda counts, running, elapsed: None)
        self.log = log or (lambda line: None)
        self.cancelled = cancelled or (lambda: False)
        self.nonce = uuid.uuid4().hex
        self.targets = {n: pipeline.target(n) for n in pipeline.tasks}
        identities = {}
        self.covered: dict[str, list[str]] = {}  # task name -> what its code hash covers (rank 0's log)
        for n, t in pipeline.tasks.items():
            fn = resolve_callable(*self.targets[n], pipeline.import_dirs)
            identities[n] = function_identity(fn, pipeline.import_dirs, t.version)
            self.covered[n] = reachable_code(fn, pipeline.import_dirs)[1]
        self.plan = Plan(pipeline, make_key_fn(identities, self.nonce))
        self.records: dict[str, TaskRecord] = {}
        self.futures: dict[str, Any] = {}  # tid -> future of its value (computed or loaded)
        self.running: dict[str, Any] = {}  # tid -> future of the attempt in flight
        self.done_q: queue.SimpleQueue = queue.SimpleQueue()
        self.queue: deque[Item] = deque()  # ready, not reusable, waiting for a free worker
        self.durations: dict[str, tuple[int, float]] = {}  # task name -> (n, mean seconds)
        self.started = time.time()
        self._manifest_at = 0.0
        self._progress_at: float | None = None
        self._manifest_cost = 0.0  # seconds the last rewrite took
        self.reason = ""
        self.io_errors: list[str] = []  # writes to the run directory that failed (disk full ...)
        self.previous = previous_records(self.dir.manifest)
        # task name -> the definitions that depend on it; tid -> dependents known to be finished
        self.consumers = {n: [m for m, t in pipeline.tasks.items() if n in t.deps] for n in pipeline.tasks}
        self._finished_dependents: dict[str, int] = {}
        self.lost: list[dict[str, Any]] = []  # the manifest's lost_workers: workers lost during this run
        self._losses_seen = len(client.recoveries)  # the client's losses before this run are not its own

    # ---- the loop ---------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run until every task is terminal or the run must stop; write manifest and outputs."""
        self.dir.ensure_layout()
        capacity = max(1, self.client.nworkers)
        self.log(f"run {self.run_dir}: {len(self.pipeline.tasks)} task definitions, {capacity} workers")
        for name, covered in self.covered.items():
            more = f" and {len(covered) - 30} more" if len(covered) > 30 else ""
            self.log(f"{name}: the key covers {', '.join(covered[:30])}{more}")
        while True:
            self._check_stop()
            if len(self.client.recoveries) > self._losses_seen:  # a worker was lost: fewer run at a time
                self._note_losses()
                capacity = max(1, self.client.nworkers)
            self._take_ready(capacity)
            self._report()
            if self.plan.stopped or (not self.running and (self.plan.finished() or not self._pending())):
                break
            self._check_timeouts()  # every pass: a busy queue must not postpone a timeout
            try:
                tid, fut = self.done_q.get(timeout=0.2)
            except queue.Empty:
                continue
            self._finish(tid, fut)
            while True:  # drain what else finished meanwhile
                try:
                    tid, fut = self.done_q.get_nowait()
                except queue.Empty:
                    break
                self._finish(tid, fut)
        return self._close()

    def _pending(self) -> bool:
        counts = self.plan.counts()
        return counts.get("waiting", 0) + counts.get("ready", 0) > 0

    def _check_stop(self) -> None:
        if self.plan.stopped:
            return
        if self.walltime_event.is_set() and not self.stop_event.is_set() and self.cancelled():
            self.log("the warning signal came with a cancel request (hpcdist cancel): stopping as cancelled")
            self.stop_event.set()
        if self.stop_event.is_set():
            self.reason = "interrupted"
            self.log("interrupted: cancelling running tasks")
            self.plan.stop()
            for tid, fut in list(self.running.items()):
                self.client.cancel([fut])
                self.records[tid].error = "interrupted"
                self.running.pop(tid)
        elif self.walltime_event.is_set():
            self.reason = "walltime"
            self.log("walltime warning: no new tasks; running ones may finish")
            self.plan.stop()
        elif self.deadline.left() <= 0:
            self.reason = "walltime"
            self.log("job end time reached: no new tasks")
            self.plan.stop()

    def _take_ready(self, capacity: int) -> None:
        while not self.plan.stopped:  # reused results can make more tasks ready at once
            fresh = self.plan.ready()
            if not fresh:
                break
            for item in fresh:
                if not self._reuse(item):
                    self.queue.append(item)
        while self.queue and len(self.running) < capacity and not self.plan.stopped:
            item = self.queue.popleft()
            if item.state != "ready":
                continue
            mean = self.durations.get(item.name, (0, 0.0))[1]
            if mean and mean > self.deadline.left():
                self.reason = "walltime"
                self.log(f"{item.tid}: expected {mean:.1f} s, only {self.deadline.left():.1f} s left: stopping")
                self.plan.stop()
                return
            self._dispatch(item)

    def _reuse(self, item: Item) -> bool:
        if not self.pipeline.tasks[item.name].cache:
            return False
        meta = stored_meta(self.dir.objects, item.key, verify=True)
        if meta is None:
            if (self.dir.objects / f"{item.key}.meta.json").exists():
                self.log(f"{item.tid}: stored result incomplete or its sha256 does not match: recomputing")
            return False
        rec = self.records.setdefault(item.tid, TaskRecord())
        rec.file, rec.bytes, rec.host = meta["file"], meta["bytes"], meta.get("host")
        rec.start, rec.end = meta.get("start"), meta.get("end")
        old = self.previous.get(item.key, {})
        rec.rank, rec.attempts, rec.lost_runs = old.get("rank"), old.get("attempts", 0), old.get("lost_runs", 0)
        self.plan.done(item.tid, meta.get("length"), cached=True)
        return True

    def _note_losses(self) -> None:
        """Record the workers lost since the last look (``client.recoveries``; rank 0's log has their
        line): the manifest's ``lost_workers`` and each task's ``lost_runs``; a task put back on
        another worker starts its timeout again."""
        losses = self.client.recoveries[self._losses_seen:]
        self._losses_seen += len(losses)
        for entry in lost_workers(losses, self.plan):
            self.lost.append(entry)
            for tid in ([entry["running"]] if entry["running"] else []) + entry["recomputed"]:
                self.records.setdefault(tid, TaskRecord()).lost_runs += 1
            for tid in set(entry["requeued"]) & set(self.running):
                self.records[tid].dispatched = time.time()

    # ---- dispatch -----------------------------------------------------------------------------

    def _value_future(self, tid: str) -> Any:
        fut = self.futures.get(tid)
        if fut is None:  # a reused result: load it on a worker once, when first needed
            rec = self.records[tid]
            path = str(self.dir.objects / str(rec.file))
            fut = self.futures[tid] = self.client.submit(load_stored, path, key=f"load-{self.plan.items[tid].key}")
        return fut

    def _substitute(self, value: Any) -> Any:
        if isinstance(value, Ref):
            tids = self.plan.group(value.name) or []
            if self.plan.is_mapped(value.name):
                return [self._value_future(t) for t in tids]
            return self._value_future(tids[0])
        if isinstance(value, (list, tuple)):
            return [self._substitute(v) for v in value]
        if isinstance(value, dict):
            return {k: self._substitute(v) for k, v in value.items()}
        return value

    def _dispatch(self, item: Item) -> None:
        t = self.pipeline.tasks[item.name]
        args = list(self._substitute(list(t.args)))
        if item.source is not None:
            src = self.plan.items[item.source]
            head = self._value_future(src.tid)
            args.insert(0, head if self.plan.is_mapped(src.name) else Element(head, item.index or 0))
        elif item.index is not None:
            args.insert(0, item.value)
        kwargs = self._substitute(dict(t.kwargs))
        rec = self.records.setdefault(item.tid, TaskRecord())
        rec.attempts += 1
        rec.error = None
        rec.dispatched = time.time()
        module, attr = self.targets[item.name]
        info = {"run_dir": str(self.run_dir), "key": item.key, "tid": item.tid, "timeout": t.timeout,
                "import_dirs": list(self.pipeline.import_dirs)}
        fut = self.client.submit(run_task, module, attr, tuple(args), kwargs, info,
                                 key=f"{item.key}~{rec.attempts}", workers=list(t.workers) or None,
                                 allow_other_workers=True)
        self.plan.mark(item.tid, "running")
        self.running[item.tid] = fut
        fut.add_done_callback(lambda f, tid=item.tid: self.done_q.put((tid, f)))

    # ---- completion ---------------------------------------------------------------------------

    def _finish(self, tid: str, fut: Any) -> None:
        if self.running.get(tid) is not fut:
            return  # a cancelled or timed-out attempt reporting late
        del self.running[tid]
        item = self.plan.items[tid]
        rec = self.records[tid]
        error: BaseException | None = None
        if fut.cancelled():
            error = TaskTimeout("cancelled")
        else:
            error = fut.exception()
        meta = stored_meta(self.dir.objects, item.key) if error is None else None
        if error is None and meta is None:
            error = RuntimeError(f"the result of {tid} was not stored in {self.dir.objects}")
        if error is not None:
            if isinstance(error, TaskInterrupted) and not self.stop_event.is_set():
                self.stop_event.wait(0.5)  # the same cancel is reaching rank 0 now
            if disk_full(error):
                self._io_failed(f"{tid}: its result could not be stored: {error}")
            self._failed(item, f"{type(error).__name__}: {error}", remote_traceback(error))
            return
        assert meta is not None
        rec.file, rec.bytes, rec.host = meta["file"], meta["bytes"], meta.get("host")
        rec.start, rec.end = meta.get("start"), meta.get("end")
        rec.rank = meta.get("rank")
        if rec.start is not None and rec.end is not None:
            n, mean = self.durations.get(item.name, (0, 0.0))
            self.durations[item.name] = (n + 1, mean + (rec.end - rec.start - mean) / (n + 1))
        self.futures[tid] = fut
        self.plan.done(tid, meta.get("length"))
        self._release(item)

    def _failed(self, item: Item, text: str, trace: str | None = None) -> None:
        rec = self.records[item.tid]
        retries = self.pipeline.tasks[item.name].retries
        rec.error = text.splitlines()[0][:2000] if text else "failed"
        rec.traceback = trace
        if trace:
            self.log(f"{item.tid}: attempt {rec.attempts} traceback:\n" + "".join(
                f"    {line}\n" for line in trace.rstrip("\n").splitlines()))
            try:
                write_text_atomic(self.dir.tracebacks / traceback_file(item.tid), trace)
            except OSError as exc:
                self.log(f"{item.tid}: could not write its traceback file: {exc}")
        if self.stop_event.is_set():  # lost to the interrupt (a worker that got Ctrl-C too)
            self.plan.set_state(item.tid, "not_run")
            return
        if rec.attempts <= retries and not self.plan.stopped:
            self.log(f"{item.tid}: attempt {rec.attempts} failed ({rec.error}); retrying")
            self.plan.mark(item.tid, "ready")
            self.queue.appendleft(item)
            return
        self.log(f"{item.tid}: failed after {rec.attempts} attempt(s): {rec.error}")
        self.plan.set_state(item.tid, "failed")

    def _io_failed(self, text: str) -> None:
        """The run directory's file system is full: dispatch nothing new, keep what is stored."""
        self.io_errors.append(text)
        self.log(f"write failed: {text}; no new tasks")
        if not self.plan.stopped:
            self.reason = self.reason or "disk_full"
            self.plan.stop()

    def _check_timeouts(self) -> None:
        now = time.time()
        for tid, fut in list(self.running.items()):
            timeout = self.pipeline.tasks[self.plan.items[tid].name].timeout
            rec = self.records[tid]
            if timeout and rec.dispatched is not None and now - rec.dispatched > timeout + TIMEOUT_SLACK:
                self.running.pop(tid)
                self.client.cancel([fut])
                self._failed(self.plan.items[tid], f"TaskTimeout: no result within its timeout of {timeout:g} s")

    def _release(self, item: Item) -> None:
        # drop futures nobody will read again, so workers can free the values; a cursor over
        # each dependency's dependents (terminal states are final, the list only grows) keeps
        # this linear in the number of tasks
        for d in item.deps:
            dep = self.plan.items[d]
            i = self._finished_dependents.get(d, 0)
            while i < len(dep.dependents) and self.plan.items[dep.dependents[i]].state in TERMINAL:
                i += 1
            self._finished_dependents[d] = i
            if i == len(dep.dependents) and all(self.plan.group(n) is not None for n in self.consumers[dep.name]):
                self.futures.pop(d, None)

    # ---- reporting ----------------------------------------------------------------------------

    def _report(self) -> None:
        counts = self.plan.counts()
        self.progress(counts, len(self.running), time.time() - self.started)
        now = time.monotonic()
        if self._progress_at is None or now - self._progress_at >= PROGRESS_INTERVAL:
            self._write_progress(counts, len(self.running))
            self._progress_at = now
        if time.time() - self._manifest_at >= max(MANIFEST_INTERVAL, self._manifest_cost / MANIFEST_SHARE):
            try:
                self._write_manifest()
            except OSError as exc:  # the previous manifest stays (atomic); retried at the next report
                self._manifest_at = time.time()
                if disk_full(exc):
                    self._io_failed(f"{RunDir.MANIFEST} could not be written: {exc}")
                else:
                    self.log(f"{RunDir.MANIFEST} could not be written: {exc}")

    def _manifest(self, final: bool = False, digest: str | None = None, code: int | None = None) -> dict[str, Any]:
        return manifest(self.plan, self.records, self.running, self.pipeline, self.client, self.started, self.reason,
                        final, digest, code, self.lost)

    def _write_progress(self, counts: dict[str, int], running: int) -> None:
        """``progress.json`` (atomically replaced)."""
        try:
            write_json(self.dir.progress, progress(counts, running), fsync=False)
        except OSError as exc:  # progress is advisory: never stop a run for it
            self.log(f"could not write {RunDir.PROGRESS}: {exc}")

    def _write_manifest(self, **kw: Any) -> dict[str, Any]:
        start = time.time()
        doc = self._manifest(**kw)
        write_json(self.dir.manifest, doc)
        self._manifest_at = time.time()
        self._manifest_cost = self._manifest_at - start
        return doc

    def _close(self) -> RunResult:
        if self.plan.stopped and self.running:
            self._drain()
        if len(self.client.recoveries) > self._losses_seen:  # lost while draining, or at the very end
            self._note_losses()
        self.plan.close()
        saved: dict[str, list[str | None]] = {}
        for name in self.pipeline.save:
            tids = [t for t in self.plan.group(name) or [] if not t.endswith("[]")]
            saved[name] = [self.records[t].file if self.plan.items[t].state in OK_STATES else None for t in tids]
        try:
            copy_outputs(self.run_dir, saved, {n for n in self.pipeline.save if self.plan.is_mapped(n)})
        except OSError as exc:
            self.io_errors.append(f"the outputs could not be copied to {self.dir.outputs}: {exc}")
            self.log(self.io_errors[-1])
        digest = output_hash(self.run_dir)
        counts = self.plan.counts()
        bad = counts.get("failed", 0) + counts.get("skipped", 0)
        if self.io_errors:
            code = ExitCode.IO_ERROR
        elif self.reason == "interrupted":
            code = ExitCode.INTERRUPTED
        elif self.reason == "walltime":
            code = ExitCode.WALLTIME
        elif bad or counts.get("not_run", 0):
            code = ExitCode.TASKS_FAILED
        else:
            code = ExitCode.OK
        try:
            if code == ExitCode.OK:
                atomic_write(self.dir.output_hash, (digest + "\n").encode())
            else:
                self.dir.output_hash.unlink(missing_ok=True)
        except OSError as exc:
            code = ExitCode.IO_ERROR
            self.io_errors.append(f"{self.dir.output_hash} could not be written: {exc}")
        try:
            doc = self._write_manifest(final=True, digest=digest, code=code)
        except OSError as exc:
            if code != ExitCode.IO_ERROR:
                code = ExitCode.IO_ERROR
            self.io_errors.append(f"the final {RunDir.MANIFEST} could not be written ({exc}); the one before stays")
            doc = self._manifest(final=True, digest=digest, code=code)
        self._write_progress(counts, 0)
        self.progress(counts, 0, time.time() - self.started)
        self.log(f"finished: exit status {code} ({code.name.lower()}), counts {counts}")
        return RunResult(code, counts, digest, self.reason, doc, list(self.io_errors))

    def _drain(self) -> None:
        """After a stop: let running tasks finish while the deadline allows."""
        while self.running:
            left = self.deadline.left()
            if left <= 0 or self.stop_event.is_set():
                for tid, fut in list(self.running.items()):
                    self.client.cancel([fut])
                    self.records[tid].error = "stopped before it finished"
                    self.plan.mark(tid, "not_run")
                self.running.clear()
                return
            self._check_timeouts()
            try:
                tid, fut = self.done_q.get(timeout=min(0.2, left))
            except queue.Empty:
                continue
            self._finish(tid, fut)
            self._report()



def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode(), fsync=False)
