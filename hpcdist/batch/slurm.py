"""SLURM: #SBATCH directives, srun/mpiexec launch lines and the sbatch/squeue/scancel argv."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from hpcdist.errors import SubmitError
from hpcdist.batch.base import BatchSystem, directive_path, find_mpiexec_lines, python_command, q

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

    def directives(self, spec: JobSpec, run_dir: Path | None = None) -> list[str]:
        """``#SBATCH`` lines: size, time, memory, queue, output, warning signal, site extras."""
        r = spec.resources
        run_dir = run_dir if run_dir is not None else spec.run_dir()
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

    def launch(self, spec: JobSpec) -> tuple[str, str]:
        """srun --mpi=pmi2 (launcher: srun), else the mpiexec found beside the interpreter."""
        extra = "".join(" " + q(a) for a in spec.launcher_args)
        if spec.launcher == "srun":
            # plain srun gives N worlds of size 1 when MpiDefault=none: name the PMI
            return "", f"srun --mpi=pmi2{extra} {python_command(spec)}"
        return find_mpiexec_lines(), f'"$MPIEXEC" -n "$SLURM_NTASKS"{extra} {python_command(spec)}'

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
