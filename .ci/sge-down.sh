#!/usr/bin/env bash
# Stop the single-node Grid Engine started by sge-up.sh, by pid (zombies count as stopped).
# sge_qmaster shuts down in a controlled way that takes 7-9 s after SIGTERM.
# With --purge, also remove our log directory (the cell itself stays configured).

# shellcheck disable=SC2034  # read by lib.sh
CI_NAME=sge-down
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=${HPCDIST_SGE_STATE:-/var/lib/hpcdist-ci/sge}
SPOOL=/var/spool/gridengine

for f in "$SPOOL"/execd/*/execd.pid; do
    stop_pidfile "$f" '^sge_execd' 15
done
stop_pidfile "$SPOOL/qmaster/qmaster.pid" '^sge_qmaster' 25

if [[ ${1:-} == --purge ]]; then
    rm -rf "$STATE"
    log "removed $STATE"
fi
log "Grid Engine stopped"
