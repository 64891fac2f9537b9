"""CPU time of processes on this host, read from ``/proc`` (Linux) or, for this process, ``os.times``."""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (all its threads).

    Returns:
        None if the process is gone or ``/proc`` is not readable (not Linux).
    """
    if pid == os.getpid():
        t = os.times()
        return t.user + t.system
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            text = fh.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident set size of process ``pid`` (default: this one), from ``/proc/PID/status``.

    Returns:
        None if the process is gone or ``/proc`` is not readable (not Linux).
    """
    try:
        with open(f"/proc/{pid or os.getpid()}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def children_of(ppid: int) -> list[int]:
    """Process ids whose parent is ``ppid`` (empty when ``/proc`` is not there)."""
    out = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii") as fh:
                text = fh.read()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == ppid:
            out.append(int(name))
    return sorted(out)
