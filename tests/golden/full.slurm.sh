#!/bin/bash
#SBATCH --job-name=full-job.1
#SBATCH --ntasks=8
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=2
#SBATCH --mem=1431M
#SBATCH --time=1-02:03:04
#SBATCH --partition=short
#SBATCH --account=proj42
#SBATCH --gpus-per-node=1
#SBATCH --output=/PROJECT/runs/full-job.1-20240101-000000/slurm-%j.out
#SBATCH --signal=B:USR1@600
#SBATCH --constraint=haswell
#SBATCH --exclusive
# shellcheck disable=SC1090,SC1091,SC2016  # setup may source cluster-only files; quoted values are literal
#
# Job full-job.1, rendered by hpcdist from full.yaml.
# hpcdist filled in the template placeholders at render time; the rest is plain bash.

set -euo pipefail

# Modules and setup lines from the spec (environment.modules, environment.setup).
set +u
module load gcc/12
module load openmpi/4.1
set -u
source .venv/bin/activate
ulimit -c 0

# Variables exported to every rank: the failure detector's bound (failure_timeout), the worker
# deaths a task may cause (allowed_failures), where the ranks record their trace (trace), then the
# spec's environment.vars.
export HPCDIST_FAILURE_TIMEOUT=2
export HPCDIST_ALLOWED_FAILURES=3
export HPCDIST_TRACE_DIR=/PROJECT/runs/full-job.1-20240101-000000/trace
export OMP_NUM_THREADS=2
export GREETING='hello world'
export QUOTED='it'"'"'s $HOME'

export HPCDIST_JOB_NAME=full-job.1
export HPCDIST_RUN_DIR=/PROJECT/runs/full-job.1-20240101-000000
# Each worker notes the task it runs here, so a crash can be traced to a task and a rank.
export HPCDIST_STATE_DIR="$HPCDIST_RUN_DIR/ranks"
mkdir -p "$HPCDIST_STATE_DIR"
cd /PROJECT

PYTHON=$(command -v python3) || { echo "hpcdist: interpreter not found:" python3 >&2; exit 127; }

# Walltime warning (--signal=B:USR1) and cancellation (TERM) reach this shell only. Bash runs
# a trap only between commands, so the launcher runs in the background and the traps forward
# the signal to it; `wait` returns early when a trap fires, so wait again.
LAUNCHER_PID=
SIGNALLED=0
# shellcheck disable=SC2317  # called from the traps below
forward() {
  SIGNALLED=1
  # the mark that tells rank 0 this SIGUSR1 is the warning, not a launcher's notice of a dead rank
  if [ "$1" = USR1 ]; then : > "$HPCDIST_STATE_DIR/walltime-warning"; fi
  if [ -n "$LAUNCHER_PID" ]; then kill -s "$1" "$LAUNCHER_PID" 2>/dev/null || true; fi
}
trap 'forward USR1' USR1
trap 'forward TERM' TERM
trap 'forward INT' INT

# Rank 0 writes the run's own status here; drop one left by an earlier job of this run.
rm -f "$HPCDIST_STATE_DIR/status" "$HPCDIST_STATE_DIR/walltime-warning"
srun --mpi=pmi2 --kill-on-bad-exit=0 --cpu-bind=cores "$PYTHON" -m hpcdist exec /PROJECT/driver.py --samples 1e8 'two words' &
LAUNCHER_PID=$!
RC=0
while :; do
  SIGNALLED=0
  wait "$LAUNCHER_PID" && RC=0 || RC=$?
  if [ "$SIGNALLED" = 0 ]; then break; fi
done

# On failure, name the task each worker was running when the job ended.
if [ "$RC" != 0 ]; then "$PYTHON" -m hpcdist postmortem "$HPCDIST_STATE_DIR" >&2 || true; fi

# The run's status comes from its results: a worker that died makes the launcher report
# non-zero (SLURM reports 137) even when rank 0 finished every task. Rank 0's own status counts; the
# launcher's only when rank 0 wrote none (it died itself).
STATUS=$(cat "$HPCDIST_STATE_DIR/status" 2>/dev/null || true)
# A launcher that reports 0 however the ranks ended (LAUNCHER_QUIET: mpirun under ULFM): no status means rank 0 died.
if [ -z "$STATUS" ] && [ "$RC" = 0 ] && [ -n "${LAUNCHER_QUIET:-}" ]; then echo "hpcdist: rank 0 ended without a status (it died?)" >&2; RC=4; fi
if [[ "$STATUS" =~ ^[0-9]{1,3}$ ]] && [ "$STATUS" != "$RC" ]; then
  echo "hpcdist: the launcher exited with status $RC (a rank died); rank 0 ended the run with status $STATUS" >&2
  RC=$STATUS
fi

# The run's exit status, for `hpcdist status`.
printf '%s\n' "$RC" > "$HPCDIST_RUN_DIR/exit_code"
exit "$RC"
