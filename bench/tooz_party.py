"""tooz's etcd3gw lock, the Python comparison of bench/_etcd.ts.

    /usr/bin/python3 bench/tooz_party.py pairs ENDPOINT NAME N
        times N uncontended acquire()+release() of tooz's etcd3gw lock;
        prints one JSON line: {"pairNs": p50, "meanNs": ..., "version": ...}.
    /usr/bin/python3 bench/tooz_party.py serve ENDPOINT NAME
        a handoff party, one command a line on stdin (hold / wait / release /
        quit), the protocol of bench/handoff_child.ts; times are time.time_ns().

ENDPOINT is etcd's client URL (http://127.0.0.1:PORT). Needs Debian's
python3-tooz and python3-etcd3gw. tooz 3.1 passes api_path= to
etcd3gw.client(), which etcd3gw 2.0 does not accept: the shim below builds
the client class directly (it does accept api_path), and the URL asks for the
v3 gateway path of etcd 3.4 (tooz's default is v3alpha).
"""

import json
import sys
import time
import urllib.parse

import etcd3gw
from etcd3gw.client import Etcd3Client

etcd3gw.client = lambda **kw: Etcd3Client(**kw)  # the shim (see above)

from tooz import coordination  # noqa: E402  (after the shim)


def connect(endpoint):
    url = urllib.parse.urlparse(endpoint)
    coordinator = coordination.get_coordinator(
        f"etcd3+http://{url.hostname}:{url.port}?api_version=v3&timeout=10",
        b"bench-" + str(time.time_ns()).encode(),
    )
    coordinator.start()
    return coordinator


def pairs(endpoint, name, n):
    coordinator = connect(endpoint)
    lock = coordinator.get_lock(name.encode())

    def pair():
        lock.acquire()
        lock.release()

    for _ in range(max(1, n // 10)):  # warm up
        pair()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        pair()
        samples.append(time.perf_counter_ns() - t0)
    coordinator.stop()
    samples.sort()
    print(json.dumps({
        "pairNs": samples[(len(samples) + 1) // 2 - 1],  # p50, as bench/_etcd.ts
        "meanNs": sum(samples) / n,
        "version": version(),
    }), flush=True)


def serve(endpoint, name):
    coordinator = connect(endpoint)
    lock = coordinator.get_lock(name.encode())
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "hold":
            lock.acquire()
            print("held", flush=True)
        elif cmd.startswith("wait"):
            print("waiting", flush=True)
            lock.acquire()  # blocking: tooz retries the txn with back-off up to 1 s
            t1 = time.time_ns()
            lock.release()
            print(f"got {t1}", flush=True)
        elif cmd == "release":
            t0 = time.time_ns()
            lock.release()
            print(f"released {t0}", flush=True)
        elif cmd == "quit":
            break
    coordinator.stop()


def version():
    try:
        from importlib.metadata import version as v

        return v("tooz")
    except Exception:
        return "?"


if __name__ == "__main__":
    if sys.argv[1] == "pairs":
        pairs(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        serve(sys.argv[2], sys.argv[3])
