"""Grid Engine: #$ directives with a parallel environment, the mpiexec launch line and the
qsub/qstat/qdel argv.

The walltime warning: ``-l s_rt`` together with ``-l h_rt`` was seen not to enforce h_rt,
so the script gets ``h_rt`` alone (a hard limit that is enforced), ``-notify`` (USR2 before
a qdel kill) and a timer inside the script that sends itself USR1 ``grace`` seconds before
h_rt. The script forwards both to the launcher.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

from hpcdist.errors import SubmitError
from hpcdist.batch.base import BatchSystem, directive_path, find_mpiexec_lines, python_command, q

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

    def slots(self, spec: JobSpec) -> int:
        """Slots requested from the parallel environment: ranks * cpus_per_rank."""
        return spec.resources.ranks * spec.resources.cpus_per_rank

    def directives(self, spec: JobSpec, run_dir: Path | None = None) -> list[str]:
        """``#$`` lines: name, shell, -cwd, PE, h_rt, memory, queue, output, -notify, extras."""
        r = spec.resources
        run_dir = run_dir if run_dir is not None else spec.run_dir()
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

    def launch(self, spec: JobSpec) -> tuple[str, str]:
        """mpiexec over the granted slots (Hydra detects Grid Engine by itself)."""
        extra = "".join(" " + q(a) for a in spec.launcher_args)
        c = spec.resources.cpus_per_rank
        n = '"$NSLOTS"' if c == 1 else f'"$((NSLOTS / {c}))"'
        return find_mpiexec_lines(), f'"$MPIEXEC" -n {n}{extra} {python_command(spec)}'

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
