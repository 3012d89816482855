/*
 * spin/lock.pml: the Atomics protocol of `Lock` (locks/thread/_raw_lock.ts) and of
 * its async waits (locks/thread/_wait.ts). NP tasks do ROUNDS acquisitions each,
 * sync (Atomics.wait) or async (Atomics.waitAsync), each acquisition either
 * patient (no timeout, no signal) or able to give up (timeout, abort). With
 * SHARED=1, tasks 0 and 1 run on the same thread (one Worker, one attachment,
 * one id, one event loop), task 2 on another.
 *
 * Convention: every step that touches a shared word is ONE Promela statement
 * or d_step and maps to ONE Atomics operation, named in the comment beside it
 * with its file, function and line. Ghost variables (holders, sleeping,
 * patient, busy, done) are updated inside those same steps; steps on locals
 * only are the JavaScript between two Atomics operations.
 *
 * The engine (ECMA-262 WaiterList of the STATE word):
 *   - wait/waitAsync: in one atomic step, compare the word with the expected
 *     value and, only if equal, append the caller to the FIFO list q;
 *   - notify(n): in one atomic step, remove up to n entries from the head of q
 *     and wake them (n = ALL for Infinity);
 *   - a sync wait that times out removes itself (ECMA-262 DoWait);
 *   - an async wait here has no engine timeout (_wait.ts: its timer or the
 *     abort signal ends it), so a given-up wait stays in q, "abandoned", until
 *     a notify reaches it; that notify then queues onAbandonedWake() on the
 *     waiter's event loop (process EventLoop);
 *   - a thread runs one thing at a time: a task's continuation after an await,
 *     and an onAbandonedWake() call, run only while its thread is not busy
 *     (busy[th]: running synchronous protocol code or blocked in Atomics.wait).
 *
 * Abstractions (see spin/README.md):
 *   - forceRelease() and Worker termination are left out; so are the header.
 *   - acquireSync/acquireAsync's first tryAcquire plus #spin (100 rounds of
 *     load + CAS) are collapsed into ONE tryAcquire CAS: a failing round
 *     writes nothing, so any run with k failing rounds then a success is the
 *     run where the single CAS is scheduled at that success, and a run where
 *     all fail equals one failing CAS followed by the same steps.
 *   - Timeouts are a nondeterministic "deadline passed" (only for an
 *     impatient acquisition); performance.now() is not modelled.
 *   - A sync acquire does not start while a task of its own thread holds the
 *     lock: Lock is not reentrant, and that self-deadlock is the documented
 *     contract (lock.ts), not a lost wake-up.
 */

#ifndef NP
#define NP 3
#endif
#ifndef ROUNDS
#define ROUNDS 1
#endif
#ifndef SHARED
#define SHARED 1
#endif
#define NT NP                    /* threads (some unused when SHARED) */
#define TH(p) ((SHARED && p == 1) -> 0 : p)
#define QMAX 8
#define ALL 255                  /* notify count +Infinity */

#define FREE 0
#define SYNC_ONE 1               /* _raw_lock.ts L86 */
#define ASYNC_ONE 65536          /* _raw_lock.ts L88: 1 << 16 */
#define HAS_ASYNC(w) ((w >> 16) != 0)   /* _raw_lock.ts hasAsyncWaits L97 */

/* Mutation switches for spin/check.sh --mutants (never set in the real check):
 *   MUT_NOTIFY_ONE   #wake always notifies 1 (the layout-1 code's one-per-release)
 *   MUT_LOAD_FIRST   release() reads WAITERS before its exchange frees STATE
 *   MUT_NO_PASS_ON   an aborted async wait does not pass a wake-up on */
#ifdef MUT_NOTIFY_ONE
#define WAKE_COUNT(w) 1
#else
#define WAKE_COUNT(w) (HAS_ASYNC(w) -> ALL : 1)
#endif

/* ---- shared words (_raw_lock.ts L76-79) ---- */
byte STATE = FREE;       /* 0 or the holder's attachment id: TH(p) + 1 */
int WAITERS = 0;         /* sync count in bits 0..15, async in bits 16..31 */

/* ---- the engine's waiter list for STATE ---- */
byte q[QMAX];      /* p+1: live wait of task p; p+1+NP: abandoned async wait of p */
byte qlen = 0;
bool woken[NP];    /* a notify removed p's live wait: p's wait returns "ok" */
byte cb[NP];       /* onAbandonedWake() calls queued for p's thread */
bool busy[NT];     /* thread runs synchronous code or sits in Atomics.wait */

/* ---- ghosts ---- */
byte holders = 0;  /* tasks between a successful CAS and their release's exchange */
byte holder = 0;   /* task + 1 of the holder */
bool sleeping[NP]; /* p has a live (not given-up) registration in q */
bool patient[NP];  /* p's current acquisition has no timeout and no signal */
byte done = 0;     /* tasks that finished all their rounds */

