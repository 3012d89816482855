"""Python fasteners' side of the comparisons, driven by bench/run.ts.

    /usr/bin/python3 bench/fasteners_party.py pairs PATH N
        times N uncontended acquire()+release() of fasteners.InterProcessLock,
        and of fasteners.ReaderWriterLock (threads) read and write locks;
        prints one JSON line of nanoseconds per pair.
    /usr/bin/python3 bench/fasteners_party.py serve PATH
        a handoff party, one command a line on stdin (hold / wait / release / quit),
        the protocol of bench/handoff_child.ts; times are time.time_ns().

Needs Debian's python3-fasteners (or fasteners from PyPI).
"""

import json
import sys
import time

import fasteners


def per_pair(fn, n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) / n


def pairs(path, n):
    lock = fasteners.InterProcessLock(path)

    def ipl():
        lock.acquire()
        lock.release()

    rw = fasteners.ReaderWriterLock()

    def read():
        with rw.read_lock():
            pass

    def write():
        with rw.write_lock():
            pass

    for fn in (ipl, read, write):  # warm up
        per_pair(fn, n // 10)
    print(json.dumps({
        "interProcessLockNs": per_pair(ipl, n),
        "readerWriterReadNs": per_pair(read, n),
        "readerWriterWriteNs": per_pair(write, n),
        "version": getattr(fasteners, "__version__", "?"),
    }))


def serve(path):
    lock = fasteners.InterProcessLock(path)
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "hold":
            lock.acquire()
            print("held", flush=True)
        elif cmd.startswith("wait"):
            print("waiting", flush=True)
            lock.acquire()  # blocking: fasteners polls (sleep 0.01 s growing to 0.1 s)
            t1 = time.time_ns()
            lock.release()
            print(f"got {t1}", flush=True)
        elif cmd == "release":
            t0 = time.time_ns()
            lock.release()
            print(f"released {t0}", flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    if sys.argv[1] == "pairs":
        pairs(sys.argv[2], int(sys.argv[3]))
    else:
        serve(sys.argv[2])
