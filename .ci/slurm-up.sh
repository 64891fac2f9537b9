#!/usr/bin/env bash
# Bring up a single-node SLURM (munge + slurmctld + slurmd) for the integration tests.
# Idempotent: running it again keeps running daemons (restarting them only if the
# configuration changed) and re-runs the smoke job. No accounting database: finished jobs
# are read from the jobcomp file (JobCompLoc) instead of sacct, which saves ~25 packages.
# State and logs: $HPCDIST_SLURM_STATE (default /var/lib/hpcdist-ci/slurm).

# shellcheck disable=SC2034  # read by lib.sh
CI_NAME=slurm-up
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=${HPCDIST_SLURM_STATE:-/var/lib/hpcdist-ci/slurm}
HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf
LOGS=$STATE/log
# the whole machine's memory, so --mem requests (e.g. from a spec's resources.memory) fit
MEM_MB=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)

apt_install slurm-wlm munge

mkdir -p "$STATE/slurmd" "$STATE/slurmctld" "$LOGS" /run/slurm /run/munge /etc/slurm
chown munge:munge /run/munge

# --- munge ------------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey -c -k /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
if ! pidfile_alive /run/munge/munged.pid munged; then
    rm -f /run/munge/munged.pid
    start_daemon "$LOGS/munged.out" runuser -u munge -- /usr/sbin/munged
    wait_for 10 "munged up" bash -c 'munge -n | unmunge' || die "munged did not start" "$LOGS/munged.out" /var/log/munge/munged.log
fi

# --- slurm.conf ---------------------------------------------------------------------------
new_conf=$(
    cat <<EOF
# Written by the hpcdist CI bring-up script; single node, root, no accounting database.
ClusterName=hpcdist
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmdSpoolDir=$STATE/slurmd
StateSaveLocation=$STATE/slurmctld
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# advertise more CPUs than the machine has, so a 4-rank job runs on 2 cores
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
MinJobAge=300
KillWait=5
NodeName=$HOST NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=8 Sockets=1 CoresPerSocket=8 ThreadsPerCore=1 RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=batch Nodes=ALL Default=NO MaxTime=INFINITE State=UP
EOF
)

restart=0
if [[ ! -f $CONF ]] || [[ "$(cat "$CONF")" != "$new_conf" ]]; then
    printf '%s\n' "$new_conf" >"$CONF"
    restart=1
    log "wrote $CONF"
fi

CTLD_RE='^slurmctld'
SLURMD_RE='^slurmd'
if ((restart)); then
    stop_pidfile /run/slurm/slurmd.pid "$SLURMD_RE" 10
    stop_pidfile /run/slurm/slurmctld.pid "$CTLD_RE" 10
fi

# --- daemons ------------------------------------------------------------------------------
if ! pidfile_alive /run/slurm/slurmctld.pid "$CTLD_RE"; then
    rm -f /run/slurm/slurmctld.pid
    start_daemon "$LOGS/slurmctld.out" slurmctld
    wait_for 20 "slurmctld answers" scontrol ping ||
        die "slurmctld did not answer 'scontrol ping'" "$LOGS/slurmctld.out" "$LOGS/slurmctld.log"
fi
if ! pidfile_alive /run/slurm/slurmd.pid "$SLURMD_RE"; then
    rm -f /run/slurm/slurmd.pid
    start_daemon "$LOGS/slurmd.out" slurmd
fi

node_idle() {
    local st
    st=$(sinfo -h -n "$HOST" -o %T 2>/dev/null) || return 1
    case $st in
    idle | mixed | allocated) return 0 ;;
    drain* | down* | *invalid*)
        # a drain kept in StateSaveLocation from an earlier bad start: put the node back
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
        return 1
        ;;
    *) return 1 ;;
    esac
}
wait_for 30 "node $HOST ready" node_idle ||
    die "node $HOST not ready: $(sinfo -h -n "$HOST" -o '%T %E' 2>&1)" "$LOGS/slurmd.out" "$LOGS/slurmd.log" "$LOGS/slurmctld.log"

# --- smoke job ----------------------------------------------------------------------------
smoke_dir=$(mktemp -d /tmp/hpcdist-slurm-smoke.XXXXXX)
# shellcheck disable=SC2016  # expanded by the job's shell
job=$(sbatch --parsable --chdir="$smoke_dir" --output="$smoke_dir/out" --ntasks=4 \
    --wrap 'echo "smoke $SLURM_NTASKS tasks on $(hostname -s)"' 2>&1) ||
    die "sbatch of the smoke job failed: $job" "$LOGS/slurmctld.log"
job_state() { scontrol show job -o "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
job_done() { [[ "$(job_state)" =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)$ ]]; }
wait_for 60 "smoke job $job finished" job_done || die "smoke job $job stuck in $(job_state)" "$LOGS/slurmctld.log" "$LOGS/slurmd.log"
[[ "$(job_state)" == COMPLETED ]] || die "smoke job $job ended $(job_state)" "$smoke_dir/out" "$LOGS/slurmd.log"
grep -q "smoke 4 tasks" "$smoke_dir/out" || die "smoke job $job wrote unexpected output" "$smoke_dir/out"
rm -rf "$smoke_dir"
log "SLURM ready on $HOST (state in $STATE)"
