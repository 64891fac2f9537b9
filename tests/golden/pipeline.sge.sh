#!/bin/bash
#$ -N pipeline
#$ -S /bin/bash
#$ -cwd
#$ -pe mpi 4
#$ -l h_rt=0:30:00
#$ -o /PROJECT/runs/pipeline-20240101-000000/sge-$JOB_ID.out
#$ -j y
#$ -notify
# shellcheck disable=SC1090,SC1091,SC2016  # setup may source cluster-only files; quoted values are literal
#
# Job pipeline, rendered by hpcdist from pipeline.yaml.
# hpcdist filled in the template placeholders at render time; the rest is plain bash.

set -euo pipefail

# Modules and setup lines from the spec (environment.modules, environment.setup).

# Variables exported to every rank: the failure detector's bound (failure_timeout), the worker
# deaths a task may cause (allowed_failures), where the ranks record their trace (trace), then the
# spec's environment.vars.
export HPCDIST_FAILURE_TIMEOUT=2
export HPCDIST_ALLOWED_FAILURES=3
export HPCDIST_TRACE_DIR=/PROJECT/runs/pipeline-20240101-000000/trace

export HPCDIST_JOB_NAME=pipeline
export HPCDIST_RUN_DIR=/PROJECT/runs/pipeline-20240101-000000
# Each worker notes the task it runs here, so a crash can be traced to a task and a rank.
export HPCDIST_STATE_DIR="$HPCDIST_RUN_DIR/ranks"
mkdir -p "$HPCDIST_STATE_DIR"
cd /PROJECT

PYTHON=$(command -v python3) || { echo "hpcdist: interpreter not found:" python3 >&2; exit 127; }
MPIEXEC="$(dirname "$PYTHON")/mpiexec"
if [ ! -x "$MPIEXEC" ]; then
  MPIEXEC=$(command -v mpiexec) || { echo "hpcdist: mpiexec not found" >&2; exit 127; }
fi
# MPICH's Hydra kills every rank when one exits; with this flag the others finish the run.
MPIEXEC_FT=()
case "$("$MPIEXEC" --version 2>/dev/null || true)" in
  *HYDRA*) MPIEXEC_FT=(-disable-auto-cleanup) ;;
esac

# Walltime warning: Grid Engine has no --signal, so a timer in this script sends USR1
# 60 s before h_rt. With -notify, qdel sends USR2 shortly before its KILL; both are
# forwarded to the launcher as USR1 (the warning). Bash runs a trap only between commands,
# so the launcher runs in the background; `wait` returns early when a trap fires: wait again.
LAUNCHER_PID=
SIGNALLED=0
# shellcheck disable=SC2317  # called from the traps below
forward() {
  SIGNALLED=1
  # the mark that tells rank 0 this SIGUSR1 is the warning, not a launcher's notice of a dead rank
  if [ "$1" = USR1 ]; then : > "$HPCDIST_STATE_DIR/walltime-warning"; fi
  if [ -n "$LAUNCHER_PID" ]; then kill -s "$1" "$LAUNCHER_PID" 2>/dev/null || true; fi
}
trap 'forward USR1' USR1 USR2
trap 'forward TERM' TERM
trap 'forward INT' INT
(
  trap 'kill "$TIMER_SLEEP" 2>/dev/null; exit 0' TERM
  sleep 1740 &
  TIMER_SLEEP=$!
  wait "$TIMER_SLEEP" && kill -s USR1 "$$"
) </dev/null >/dev/null 2>&1 &
WARNING_TIMER=$!

# qdel -notify sends USR2 to the whole job and mpiexec dies of it: the launcher inherits "ignore"
trap '' USR2
# Rank 0 writes the run's own status here; drop one left by an earlier job of this run.
rm -f "$HPCDIST_STATE_DIR/status" "$HPCDIST_STATE_DIR/walltime-warning"
"$MPIEXEC" "${MPIEXEC_FT[@]}" -n "$NSLOTS" "$PYTHON" -m hpcdist run /PROJECT/pipeline.yaml --run-dir "$HPCDIST_RUN_DIR" &
LAUNCHER_PID=$!
trap 'forward USR1' USR2
RC=0
while :; do
  SIGNALLED=0
  wait "$LAUNCHER_PID" && RC=0 || RC=$?
  if [ "$SIGNALLED" = 0 ]; then break; fi
done
kill "$WARNING_TIMER" 2>/dev/null || true

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
