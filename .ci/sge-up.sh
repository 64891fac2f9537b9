#!/usr/bin/env bash
# Bring up a single-node Grid Engine cell (sge_qmaster + sge_execd) for the integration tests:
# root may submit, the host is a submit host, PE `mpi` ($fill_up) and `smp` ($pe_slots), and
# all.q with 8 slots, no load thresholds, 1 s scheduling. Idempotent: running it again keeps
# the running daemons, re-applies the configuration and re-runs the smoke job.
# Our logs: $HPCDIST_SGE_STATE (default /var/lib/hpcdist-ci/sge); SGE's own spool stays in
# /var/spool/gridengine.

# shellcheck disable=SC2034  # read by lib.sh
CI_NAME=sge-up
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=${HPCDIST_SGE_STATE:-/var/lib/hpcdist-ci/sge}
HOST=$(hostname)
SGE_ROOT=/var/lib/gridengine
COMMON=$SGE_ROOT/default/common
SPOOL=/var/spool/gridengine
MASTER_PID=$SPOOL/qmaster/qmaster.pid
MASTER_LOG=$SPOOL/qmaster/messages
mkdir -p "$STATE"

# --- packages (debconf answered first: the postinst then builds the cell) -------------------
if ! dpkg-query -W -f='${Status}' gridengine-master 2>/dev/null | grep -q 'install ok installed' ||
    ! dpkg-query -W -f='${Status}' gridengine-exec 2>/dev/null | grep -q 'install ok installed' ||
    ! dpkg-query -W -f='${Status}' gridengine-client 2>/dev/null | grep -q 'install ok installed'; then
    for p in gridengine-common gridengine-client gridengine-master gridengine-exec; do
        echo "$p shared/gridengineconfig boolean true"
        echo "$p shared/gridenginecell string default"
        echo "$p shared/gridenginemaster string $HOST"
    done | debconf-set-selections
    apt_install gridengine-master gridengine-exec gridengine-client
fi
[[ -f $COMMON/bootstrap ]] || die "no Grid Engine cell in $COMMON (the gridengine-master postinst did not run init_cluster)" /var/lib/hpcdist-ci/apt.log

# --- host name ----------------------------------------------------------------------------
# qmaster names a client by the reverse lookup of its IP; when that gives another name
# (127.0.0.1 -> localhost), it refuses every client. host_aliases maps it back to HOST.
if ! getent hosts "$HOST" >/dev/null; then
    echo "127.0.0.1 $HOST" >>/etc/hosts
    log "added $HOST to /etc/hosts"
fi
ip=$(getent hosts "$HOST" | awk '{ print $1; exit }')
reverse=$(getent hosts "$ip" | awk '{ print $2; exit }')
aliases=""
if [[ -n $reverse && $reverse != "$HOST" ]]; then
    aliases="$HOST $reverse"
fi
restart_master=0
if [[ "$(cat "$COMMON/host_aliases" 2>/dev/null)" != "$aliases" ]]; then
    if [[ -n $aliases ]]; then
        printf '%s\n' "$aliases" >"$COMMON/host_aliases"
    else
        rm -f "$COMMON/host_aliases"
    fi
    restart_master=1
    log "host_aliases: '${aliases}'"
fi
if [[ "$(cat "$COMMON/act_qmaster" 2>/dev/null)" != "$HOST" ]]; then
    echo "$HOST" >"$COMMON/act_qmaster"
    restart_master=1
fi

