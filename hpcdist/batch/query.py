"""Asking SLURM and Grid Engine where jobs are, normalised to one small set of states.

One batched queue query per call (``squeue --states=all`` / ``qstat -u '*'``); only the jobs
missing from it are looked up in the accounting: ``sacct``, else SLURM's jobcomp file
(``JobCompLoc`` with ``jobcomp/filetxt``), and ``qacct`` under Grid Engine. Every command
goes through :func:`hpcdist.commands.run_command`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcdist import commands
from hpcdist.errors import CommandError

#: normalised job states
STATES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "UNKNOWN")
#: states a job never leaves
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"})


@dataclass
class JobStatus:
    """Where a job is.

    Attributes:
        job_id: the batch system's id.
        state: one of :data:`STATES`.
        raw_state: the batch system's own word for it (``CD``, ``qw``, ``failed 37`` ...).
        exit_code: the job's exit status once finished, if known.
        reason: why it is pending, or how it ended, when the batch system says.
        source: which command told (squeue, sacct, jobcomp, qstat, qacct).
        progress: the run's own ``progress.json``, if any (filled in by :class:`hpcdist.batch.jobs.Job`).
    """

    job_id: str
    state: str
    raw_state: str = ""
    exit_code: int | None = None
    reason: str = ""
    source: str = ""
    progress: dict[str, Any] | None = None


def query_states(
    system: str, job_ids: list[str], timeout: float = 30.0, submitted: dict[str, float] | None = None
) -> dict[str, JobStatus]:
    """The status of every job in ``job_ids``: one queue query, and one accounting lookup for
    all jobs missing from it (SLURM: one ``sacct``, or one read of the jobcomp file; Grid
    Engine: ``qacct -j`` takes a single id, so several finished jobs whose submission times are
    in ``submitted`` are read with one ``qacct -j -b TIME`` (every job started since), and the
    others with one ``qacct -j ID`` each).

    Raises:
        JobIdError: when an id is not in the system's syntax (nothing is run then).
        CommandError: when a batch command fails (its own message included).
    """
    from hpcdist.batch import get_system

    if system not in ("slurm", "sge"):
        raise CommandError(f"unknown batch system {system!r}; expected slurm or sge")
    checker = get_system(system)
    job_ids = [checker.check_job_id(j) for j in dict.fromkeys(job_ids)]
    if not job_ids:
        return {}
    if system == "slurm":
        found = slurm_queue(job_ids, timeout)
        missing = [j for j in job_ids if j not in found]
        if missing:
            found.update(slurm_finished_all(missing, timeout))
    else:
        found = sge_queue(job_ids, timeout)
        missing = [j for j in job_ids if j not in found]
        known = [j for j in missing if (submitted or {}).get(j) is not None]
        if len(known) > 1:
            assert submitted is not None
            found.update(sge_finished_since(known, min(submitted[j] for j in known), timeout))
        for job_id in missing:
            if job_id not in found:
                found[job_id] = sge_finished(job_id, timeout)
    return found


def _failed(result: commands.CommandResult) -> CommandError:
    return CommandError(f"{result.argv[0]} failed (exit {result.returncode}): {result.tail()}")


# --- SLURM ----------------------------------------------------------------------------------

_SLURM_STATES = {
    "PENDING": "PENDING", "CONFIGURING": "PENDING", "REQUEUED": "PENDING", "REQUEUE_HOLD": "PENDING",
    "REQUEUE_FED": "PENDING", "RESV_DEL_HOLD": "PENDING",
    "RUNNING": "RUNNING", "COMPLETING": "RUNNING", "SIGNALING": "RUNNING", "STAGE_OUT": "RUNNING",
    "RESIZING": "RUNNING", "SUSPENDED": "RUNNING", "STOPPED": "RUNNING",
    "COMPLETED": "COMPLETED", "CANCELLED": "CANCELLED", "REVOKED": "CANCELLED",
    "TIMEOUT": "TIMEOUT", "DEADLINE": "TIMEOUT",
    "FAILED": "FAILED", "NODE_FAIL": "FAILED", "OUT_OF_MEMORY": "FAILED", "BOOT_FAIL": "FAILED",
    "PREEMPTED": "FAILED", "SPECIAL_EXIT": "FAILED",
}  # fmt: skip


def slurm_state(raw: str) -> str:
    """Normalise a SLURM state (``RUNNING``, ``CANCELLED by 0``, ``CD`` is not accepted)."""
    word = raw.strip().split(" ", 1)[0].rstrip("+")
    return _SLURM_STATES.get(word, "UNKNOWN")


def slurm_exit(text: str) -> int | None:
    """The return code of a SLURM ``ExitCode`` (``rc:signal``); 128+signal when killed."""
    m = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if not m:
        return None
    rc, sig = int(m.group(1)), int(m.group(2))
    return 128 + sig if sig and not rc else rc


def slurm_queue_argv(job_ids: list[str]) -> list[str]:
    """``squeue`` over every state (finished jobs stay listed for MinJobAge), ``id|state|reason``."""
    return ["squeue", "--noheader", "--states=all", "--format=%i|%T|%r", "--jobs=" + ",".join(job_ids)]


def parse_squeue(stdout: str) -> dict[str, JobStatus]:
    """Parse ``id|STATE|reason`` lines."""
    out: dict[str, JobStatus] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0]:
            continue
        reason = parts[2] if len(parts) > 2 and parts[2] not in ("None", "(null)") else ""
        out[parts[0]] = JobStatus(parts[0], slurm_state(parts[1]), parts[1], None, reason, "squeue")
    return out


def slurm_queue(job_ids: list[str], timeout: float) -> dict[str, JobStatus]:
    """One ``squeue`` call for all ``job_ids``; jobs SLURM no longer knows are left out."""
    result = commands.run_command(slurm_queue_argv(job_ids), timeout=timeout, check=False)
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:
            return {}  # every id has been purged (squeue fails only when all are unknown)
        raise _failed(result)
    return {k: v for k, v in parse_squeue(result.stdout).items() if k in job_ids}


def sacct_argv(job_ids: list[str]) -> list[str]:
    """One ``sacct`` for all ``job_ids``: allocation lines only, ``JobID|State|ExitCode``."""
    return ["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", "JobID,State,ExitCode"]


def slurm_finished_all(job_ids: list[str], timeout: float) -> dict[str, JobStatus]:
    """Jobs gone from squeue: one ``sacct`` for all, else one read of the jobcomp file."""
    try:
        result = commands.run_command(sacct_argv(job_ids), timeout=timeout, check=False)
    except CommandError:
        result = None  # no sacct on this machine
    if result is not None and result.returncode == 0:
        out: dict[str, JobStatus] = {}
        for line in result.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 3 and parts[0] in job_ids and parts[0] not in out:
                out[parts[0]] = JobStatus(parts[0], slurm_state(parts[1]), parts[1], slurm_exit(parts[2]), "",
                                          "sacct")
        for job_id in job_ids:
            out.setdefault(job_id, JobStatus(job_id, "UNKNOWN", "", None, "no accounting record (yet)", "sacct"))
        return out
    return slurm_jobcomp_all(job_ids, timeout)


def slurm_finished(job_id: str, timeout: float) -> JobStatus:
    """One job gone from squeue (see :func:`slurm_finished_all`)."""
    return slurm_finished_all([job_id], timeout)[job_id]


def slurm_jobcomp_all(job_ids: list[str], timeout: float) -> dict[str, JobStatus]:
    """Look ``job_ids`` up in the jobcomp file named by one ``scontrol show config``."""
    result = commands.run_command(["scontrol", "show", "config"], timeout=timeout, check=False)
    config = dict(re.findall(r"^(\w+)\s*=\s*(.*?)\s*$", result.stdout, flags=re.M))
    if result.returncode != 0 or config.get("JobCompType") != "jobcomp/filetxt":
        return {j: JobStatus(j, "UNKNOWN", "", None, "not in the queue and no accounting (sacct, jobcomp)", "")
                for j in job_ids}
    records = parse_jobcomp_all(Path(config.get("JobCompLoc", "")), job_ids)
    out = {}
    for job_id in job_ids:
        record = records.get(job_id)
        if record is None:
            out[job_id] = JobStatus(job_id, "UNKNOWN", "", None, "not in the queue nor in the jobcomp file",
                                    "jobcomp")
            continue
        raw = record.get("JobState", "")
        out[job_id] = JobStatus(job_id, slurm_state(raw), raw, slurm_exit(record.get("ExitCode", "")), "",
                                "jobcomp")
    return out


def slurm_jobcomp(job_id: str, timeout: float) -> JobStatus:
    """Look one ``job_id`` up in the jobcomp file (see :func:`slurm_jobcomp_all`)."""
    return slurm_jobcomp_all([job_id], timeout)[job_id]


def parse_jobcomp_all(path: Path, job_ids: list[str], tail_bytes: int = 4 << 20) -> dict[str, dict[str, str]]:
    """The last record of each of ``job_ids`` in a jobcomp/filetxt file (``JobId=.. JobState=..`` lines)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - tail_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return {}
    wanted = set(job_ids)
    out: dict[str, dict[str, str]] = {}
    for line in reversed(text.splitlines()):
        m = re.match(r"JobId=(\S+) ", line)
        if m and m.group(1) in wanted and m.group(1) not in out:
            out[m.group(1)] = dict(re.findall(r"(\w+)=(\S*)", line))
            if len(out) == len(wanted):
                break
    return out


