#!/usr/bin/env python3
"""Runs a command and appends to $CPU_LOG what it cost: its own CPU (user +
system, from wait4's rusage, so every thread and child it waited for) and
what the local PostgreSQL server spent meanwhile (postmaster, its reaped
children and its live backends, from /proc). Its stdout and stderr pass
through untouched, so it can stand in for a binary that another program
runs (see rebuild-before-after).

    CPU_LOG=cpu.jsonl REAL=/path/to/binary cpu-of-child.py [args...]

The server is found by its lock file (/var/run/postgresql/.s.PGSQL.<port>.lock,
port from PGPORT or 5432). Nothing else should use that server meanwhile.
"""
import json
import os
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name may hold spaces: split after its closing parenthesis.
    rest = text[text.rindex(")") + 2:].split()
    return rest  # rest[0] is field 3 (state)


def postgres_cpu_seconds(postmaster):
    own = stat_fields(postmaster)
    # utime, stime, cutime, cstime are fields 14-17 (rest[11:15]).
    total = sum(int(x) for x in own[11:15])
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = stat_fields(int(name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if int(fields[1]) == postmaster:  # ppid is field 4
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def main():
    port = os.environ.get("PGPORT", "5432")
    with open(f"/var/run/postgresql/.s.PGSQL.{port}.lock") as f:
        postmaster = int(f.readline())
    real = os.environ["REAL"]
    pg_before = postgres_cpu_seconds(postmaster)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.execv(real, [real] + sys.argv[1:])
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - started
    pg_after = postgres_cpu_seconds(postmaster)
    record = {
        "command": [os.path.basename(real)] + sys.argv[1:],
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "postgres_cpu_seconds": round(pg_after - pg_before, 3),
        "peak_rss_kib": usage.ru_maxrss,
    }
    with open(os.environ["CPU_LOG"], "a") as log:
        log.write(json.dumps(record) + "\n")
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