hidden byte k, i, e;

/* Atomics.notify(view, STATE, n): wake up to n waiters, FIFO. One atomic step. */
inline notify_n(n) {
  k = n;
  do
  :: k > 0 && qlen > 0 ->
     e = q[0];
     i = 0;
     do
     :: i + 1 < qlen -> q[i] = q[i + 1]; i++
     :: else -> break
     od;
     qlen--;
     q[qlen] = 0;
     if
     :: e > NP -> cb[e - NP - 1]++
     :: else -> woken[e - 1] = true; sleeping[e - 1] = false
     fi;
     if
     :: k != ALL -> k--
     :: else
     fi
  :: else -> break
  od;
  k = 0; i = 0; e = 0
}

/* Atomics.wait/waitAsync(view, STATE, seen): compare and register, atomically. */
inline register(p, seen, reg) {
  if
  :: STATE == seen ->
     assert(qlen < QMAX);
     q[qlen] = p + 1;
     qlen++;
     sleeping[p] = true;
     reg = true
  :: else -> reg = false
  fi
}

/* ECMA-262 DoWait, sync timeout: the waiter removes its own entry. */
inline deregister(p) {
  i = 0;
  do
  :: q[i] == p + 1 -> break
  :: else -> i++
  od;
  do
  :: i + 1 < qlen -> q[i] = q[i + 1]; i++
  :: else -> break
  od;
  qlen--;
  q[qlen] = 0;
  sleeping[p] = false;
  i = 0
}

/* _wait.ts giveUp: the engine entry stays, but nobody waits on it any more. */
inline abandon(p) {
  i = 0;
  do
  :: q[i] == p + 1 -> q[i] = p + 1 + NP; break
  :: else -> i++
  od;
  sleeping[p] = false;
  i = 0
}

/* Whether a task of p's thread holds the lock (ids are per thread). */
#define OWN_THREAD_HOLDS(p) (STATE == TH(p) + 1)

