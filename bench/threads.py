#!/usr/bin/env python3
"""CPU time of a process split by thread, for the bench scripts.

    threads.py snapshot PID > FILE      one "TID TICKS SLEEPS NAME" line per thread
    threads.py diff BEFORE AFTER N      CPU microseconds per request (N requests)
                                        by thread name, busiest first, and how
                                        often per request the thread went to
                                        sleep (so was woken)
    threads.py sched PID... > FILE      one line per thread of the processes:
                                        the scheduler's counters
    threads.py sched-diff BEFORE AFTER N   per thread name, per request: CPU,
                                        time runnable but waiting for a core,
                                        sleeps (voluntary switches) and
                                        preemptions (involuntary switches)

Threads are grouped by name with digits dropped ("sqlx-sqlite-worker-3" and
"-7" are one group); a thread that started after BEFORE counts from zero.
User + system time from /proc/PID/task/TID/stat; sleeps are the thread's
voluntary context switches (/proc/PID/task/TID/status). The sched modes
read /proc/PID/task/TID/schedstat instead: nanoseconds on a core,
nanoseconds runnable on a run queue (woken or preempted, waiting for a
core), and the number of times the thread got a core.
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
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        sleeps = next(l.split()[1] for l in status.splitlines() if l.startswith("voluntary_ctxt_switches"))
        # The name is in parentheses and may hold spaces or parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        print(tid, ticks, sleeps, name)


def read(path):
    threads = {}
    with open(path) as f:
        for line in f:
            tid, ticks, sleeps, name = line.rstrip("\n").split(" ", 3)
            threads[tid] = (int(ticks), int(sleeps), name)
    return threads


def diff(before, after, requests):
    before, after = read(before), read(after)
    ticks, sleeps = defaultdict(int), defaultdict(int)
    for tid, (t, s, name) in after.items():
        group = re.sub(r"[0-9]+", "N", name).strip()
        t0, s0, _ = before.get(tid, (0, 0, ""))
        ticks[group] += t - t0
        sleeps[group] += s - s0
    n = max(requests, 1)
    us = lambda t: t / HZ * 1e6 / n
    shown = [
        f"{group} {us(t):.1f} ({sleeps[group] / n:.2f} sleeps)"
        for group, t in sorted(ticks.items(), key=lambda g: -g[1])
        if t > 0
    ]
    print(f"{us(sum(ticks.values())):.1f} us/req: " + ", ".join(shown))


def status_field(status, key):
    return int(next(l.split()[1] for l in status.splitlines() if l.startswith(key)))


def sched(pids):
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            base = f"/proc/{pid}/task/{tid}"
            try:
                with open(f"{base}/schedstat") as f:
                    on_cpu, waiting, slices = f.read().split()[:3]
                with open(f"{base}/status") as f:
                    status = f.read()
                with open(f"{base}/comm") as f:
                    name = f.read().strip()
            except OSError:
                continue  # the thread ended meanwhile
            sleeps = status_field(status, "voluntary_ctxt_switches")
            preempted = status_field(status, "nonvoluntary_ctxt_switches")
            print(tid, on_cpu, waiting, slices, sleeps, preempted, name)


def sched_diff(before, after, requests):
    def load(path):
        rows = {}
        with open(path) as f:
            for line in f:
                *figures, name = line.rstrip("\n").split(" ", 6)
                rows[figures[0]] = ([int(x) for x in figures[1:]], name)
        return rows

    before, after = load(before), load(after)
    groups = defaultdict(lambda: [0] * 5)
    threads = defaultdict(int)
    for tid, (figures, name) in after.items():
        old = before.get(tid, ([0] * 5, name))[0]
        delta = [a - b for a, b in zip(figures, old)]
        if delta[0] == 0:
            continue
        group = re.sub(r"[0-9]+", "N", name).strip()
        threads[group] += 1
        for i, d in enumerate(delta):
            groups[group][i] += d
    n = max(requests, 1)
    for group, (on_cpu, waiting, slices, sleeps, preempted) in sorted(groups.items(), key=lambda g: -g[1][0]):
        # Mean wait for a core each time the thread got one, in microseconds.
        per_slice = waiting / max(slices, 1) / 1e3
        print(
            f"    {group:24} x{threads[group]:<2} CPU {on_cpu / n / 1e3:5.2f} us/req"
            f"  waiting {waiting / n / 1e3:5.2f} us/req ({per_slice:6.1f} us a time)"
            f"  sleeps {sleeps / n:5.3f}/req  preempted {preempted / n:5.3f}/req"
        )


if __name__ == "__main__":
    if sys.argv[1] == "snapshot":
        snapshot(sys.argv[2])
    elif sys.argv[1] == "diff":
        diff(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "sched":
        sched(sys.argv[2:])
    elif sys.argv[1] == "sched-diff":
        sched_diff(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
