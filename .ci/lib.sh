# shellcheck shell=bash
# Shared helpers for the CI bring-up/teardown scripts of the single-node batch systems.
# Sourced, not run. Every daemon is started directly (no systemd) and stopped by its pid.

set -euo pipefail

CI_T0=$EPOCHREALTIME

log() {
    printf '[%s %5ss] %s\n' "${CI_NAME:-ci}" "$(awk -v a="$EPOCHREALTIME" -v b="$CI_T0" 'BEGIN { printf "%.1f", a - b }')" "$*" >&2
}

# die MESSAGE [LOGFILE...]: print the message and the tail of each log, exit 1.
die() {
    local msg=$1
    shift
    echo "${CI_NAME:-ci}: FAILED: $msg" >&2
    local f
    for f in "$@"; do
        if [[ -f $f ]]; then
            echo "----- last lines of $f -----" >&2
            tail -n 40 "$f" >&2 || true
        fi
    done
    exit 1
}

# apt_install PKG...: install the packages that are missing; services stay stopped.
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    log "apt-get install ${missing[*]}"
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # deny invoke-rc.d: postinst scripts must not start daemons, we start them ourselves
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    mkdir -p /var/lib/hpcdist-ci
    apt-get update -qq >/var/lib/hpcdist-ci/apt.log 2>&1 || rc=$?
    if ((rc == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            >>/var/lib/hpcdist-ci/apt.log 2>&1 || rc=$?
    fi
    if ((made_policy)); then
        rm -f /usr/sbin/policy-rc.d
    fi
    ((rc == 0)) || die "apt-get install ${missing[*]} (exit $rc)" /var/lib/hpcdist-ci/apt.log
}

# pid_alive PID NAME_REGEX: the process exists, is not a zombie and its name matches.
pid_alive() {
    local pid=$1 pattern=$2 stat comm
    [[ -n $pid && -r /proc/$pid/stat ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    comm=${stat#*(}
    comm=${comm%)*}
    local state=${stat##*) }
    state=${state%% *}
    [[ $state != Z && $state != X ]] || return 1
    [[ $comm =~ $pattern ]]
}

# pidfile_alive FILE NAME_REGEX
pidfile_alive() {
    [[ -f $1 ]] || return 1
    pid_alive "$(tr -dc 0-9 <"$1")" "$2"
}

# start_daemon LOGFILE CMD...: run CMD in a new session, stdin on /dev/null, stdout/stderr
# appended to LOGFILE and every other fd closed, so no daemon holds a pipe of our caller.
# The daemons used here fork into the background themselves; this returns when CMD returns.
start_daemon() {
    local logfile=$1
    shift
    (
        local fd
        for fd in "/proc/$BASHPID/fd/"*; do
            fd=${fd##*/}
            if ((fd > 2)); then
                eval "exec $fd>&-" 2>/dev/null || true
            fi
        done
        exec setsid "$@"
    ) </dev/null >>"$logfile" 2>&1 || die "$* exited with status $?" "$logfile"
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local end=$(($(date +%s) + limit))
    until "$@" >/dev/null 2>&1; do
        if (($(date +%s) >= end)); then
            return 1
        fi
        sleep 0.1
    done
    log "$what"
}

# stop_pidfile FILE NAME_REGEX GRACE_SECONDS: SIGTERM, wait, then SIGKILL. Zombies count as gone.
stop_pidfile() {
    local file=$1 pattern=$2 grace=$3 pid
    [[ -f $file ]] || return 0
    pid=$(tr -dc 0-9 <"$file")
    if pid_alive "$pid" "$pattern"; then
        kill -TERM "$pid" 2>/dev/null || true
        local end=$(($(date +%s) + grace))
        while pid_alive "$pid" "$pattern" && (($(date +%s) < end)); do
            sleep 0.1
        done
        if pid_alive "$pid" "$pattern"; then
            log "pid $pid ($pattern) still there after ${grace}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        log "stopped $pattern (pid $pid)"
    fi
    rm -f "$file"
}