proctype Task(byte p) {
  byte r = 0, seen, s;
  int w;
  bool sync, ok, reg, expired, aborted, got;

round:
  if
  :: r == ROUNDS -> goto fin
  :: else
  fi;
  if
  :: sync = true
  :: sync = false
  fi;
  if
  :: patient[p] = true
  :: patient[p] = false
  fi;

  /* acquireSync L121 / acquireAsync L128: tryAcquire, and #spin L157, collapsed */
  d_step { /* _raw_lock.ts RawLock.tryAcquire L116: Atomics.compareExchange(STATE, FREE, id) */
    !busy[TH(p)] && !(sync && OWN_THREAD_HOLDS(p));
    busy[TH(p)] = true;
    if
    :: STATE == FREE -> STATE = TH(p) + 1; holders++; holder = p + 1; ok = true
    :: else -> ok = false
    fi
  }
  if
  :: ok -> goto cs
  :: else
  fi;

  if               /* _raw_lock.ts #lockContendedSync L166 / #lockContendedAsync L184: Atomics.add */
  :: sync -> WAITERS = WAITERS + SYNC_ONE
  :: else -> WAITERS = WAITERS + ASYNC_ONE
  fi;

loop:
  atomic {         /* _raw_lock.ts L169 / L187: seen = Atomics.compareExchange(STATE, FREE, id) */
    seen = STATE;
    if
    :: STATE == FREE -> STATE = TH(p) + 1; holders++; holder = p + 1; ok = true
    :: else -> ok = false
    fi
  }
  if
  :: ok -> goto leave
  :: else
  fi;
  /* L171-170 / L189-188: left <= 0 ? */
  if
  :: expired -> goto leave
  :: !expired && !patient[p] -> expired = true; goto leave   /* deadline passed before waiting */
  :: !expired -> skip
  fi;

  if
  :: sync ->
     d_step {       /* _raw_lock.ts #lockContendedSync L173: Atomics.wait(STATE, seen, left) */
       register(p, seen, reg);
       seen = 0
     }
     if
     :: reg ->
        if
        :: woken[p] -> woken[p] = false              /* "ok" */
        :: d_step {  /* L173: Atomics.wait times out and leaves the waiter list */
             !patient[p] && sleeping[p] -> deregister(p); expired = true
           }
        fi;
        reg = false
     :: else         /* "not-equal" */
     fi;
     goto loop
  :: else ->
     d_step {       /* _wait.ts waitAsync L41: Atomics.waitAsync(STATE, seen) (from _raw_lock.ts L192) */
       register(p, seen, reg);
       seen = 0;
       if
       :: reg -> busy[TH(p)] = false   /* awaiting: the thread is free */
       :: else
       fi
     }
     if
     :: reg ->
        reg = false;
        if
        :: d_step {  /* _wait.ts L68-76: the wait resolves "ok" (settled = true) */
             woken[p] && !busy[TH(p)] -> woken[p] = false; busy[TH(p)] = true
           }
        :: d_step {  /* _wait.ts giveUp L55-63: the timer or the abort runs first */
             !patient[p] && !busy[TH(p)] ->
             busy[TH(p)] = true;
             if
             :: sleeping[p] -> abandon(p); got = false
             :: else -> woken[p] = false; got = true   /* notified, but the "ok" task comes after */
             fi
           }
           d_step {  /* _raw_lock.ts RawLock.onAbandon L208: Atomics.add(WAITERS, ASYNC_ONE) */
             WAITERS = WAITERS + ASYNC_ONE;
             if
             :: got -> cb[p]++; got = false   /* _wait.ts L69-71 will run onAbandonedWake */
             :: else
             fi
           }
           if
           :: expired = true   /* resolve("timed-out"): loop, one last CAS, then left <= 0 */
           :: aborted = true   /* reject(signal.reason) */
           fi;
           if
           :: aborted ->
#ifndef MUT_NO_PASS_ON
              s = STATE;     /* _raw_lock.ts #lockContendedAsync L195: Atomics.load(STATE) */
              if
              :: s == FREE ->
                 w = WAITERS; /* _raw_lock.ts #lockContendedAsync L196: Atomics.load(WAITERS) */
                 if
                 :: w != 0 ->
                    d_step {  /* _raw_lock.ts #wake L151: Atomics.notify(STATE, async ? Infinity : 1) */
                      notify_n(WAKE_COUNT(w));
                      w = 0
                    }
                 :: else
                 fi
              :: else
              fi;
              s = 0;
#endif
              goto leave
           :: else
           fi
        fi
     :: else         /* "not-equal": resolved at once */
     fi;
     goto loop
  fi;

leave:
  if               /* _raw_lock.ts L176 / L203 (finally): Atomics.sub */
  :: sync -> WAITERS = WAITERS - SYNC_ONE
  :: else -> WAITERS = WAITERS - ASYNC_ONE
  fi;
  if
  :: ok -> goto cs
  :: else ->
     atomic { busy[TH(p)] = false; r++; expired = false; aborted = false; sync = false }
     goto round
  fi;

cs:
  atomic {
    ok = false; expired = false; aborted = false; sync = false;
    busy[TH(p)] = false;   /* the caller's critical section may await */
    assert(holders == 1 && holder == p + 1)
  }
#ifdef MUT_LOAD_FIRST
  w = WAITERS;      /* mutant: WAITERS read before STATE is released */
#endif
  d_step {          /* _raw_lock.ts RawLock.release L135: Atomics.exchange(STATE, FREE) */
    !busy[TH(p)];
    busy[TH(p)] = true;
    assert(STATE == TH(p) + 1);
    holders--;
    holder = 0;
    STATE = FREE
  }
#ifndef MUT_LOAD_FIRST
  w = WAITERS;      /* _raw_lock.ts RawLock.release L136: Atomics.load(WAITERS) */
#endif
  if
  :: w != 0 ->
     d_step {        /* _raw_lock.ts #wake L151: Atomics.notify(STATE, async ? Infinity : 1) */
       notify_n(WAKE_COUNT(w));
       w = 0; busy[TH(p)] = false
     }
  :: else -> busy[TH(p)] = false
  fi;
  r++;
  goto round;

fin:
  atomic { done++; patient[p] = false }
}

/* A thread's event loop running queued onAbandonedWake() calls. */
proctype EventLoop(byte p) {
end:
  do
  :: d_step {       /* _raw_lock.ts RawLock.onAbandonedWake L212: Atomics.sub(WAITERS, ASYNC_ONE) */
       cb[p] > 0 && !busy[TH(p)] ->
       cb[p]--;
       assert(WAITERS >= ASYNC_ONE);
       WAITERS = WAITERS - ASYNC_ONE
     }
  od
}

/* When every task has finished and nothing else can move: all counters at rest. */
proctype Quiescence() {
  done == NP;
  timeout ->
  assert(STATE == FREE && holders == 0);
  assert(WAITERS == 0);
  assert(qlen == 0)
}

init {
  atomic {
    byte n = 0;
    do
    :: n < NP -> run Task(n); run EventLoop(n); n++
    :: else -> break
    od;
    run Quiescence()
  }
}

/* No lost wake-up: a patient waiter (no timeout, no signal) that is registered
 * on STATE is eventually woken. Checked with weak fairness (pan -a -f). */
#define SLEEPS(p) (sleeping[p] && patient[p])
#if NP == 2
ltl no_lost_wakeup {
  [] (SLEEPS(0) -> <> !SLEEPS(0)) &&
  [] (SLEEPS(1) -> <> !SLEEPS(1))
}
#else
ltl no_lost_wakeup {
  [] (SLEEPS(0) -> <> !SLEEPS(0)) &&
  [] (SLEEPS(1) -> <> !SLEEPS(1)) &&
  [] (SLEEPS(2) -> <> !SLEEPS(2))
}
#endif
