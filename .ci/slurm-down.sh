#!/usr/bin/env bash
# Stop the single-node SLURM started by slurm-up.sh, by pid (zombies count as stopped).
# With --purge, also remove its state directory (job ids, saved node state, logs).

# shellcheck disable=SC2034  # read by lib.sh
CI_NAME=slurm-down
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=${HPCDIST_SLURM_STATE:-/var/lib/hpcdist-ci/slurm}

stop_pidfile /run/slurm/slurmd.pid '^slurmd' 15
stop_pidfile /run/slurm/slurmctld.pid '^slurmctld' 15
stop_pidfile /run/munge/munged.pid '^munged' 10

if [[ ${1:-} == --purge ]]; then
    rm -rf "$STATE"
    log "removed $STATE"
fi
log "SLURM stopped"
