"""SLURM: #SBATCH directives, the sbatch/scancel argv, and where jobs are (squeue, sacct, jobcomp).

One batched ``squeue --states=all`` per query; only the jobs missing from it are looked up in
the accounting: ``sacct``, else SLURM's jobcomp file (``JobCompLoc`` with ``jobcomp/filetxt``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from hpcdist import commands
from hpcdist.batch.base import BatchSystem, JobStatus, command_failed, directive_path
from hpcdist.errors import CommandError, HpcdistError, SubmitError

if TYPE_CHECKING:
    from hpcdist.spec.model import JobSpec


def slurm_time(seconds: int) -> str:
    """``D-HH:MM:SS`` (or ``HH:MM:SS`` under a day) for sbatch --time."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    hms = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{hms}" if days else hms


class Slurm(BatchSystem):
    """SLURM (sbatch). The launcher is the wheel's mpiexec unless the spec says srun."""

    name = "slurm"
    template_name = "slurm.sh"
    # 42, an array task 42_7, a heterogeneous job component 42+1
    job_id_pattern = r"[1-9]\d{0,11}(?:_\d{1,9}|\+\d{1,4})?"
    job_id_help = "digits, optionally _N for an array task or +N for a heterogeneous job component"
    output_name = "slurm-{id}.out"
    reserved_options = ("-o", "--output", "-J", "--job-name", "--parsable", "--wrap")
    attached_short_values = True
    job_id_variable = "SLURM_JOB_ID"
    queue_command = "squeue"

    def directives(self, spec: JobSpec, run_dir: Path) -> list[str]:
        """``#SBATCH`` lines: size, time, memory, queue, output, warning signal, site extras."""
        r = spec.resources
        opts = [f"--job-name={spec.name}", f"--ntasks={r.ranks}"]
        if r.nodes is not None:
            opts.append(f"--nodes={r.nodes}")
        if r.ranks_per_node is not None:
            opts.append(f"--ntasks-per-node={r.ranks_per_node}")
        opts.append(f"--cpus-per-task={r.cpus_per_rank}")
        if r.memory is not None:
            opts.append(f"--mem={math.ceil(r.memory / 2**20)}M")  # SLURM's M is MiB
        if r.walltime is not None:
            opts.append(f"--time={slurm_time(r.walltime)}")
        if r.queue:
            opts.append(f"--partition={r.queue}")
        if r.account:
            opts.append(f"--account={r.account}")
        if r.gpus_per_node:
            opts.append(f"--gpus-per-node={r.gpus_per_node}")
        # sbatch expands %x, %j ... in file names; %% is a literal %
        out_dir = directive_path(run_dir, "run directory").replace("%", "%%")
        opts.append(f"--output={out_dir}/slurm-%j.out")
        opts.append(f"--signal=B:USR1@{r.grace}")
        opts.extend(r.directives)
        return [f"#SBATCH {o}" for o in opts]

    def ranks_word(self, spec: JobSpec) -> str:
        """``"$SLURM_NTASKS"``."""
        return '"$SLURM_NTASKS"'

    def submit_argv(self, script_path: str | Path) -> list[str]:
        """``sbatch --parsable FILE``: prints ``id`` or ``id;cluster``."""
        return ["sbatch", "--parsable", str(script_path)]

    def parse_job_id(self, stdout: str) -> str:
        """The id from ``sbatch --parsable`` output (``13`` or ``13;cluster``)."""
        for line in stdout.splitlines():
            job_id = line.strip().split(";", 1)[0].strip()
            if re.fullmatch(self.job_id_pattern, job_id):
                return job_id
        raise SubmitError(f"sbatch printed no job id (output: {stdout.strip()[:200]!r})")

    def cancel_argv(self, job_id: str) -> list[str]:
        """``scancel -v ID`` (-v: SLURM reports an unknown or finished job only then, still with exit 0)."""
        return ["scancel", "-v", self.check_job_id(job_id)]

    def cancel_problem(self, result: commands.CommandResult) -> HpcdistError | None:
        """Also an ``scancel: error:`` line, which scancel prints with exit 0."""
        problem = super().cancel_problem(result)
        text = (result.stderr + "\n" + result.stdout).strip()
        if problem is None and re.search(r"^scancel: error:", text, re.M):
            return CommandError(f"scancel: {result.tail()}")
        return problem

    def query(self, job_ids: list[str], timeout: float, submitted: dict[str, float]) -> dict[str, JobStatus]:
        """One ``squeue``; one ``sacct`` (or one read of the jobcomp file) for the jobs gone from it."""
        found = slurm_queue(job_ids, timeout)
        missing = [j for j in job_ids if j not in found]
        if missing:
            found.update(slurm_finished_all(missing, timeout))
        return found

    def allocation(self, environ: Mapping[str, str]) -> dict[str, Any] | None:
        """Inside a SLURM job: its id and node count (``SLURM_NNODES``)."""
        if not environ.get("SLURM_JOB_ID"):
            return None
        try:
            nodes = int(environ.get("SLURM_NNODES") or environ.get("SLURM_JOB_NUM_NODES") or 1)
        except ValueError:
            nodes = 1
        return {"system": self.name, "job_id": environ["SLURM_JOB_ID"], "nodes": nodes}

    def is_job_variable(self, name: str) -> bool:
        """Every ``SLURM_*`` variable but ``SLURM_CONF`` (sbatch hands the submitting
        environment to the job: a successor must not inherit its job id or end time)."""
        return name.startswith("SLURM_") and name != "SLURM_CONF"


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
        raise command_failed(result)
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
