"""Grid Engine: #$ directives with a parallel environment, the qsub/qdel argv, and where jobs
are (qstat, qacct).

The walltime warning: ``-l s_rt`` together with ``-l h_rt`` was seen not to enforce h_rt,
so the script gets ``h_rt`` alone (a hard limit that is enforced), ``-notify`` (USR2 before
a qdel kill) and a timer inside the script that sends itself USR1 ``grace`` seconds before
h_rt. The script forwards both to the launcher.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from hpcdist import commands
from hpcdist.batch.base import BatchSystem, JobStatus, command_failed, directive_path
from hpcdist.errors import CommandError, SubmitError

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec


def sge_time(seconds: int) -> str:
    """``H:MM:SS`` (hours may exceed 24) for -l h_rt."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class GridEngine(BatchSystem):
    """Sun/Son of/Open Grid Engine (qsub). Ranks come from a parallel environment."""

    name = "sge"
    template_name = "sge.sh"
    # 42, or one task of an array job: 42.7
    job_id_pattern = r"[1-9]\d{0,11}(?:\.\d{1,9})?"
    job_id_help = "digits, optionally .N for one task of an array job"
    output_name = "sge-{id}.out"
    reserved_options = ("-o", "-N", "-S", "-C", "-b", "-shell", "-j", "-terse")
    job_id_variable = "JOB_ID"
    queue_command = "qstat"

    def slots(self, spec: JobSpec) -> int:
        """Slots requested from the parallel environment: ranks * cpus_per_rank."""
        return spec.resources.ranks * spec.resources.cpus_per_rank

    def directives(self, spec: JobSpec, run_dir: Path) -> list[str]:
        """``#$`` lines: name, shell, -cwd, PE, h_rt, memory, queue, output, -notify, extras."""
        r = spec.resources
        opts = [f"-N {spec.name}", "-S /bin/bash", "-cwd"]
        if spec.environment.inherit_env:
            opts.append("-V")
        opts.append(f"-pe {r.parallel_environment} {self.slots(spec)}")
        if r.walltime is not None:
            opts.append(f"-l h_rt={sge_time(r.walltime)}")
        if r.memory is not None:
            opts.append(f"-l {r.memory_resource}={self._per_slot_mib(spec)}M")
        if r.queue:
            opts.append(f"-q {r.queue}")
        if r.account:
            opts.append(f"-A {r.account}")
        # qsub reads -o as [host:]path[,[host:]path...]
        opts.append(f"-o {directive_path(run_dir, 'run directory', forbidden=':,')}/sge-$JOB_ID.out")
        opts.append("-j y")
        opts.append("-notify")
        opts.extend(r.directives)
        lines = [f"#$ {o}" for o in opts]
        if r.nodes is not None or r.ranks_per_node is not None:
            lines.append("# nodes / ranks_per_node: placement follows the allocation_rule of the parallel environment")
        return lines

    def _per_slot_mib(self, spec: JobSpec) -> int:
        # Grid Engine memory requests are per slot; the spec's memory is per node
        r = spec.resources
        assert r.memory is not None
        if r.ranks_per_node is not None:
            ranks_on_node = r.ranks_per_node
        elif r.nodes is not None:
            ranks_on_node = math.ceil(r.ranks / r.nodes)
        else:
            ranks_on_node = r.ranks
        return math.ceil(r.memory / 2**20 / (ranks_on_node * r.cpus_per_rank))

    def ranks_word(self, spec: JobSpec) -> str:
        """``"$NSLOTS"``, divided by ``cpus_per_rank`` when a rank takes several slots."""
        c = spec.resources.cpus_per_rank
        return '"$NSLOTS"' if c == 1 else f'"$((NSLOTS / {c}))"'

    def warning_timer(self, spec: JobSpec) -> str:
        """A background ``sleep`` that sends USR1 to the script ``grace`` s before h_rt."""
        r = spec.resources
        assert r.walltime is not None
        delay = max(r.walltime - r.grace, 1)
        # the subshell kills its sleep when stopped, so nothing outlives the script
        return "\n".join([
            "(",
            "  trap 'kill \"$TIMER_SLEEP\" 2>/dev/null; exit 0' TERM",
            f"  sleep {delay} &",
            "  TIMER_SLEEP=$!",
            '  wait "$TIMER_SLEEP" && kill -s USR1 "$$"',
            ") </dev/null >/dev/null 2>&1 &",
            "WARNING_TIMER=$!",
        ])  # fmt: skip

    def submit_argv(self, script_path: str | Path) -> list[str]:
        """``qsub -terse FILE``: prints the job id (``27``, or ``27.1-4:1`` for an array)."""
        return ["qsub", "-terse", str(script_path)]

    def parse_job_id(self, stdout: str) -> str:
        """The id from ``qsub -terse`` output; for an array, the part before the dot."""
        for line in stdout.splitlines():
            m = re.fullmatch(r"([1-9]\d{0,11})(?:\.\d+-\d+:\d+)?", line.strip())
            if m:
                return m.group(1)
        raise SubmitError(f"qsub printed no job id (output: {stdout.strip()[:200]!r})")

    def cancel_argv(self, job_id: str) -> list[str]:
        """``qdel ID`` (``qdel ID -t N`` for one task of an array job)."""
        job, _, task = self.check_job_id(job_id).partition(".")
        return ["qdel", job, "-t", task] if task else ["qdel", job]

    def query(self, job_ids: list[str], timeout: float, submitted: dict[str, float]) -> dict[str, JobStatus]:
        """One ``qstat``; for the jobs gone from it ``qacct -j`` takes a single id, so several
        finished jobs with submission times are read with one ``qacct -j -b TIME`` (every job
        started since), and the others with one ``qacct -j ID`` each."""
        found = sge_queue(job_ids, timeout)
        missing = [j for j in job_ids if j not in found]
        known = [j for j in missing if submitted.get(j) is not None]
        if len(known) > 1:
            found.update(sge_finished_since(known, min(submitted[j] for j in known), timeout))
        for job_id in missing:
            if job_id not in found:
                found[job_id] = sge_finished(job_id, timeout)
        return found

    def allocation(self, environ: Mapping[str, str]) -> dict[str, Any] | None:
        """Inside a Grid Engine job with a parallel environment: its id and the hosts of ``PE_HOSTFILE``."""
        hostfile = environ.get("PE_HOSTFILE")
        if not hostfile:
            return None
        hosts = set()
        try:
            with open(hostfile, encoding="utf-8") as fh:
                hosts = {line.split()[0] for line in fh if line.strip()}
        except OSError:
            pass
        return {"system": self.name, "job_id": environ.get("JOB_ID"), "nodes": max(1, len(hosts))}

    def being_deleted(self, job_id: str, timeout: float) -> bool:
        """qstat shows ``d`` (deletion requested): a plain qdel sends -notify's USR2 first,
        which the script takes for the walltime warning."""
        st = self.query([self.check_job_id(job_id)], timeout, {})[job_id]
        return st.source == "qstat" and "d" in st.raw_state


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
        raise command_failed(result)
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