# --- sge_qmaster ----------------------------------------------------------------------------
MASTER_RE='^sge_qmaster'
EXECD_RE='^sge_execd'
# execd spools under the name it resolves itself to (with the alias above: localhost)
execd_alive() {
    local f
    for f in "$SPOOL"/execd/*/execd.pid; do
        pidfile_alive "$f" "$EXECD_RE" && return 0
    done
    return 1
}
if ((restart_master)); then
    for f in "$SPOOL"/execd/*/execd.pid; do
        stop_pidfile "$f" "$EXECD_RE" 10
    done
    stop_pidfile "$MASTER_PID" "$MASTER_RE" 25
fi
if ! pidfile_alive "$MASTER_PID" "$MASTER_RE"; then
    rm -f "$MASTER_PID"
    start_daemon "$STATE/qmaster.out" sge_qmaster
    wait_for 30 "sge_qmaster answers" qconf -sh || die "sge_qmaster does not answer" "$STATE/qmaster.out" "$MASTER_LOG"
fi

# --- configuration (from files; qconf does not always exit non-zero, so results are checked) --
conf=$STATE/conf
rm -rf "$conf"
mkdir -p "$conf"

# global: root may run jobs; accounting flushed every second (qacct sees finished jobs)
qconf -sconf global |
    sed -E -e 's/^(min_uid|min_gid)[[:space:]].*/\1 0/' \
        -e 's/flush_time=[0-9:]+/flush_time=00:00:01/' >"$conf/global"
(cd "$conf" && qconf -Mconf global >/dev/null 2>&1) || true
qconf -sconf global | grep -Eq '^min_uid +0$' || die "could not set min_uid 0 in the global configuration" "$MASTER_LOG"

# scheduler: every second, no load adjustments
qconf -ssconf |
    sed -E -e 's/^schedule_interval .*/schedule_interval                 0:0:1/' \
        -e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
        -e 's/^flush_finish_sec .*/flush_finish_sec                  1/' \
        -e 's/^job_load_adjustments .*/job_load_adjustments              NONE/' >"$conf/sched"
qconf -Msconf "$conf/sched" >/dev/null 2>&1 || true
qconf -ssconf | grep -Eq '^schedule_interval +0:0:1$' || die "could not set schedule_interval" "$MASTER_LOG"

qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null 2>&1
qconf -ss | grep -qx "$HOST" || die "could not make $HOST a submit host" "$MASTER_LOG"

add_or_modify() { # KIND(p|q) NAME FILE
    local kind=$1 name=$2 file=$3 list=-spl
    [[ $kind == q ]] && list=-sql
    if qconf "$list" 2>/dev/null | grep -qx "$name"; then
        qconf "-M$kind" "$file" >/dev/null 2>&1 || true
    else
        qconf "-A$kind" "$file" >/dev/null 2>&1 || true
    fi
    qconf "$list" 2>/dev/null | grep -qx "$name" || die "could not add $name (qconf -A$kind)" "$file" "$MASTER_LOG"
}
write_pe() { # NAME ALLOCATION_RULE
    cat >"$conf/pe-$1" <<EOF
pe_name            $1
slots              9999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $2
control_slaves     TRUE
job_is_first_task  FALSE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
    add_or_modify p "$1" "$conf/pe-$1"
}
# shellcheck disable=SC2016  # literal Grid Engine keywords
write_pe mpi '$fill_up'
# shellcheck disable=SC2016
write_pe smp '$pe_slots'

# all.q: start from Grid Engine's own queue template (qconf -aq hands it to $EDITOR)
cat >"$conf/editor" <<EOF
#!/bin/sh
cp "\$1" "$conf/queue.template"
EOF
chmod +x "$conf/editor"
EDITOR=$conf/editor qconf -aq template-probe >/dev/null 2>&1 || true
if qconf -sql 2>/dev/null | grep -qx template-probe; then
    qconf -dq template-probe >/dev/null 2>&1 || true
fi
[[ -s $conf/queue.template ]] || die "could not read the queue template (qconf -aq)"
sed -E -e 's/^qname .*/qname                 all.q/' \
    -e "s/^hostlist .*/hostlist              $HOST/" \
    -e 's/^slots .*/slots                 8/' \
    -e 's/^pe_list .*/pe_list               mpi smp/' \
    -e 's/^load_thresholds .*/load_thresholds       NONE/' \
    -e 's|^shell .*|shell                 /bin/bash|' \
    -e 's/^notify .*/notify                00:00:05/' \
    "$conf/queue.template" >"$conf/all.q"
add_or_modify q all.q "$conf/all.q"
qconf -sq all.q | grep -Eq '^load_thresholds +NONE$' || die "all.q has the wrong load_thresholds" "$conf/all.q"

# --- sge_execd ------------------------------------------------------------------------------
if ! execd_alive; then
    rm -f "$SPOOL"/execd/*/execd.pid
    # sge_execd does not start a session of its own: setsid (in start_daemon) does it
    start_daemon "$STATE/execd.out" sge_execd
fi
queue_ready() {
    local line
    line=$(qstat -f -q all.q 2>/dev/null | grep "^all.q@") || return 1
    # columns: queuename qtype resv/used/tot. load_avg arch [states]
    [[ $(awk '{ print NF }' <<<"$line") -le 5 ]]
}
wait_for 60 "all.q@$HOST ready" queue_ready ||
    die "all.q not ready: $(qstat -f -q all.q 2>&1 | tail -n 2)" "$STATE/execd.out" "$SPOOL"/execd/*/messages "$MASTER_LOG"

# --- smoke job: 4 slots of PE mpi ------------------------------------------------------------
smoke_dir=$(mktemp -d /tmp/hpcdist-sge-smoke.XXXXXX)
# shellcheck disable=SC2016  # expanded by the job's shell
if ! out=$(cd "$smoke_dir" && timeout 90 qsub -terse -sync y -cwd -j y -o "$smoke_dir/out" -N smoke \
    -pe mpi 4 -b y bash -c '"echo smoke \$NSLOTS slots in \$PE"' 2>&1); then
    die "smoke job failed: $out" "$smoke_dir/out" "$SPOOL"/execd/*/messages "$MASTER_LOG"
fi
grep -q "smoke 4 slots in mpi" "$smoke_dir/out" || die "smoke job wrote unexpected output" "$smoke_dir/out"
log "smoke job $(head -n 1 <<<"$out") finished"
rm -rf "$smoke_dir"
log "Grid Engine ready on $HOST"
