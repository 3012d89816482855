"""portalocker's side of bench/_semaphore.ts: a handoff party on a
BoundedSemaphore, driven one command a line on stdin (the protocol of
bench/handoff_child.ts, with `fill` taking every free slot):

    /usr/bin/python3 bench/portalocker_party.py DIR SLOTS

fill      acquire slots (one BoundedSemaphore object each) until SLOTS are held: "held"
wait      "waiting", then acquire() with portalocker's defaults (timeout 5 s,
          check_interval 0.25 s: it polls), read the clock (t1), release, "got <t1>"
release   read the clock (t0), release one slot, "released <t0>"
quit

Times are time.time_ns(). Needs Debian's python3-portalocker (2.2.1 prints
debugging lines from BoundedSemaphore on stdout: they are sent to /dev/null).
"""

import os
import sys
import time

import portalocker

out = os.fdopen(os.dup(1), "w")
sys.stdout = open(os.devnull, "w")


def say(line):
    out.write(line + "\n")
    out.flush()


def semaphore(directory, slots):
    return portalocker.BoundedSemaphore(slots, name="bench", directory=directory)


def main(directory, slots):
    os.makedirs(directory, exist_ok=True)
    held = []
    say("ready")
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "fill":
            while len(held) < slots:
                s = semaphore(directory, slots)
                s.acquire()
                held.append(s)
            say("held")
        elif cmd == "wait":
            s = semaphore(directory, slots)
            say("waiting")
            s.acquire()
            t1 = time.time_ns()
            s.release()
            say(f"got {t1}")
        elif cmd == "release":
            t0 = time.time_ns()
            held.pop().release()
            say(f"released {t0}")
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