def parse_jobcomp(path: Path, job_id: str, tail_bytes: int = 4 << 20) -> dict[str, str] | None:
    """The last record of ``job_id`` in a jobcomp/filetxt file."""
    return parse_jobcomp_all(path, [job_id], tail_bytes).get(job_id)


# --- Grid Engine ----------------------------------------------------------------------------


def sge_state(raw: str) -> str:
    """Normalise a ``qstat`` state code (``qw``, ``hqw``, ``r``, ``t``, ``dr``, ``Eqw`` ...)."""
    if "E" in raw:
        return "FAILED"  # error state: the job needs a qdel (or qmod -cj) by hand
    if any(c in raw for c in "rtRsST"):
        return "RUNNING"  # includes dr: deletion requested, still running
    if any(c in raw for c in "qwh"):
        return "PENDING"
    return "UNKNOWN"


def sge_queue_argv() -> list[str]:
    """Plain ``qstat`` over every user's pending and running jobs."""
    return ["qstat", "-u", "*"]


def _task_ids(field: str) -> range | list[int]:
    # the ja-task-ID column: "7", "1-4:1", or "1,3,5" (several single tasks)
    out: list[int] = []
    for part in field.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not m:
            continue
        first = int(m.group(1))
        last = int(m.group(2) or first)
        if last - first > 1_000_000:
            return range(first, last + 1, int(m.group(3) or 1))
        out.extend(range(first, last + 1, int(m.group(3) or 1)))
    return out


