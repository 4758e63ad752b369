#!/usr/bin/env python3
"""CPU time of a process split by thread, for the bench scripts.

    threads.py snapshot PID > FILE      one "TID TICKS NAME" line per thread
    threads.py diff BEFORE AFTER N      CPU microseconds per request (N requests)
                                        by thread name, busiest first

Threads are grouped by name with digits dropped ("sqlx-sqlite-worker-3" and
"-7" are one group); a thread that started after BEFORE counts from zero.
User + system time from /proc/PID/task/TID/stat.
"""
import os
import re
import sys
from collections import defaultdict

HZ = os.sysconf("SC_CLK_TCK")


def snapshot(pid):
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        # The name is in parentheses and may hold spaces or parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        print(tid, ticks, name)


def read(path):
    threads = {}
    with open(path) as f:
        for line in f:
            tid, ticks, name = line.rstrip("\n").split(" ", 2)
            threads[tid] = (int(ticks), name)
    return threads


def diff(before, after, requests):
    before, after = read(before), read(after)
    groups = defaultdict(int)
    for tid, (ticks, name) in after.items():
        groups[re.sub(r"[0-9]+", "N", name).strip()] += ticks - before.get(tid, (0, ""))[0]
    total = sum(groups.values())
    per_request = lambda t: t / HZ * 1e6 / max(requests, 1)
    shown = [f"{name} {per_request(t):.1f}" for name, t in sorted(groups.items(), key=lambda g: -g[1]) if t > 0]
    print(f"{per_request(total):.1f} us/req: " + ", ".join(shown))


if __name__ == "__main__":
    if sys.argv[1] == "snapshot":
        snapshot(sys.argv[2])
    elif sys.argv[1] == "diff":
        diff(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