def parse_qstat(stdout: str) -> dict[str, JobStatus]:
    """Parse plain ``qstat`` output (header, dashes, then one line per job or array task).

    A job is listed under its number; each task of an array job also as ``NUMBER.TASK``.
    """
    out: dict[str, JobStatus] = {}
    body = False
    for line in stdout.splitlines():
        if line.startswith("---"):
            body = True
            continue
        fields = line.split()
        if not body or len(fields) < 5 or not fields[0].isdigit():
            continue
        job_id, raw = fields[0], fields[4]
        state = sge_state(raw)
        keys = [job_id]
        rest = fields[7:]  # after the date and time: [queue] slots [ja-task-ID]
        if rest and not rest[0].isdigit():
            rest = rest[1:]
        if len(rest) > 1:
            tasks = _task_ids(rest[1])
            if isinstance(tasks, list):
                keys += [f"{job_id}.{t}" for t in tasks]
        for key in keys:
            known = out.get(key)
            if known is None or (known.state == "PENDING" and state != "PENDING"):
                out[key] = JobStatus(key, state, raw, None, "", "qstat")
    return out


def sge_queue(job_ids: list[str], timeout: float) -> dict[str, JobStatus]:
    """One ``qstat`` call; jobs that left the queue are left out."""
    result = commands.run_command(sge_queue_argv(), timeout=timeout, check=False)
    if result.returncode != 0:
        raise _failed(result)
    return {k: v for k, v in parse_qstat(result.stdout).items() if k in job_ids}


def parse_qacct(stdout: str) -> dict[str, str] | None:
    """The last record of ``qacct -j`` output as ``{field: value}``."""
    records = [r for r in re.split(r"^=+\s*$", stdout, flags=re.M) if r.strip()]
    if not records:
        return None
    fields = {}
    for line in records[-1].splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            fields[key] = value.strip()
    return fields


def sge_accounted_state(record: dict[str, str]) -> tuple[str, int | None, str]:
    """``(state, exit_code, reason)`` of a qacct record."""
    failed_text = record.get("failed", "0")
    failed = int(failed_text.split()[0]) if failed_text.split() and failed_text.split()[0].isdigit() else -1
    m = re.match(r"\d+", record.get("exit_status", ""))
    code = int(m.group(0)) if m else None
    reason = failed_text.split(":", 1)[1].strip() if ":" in failed_text else ""
    if failed == 0:
        return ("COMPLETED" if code == 0 else "FAILED"), code, reason
    if failed == 37:
        return "TIMEOUT", code, reason  # qmaster enforced h_rt (or h_cpu, h_vmem)
    if failed == 100:
        return "CANCELLED", code, reason  # killed by Grid Engine after the job started: qdel
    return "FAILED", code, reason


def parse_qacct_all(stdout: str) -> list[dict[str, str]]:
    """Every record of ``qacct -j`` output, as ``{field: value}``."""
    out = []
    for chunk in re.split(r"^=+\s*$", stdout, flags=re.M):
        if chunk.strip():
            fields = {}
            for line in chunk.splitlines():
                key, _, value = line.strip().partition(" ")
                if key:
                    fields[key] = value.strip()
            out.append(fields)
    return out


def qacct_since_argv(since: float) -> list[str]:
    """``qacct -j -b YYYYMMDDhhmm``: every job that started at or after ``since`` (local time,
    a minute early: -b counts whole minutes)."""
    return ["qacct", "-j", "-b", time.strftime("%Y%m%d%H%M", time.localtime(since - 60))]


def sge_finished_since(job_ids: list[str], since: float, timeout: float) -> dict[str, JobStatus]:
    """Jobs gone from qstat that were submitted at ``since`` or later: one ``qacct`` for all.
    Jobs without a record are left out (the caller asks for them one by one)."""
    try:
        result = commands.run_command(qacct_since_argv(since), timeout=timeout, check=False)
    except CommandError:
        return {}
    if result.returncode != 0:
        return {}
    wanted = set(job_ids)
    out: dict[str, JobStatus] = {}
    for record in parse_qacct_all(result.stdout):
        number, task = record.get("jobnumber", ""), record.get("taskid", "undefined")
        for job_id in (number, f"{number}.{task}"):
            if job_id in wanted:
                state, code, reason = sge_accounted_state(record)
                out[job_id] = JobStatus(job_id, state, "failed " + record.get("failed", "?"), code, reason, "qacct")
    return out


def qacct_argv(job_id: str) -> list[str]:
    """``qacct -j NUMBER`` (``-t TASK`` for one task): qacct takes one job per call."""
    job, _, task = job_id.partition(".")
    return ["qacct", "-j", job] + (["-t", task] if task else [])


def sge_finished(job_id: str, timeout: float) -> JobStatus:
    """A job gone from qstat: ``qacct -j``, else UNKNOWN (the accounting file lags ``flush_time``)."""
    try:
        result = commands.run_command(qacct_argv(job_id), timeout=timeout, check=False)
    except CommandError:
        return JobStatus(job_id, "UNKNOWN", "", None, "not in the queue and qacct is missing", "")
    record = parse_qacct(result.stdout) if result.returncode == 0 else None
    job, _, task = job_id.partition(".")
    if record is not None and (record.get("jobnumber", job) != job or (task and record.get("taskid") != task)):
        record = None  # qacct answered for another job: never report its state as this one's
    if record is None:
        return JobStatus(job_id, "UNKNOWN", "", None, "not in the queue, no accounting record (yet)", "qacct")
    state, code, reason = sge_accounted_state(record)
    return JobStatus(job_id, state, "failed " + record.get("failed", "?"), code, reason, "qacct")
