/*
 * spin/lock.pml: the Atomics protocol of `Lock` (locks/thread/_raw_lock.ts) with
 * its queue of async waiters per attachment and the one watcher that waits on
 * STATE for that queue. NP tasks do ROUNDS acquisitions each, sync
 * (Atomics.wait) or async (queued, served by the watcher or by a direct
 * handoff), each acquisition either patient (no timeout, no signal) or able
 * to give up (timeout, abort). With SHARED=1, tasks 0 and 1 run on the same
 * thread (one Worker, one attachment, one id, one event loop, one queue, one
 * watcher), task 2 on another.
 *
 * Convention: every step that touches a shared word is ONE Promela statement
 * or d_step and maps to ONE Atomics operation, named in the comment beside it
 * with its file, function and line. Ghost variables (holders, sleeping,
 * queued, served, patient, done) are updated inside those same steps; steps on
 * locals and on the attachment's own queue (plain JavaScript, one thread) are
 * the code between two Atomics operations.
 *
 * The engine (ECMA-262 WaiterList of the STATE word):
 *   - wait/waitAsync: in one atomic step, compare the word with the expected
 *     value and, only if equal, append the caller to the FIFO list q;
 *   - notify(n): in one atomic step, remove up to n entries from the head of q
 *     and wake them (n = ALL for Infinity);
 *   - a sync wait that times out removes itself (ECMA-262 DoWait);
 *   - the watcher's waitAsync has no timeout and is never given up: it ends
 *     only when a notify reaches it, and its continuation then runs on its
 *     thread's event loop;
 *   - a thread runs one thing at a time: a task's continuation after an
 *     await, a waiter's timer or abort, and the watcher's continuation run
 *     only while the thread is not busy (busy[th]: running synchronous code
 *     or blocked in Atomics.wait).
 *
 * Abstractions (see spin/README.md):
 *   - forceRelease() and Worker termination are left out; so is the header.
 *   - acquireSync/acquireAsync's first tryAcquire plus #spin (100 rounds of
 *     load + CAS) are collapsed into ONE tryAcquire CAS: a failing round
 *     writes nothing, so any run with k failing rounds then a success is the
 *     run where the single CAS is scheduled at that success.
 *   - Timeouts are a nondeterministic "deadline passed" (only for an
 *     impatient acquisition); performance.now() is not modelled.
 *   - LOCAL_BATCH: a release with local waiters while others wait may free
 *     the lock or hand it on, chosen nondeterministically (the code frees it
 *     after 32 handoffs in a row: a subset of these runs).
 *   - A sync acquire does not start while a task of its own thread holds the
 *     lock or has been served it: Lock is not reentrant, and that
 *     self-deadlock is the documented contract (lock.ts), not a lost wake-up.
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
#define LOOK 64                  /* _raw_lock.ts LOOK (1 << 30 in the code; ids here are 1..3) */
#define ID(s) ((s) & 63)         /* _raw_lock.ts ID_MASK: the holder's id */
#define SYNC_ONE 1               /* _raw_lock.ts SYNC_ONE */
#define ASYNC_ONE 65536          /* _raw_lock.ts ASYNC_ONE: 1 << 16 */
#define HAS_ASYNC(w) ((w >> 16) != 0)   /* _raw_lock.ts hasAsyncWaits */

/* Mutation switches for spin/check.sh --mutants (never set in the real check):
 *   MUT_NOTIFY_ONE      #wake always notifies 1 (the layout-1 code's one-per-release)
 *   MUT_LOAD_FIRST      release() reads WAITERS before its exchange frees STATE
 *   MUT_UNCOUNTED_WATCH the watcher does not count itself in WAITERS
 *   MUT_WOKEN_EAGER     a release skips its notify when all sync waiters but one are woken
 *   MUT_TAKE_NO_LOOK    a sync waiter or watcher takes a free lock without LOOK (CAS 0 -> id)
 *   MUT_HANDOFF_NO_LOOK a direct handoff drops LOOK (CAS holder -> id) */
#ifdef MUT_NOTIFY_ONE
#define WAKE_COUNT(w) 1
#else
#define WAKE_COUNT(w) (HAS_ASYNC(w) -> ALL : 1)
#endif
#ifdef MUT_WOKEN_EAGER
#define SKIP_SLACK 1
#else
#define SKIP_SLACK 0
#endif
#ifdef MUT_UNCOUNTED_WATCH
#define WATCH_ONE 0
#else
#define WATCH_ONE ASYNC_ONE
#endif
#ifdef MUT_TAKE_NO_LOOK
#define TAKE_LOOK 0
#else
#define TAKE_LOOK LOOK
#endif

/* ---- shared words (_raw_lock.ts STATE, WAITERS, WOKEN) ---- */
byte STATE = FREE;       /* 0, or the holder's attachment id TH(p) + 1, maybe | LOOK */
int WAITERS = 0;         /* sync count in bits 0..15, watchers in bits 16..31 */
int WOKEN = 0;           /* waits woken by a notify that have not run yet */

/* ---- the engine's waiter list for STATE ---- */
byte q[QMAX];      /* p+1: sync wait of task p; NP+1+th: the watcher of thread th */
byte qlen = 0;
bool woken[NP];    /* a notify removed p's sync wait: it returns "ok" */
bool wwoken[NT];   /* a notify removed th's watcher wait: its continuation is queued */
bool busy[NT];     /* thread runs synchronous code or sits in Atomics.wait */

/* ---- each attachment's queue of async waiters (plain JavaScript) ---- */
byte lq[NT * NP];  /* lq[th * NP + k]: task ids, FIFO */
byte lqlen[NT];
bool watching[NT]; /* the watcher runs (#watching) */
bool wgo[NT];      /* the watcher is started, and holds its thread's turn */

/* ---- ghosts ---- */
byte holders = 0;  /* tasks served or past a successful CAS, until their release */
byte holder = 0;   /* task + 1 of the holder */
bool sleeping[NP]; /* p has a sync wait registered in q */
bool queued[NP];   /* p waits in its attachment's queue */
bool served[NP];   /* p was served the lock; its continuation has not run yet */
bool patient[NP];  /* p's current acquisition has no timeout and no signal */
byte done = 0;     /* tasks that finished all their rounds */

hidden byte k, i, e, nw;

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
     nw++;
     if
     :: e > NP -> wwoken[e - NP - 1] = true
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

/* WaitQueue.serve(): the head of th's queue is resolved with the lock (holder ghosts move). */
inline serve(th) {
  e = lq[th * NP];
  i = 0;
  do
  :: i + 1 < lqlen[th] -> lq[th * NP + i] = lq[th * NP + i + 1]; i++
  :: else -> break
  od;
  lqlen[th]--;
  lq[th * NP + lqlen[th]] = 0;
  queued[e] = false;
  served[e] = true;
  holders++;
  holder = e + 1;
  i = 0; e = 0
}

/* A waiter's timer or abort: it leaves its queue (WaitQueue #giveUp). */
inline leave_queue(p) {
  i = 0;
  do
  :: lq[TH(p) * NP + i] == p -> break
  :: else -> i++
  od;
  do
  :: i + 1 < lqlen[TH(p)] -> lq[TH(p) * NP + i] = lq[TH(p) * NP + i + 1]; i++
  :: else -> break
  od;
  lqlen[TH(p)]--;
  lq[TH(p) * NP + lqlen[TH(p)]] = 0;
  queued[p] = false;
  i = 0
}

/* Whether a task of p's thread holds the lock or was served it (ids are per thread). */
#define OWN_THREAD_HOLDS(p) (ID(STATE) == TH(p) + 1)

proctype Task(byte p) {
  byte r = 0, seen, n;
  int w, kk;
  bool sync, ok, reg, expired;

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

  /* acquireSync L212 / acquireAsync L226 (queue empty): tryAcquire, and #spin L311, collapsed */
  d_step { /* _raw_lock.ts RawLock.tryAcquire L208: Atomics.compareExchange(STATE, FREE, id) */
    !busy[TH(p)] && !(sync && OWN_THREAD_HOLDS(p));
    busy[TH(p)] = true;
    if
    :: !sync && lqlen[TH(p)] > 0 -> ok = false   /* L226: queue not empty: no CAS, join it */
    :: else ->
       if
       :: STATE == FREE -> STATE = TH(p) + 1; holders++; holder = p + 1; ok = true
       :: else -> ok = false
       fi
    fi
  }
  if
  :: ok -> goto cs
  :: else
  fi;
  if
  :: sync -> goto syncwait
  :: else
  fi;

  /* ---- async: join the queue (L233); start the watcher if none runs (L234) ---- */
  atomic {
    lq[TH(p) * NP + lqlen[TH(p)]] = p;
    lqlen[TH(p)]++;
    queued[p] = true
  }
  if
  :: watching[TH(p)] -> busy[TH(p)] = false      /* the caller awaits its promise */
  :: else ->
     d_step {      /* _raw_lock.ts #watch L344: Atomics.add(WAITERS, ASYNC_ONE) */
       watching[TH(p)] = true;
       WAITERS = WAITERS + WATCH_ONE;
       wgo[TH(p)] = true  /* the watcher runs on in this synchronous step, then awaits */
     }
  fi;
  if
  :: d_step {      /* served: the continuation runs when the thread is free */
       served[p] && !busy[TH(p)] -> served[p] = false; busy[TH(p)] = true
     }
     goto cs
  :: d_step {      /* _wait.ts WaitQueue #giveUp: the timer or the abort runs first */
       queued[p] && !patient[p] && !busy[TH(p)] -> leave_queue(p)
     }
     atomic { r++; sync = false }
     goto round
  fi;

  /* ---- sync ---- */
syncwait:
  WAITERS = WAITERS + SYNC_ONE;  /* _raw_lock.ts #lockContendedSync L320: Atomics.add */
loop:
  atomic {         /* _raw_lock.ts #lockContendedSync L323: Atomics.compareExchange(STATE, FREE, id | LOOK) -> seen */
    seen = STATE;
    if
    :: STATE == FREE -> STATE = TH(p) + 1 + TAKE_LOOK; holders++; holder = p + 1; ok = true
    :: else -> ok = false
    fi
  }
  if
  :: ok -> goto leave
  :: else
  fi;
  /* L325-326: left <= 0 ? */
  if
  :: expired -> goto leave
  :: !expired && !patient[p] -> expired = true; goto leave   /* deadline passed before waiting */
  :: !expired -> skip
  fi;
  if               /* L327: LOOK not set yet: set it, or start over if STATE moved */
  :: (seen & LOOK) == 0 ->
     d_step {      /* _raw_lock.ts #setLook L305: Atomics.compareExchange(STATE, seen, seen | LOOK) */
       if
       :: STATE == seen -> STATE = seen | LOOK; seen = seen | LOOK
       :: else -> seen = 0
       fi
     }
     if
     :: seen == 0 -> goto loop
     :: else
     fi
  :: else
  fi;
  d_step {         /* _raw_lock.ts #lockContendedSync L328: Atomics.wait(STATE, seen | LOOK, left) */
    if
    :: STATE == seen ->
       assert(qlen < QMAX);
       q[qlen] = p + 1;
       qlen++;
       sleeping[p] = true;
       reg = true
    :: else -> reg = false
    fi;
    seen = 0
  }
  if
  :: reg ->
     if
     :: woken[p] -> woken[p] = false;             /* "ok" */
        WOKEN = WOKEN - 1  /* _raw_lock.ts #lockContendedSync L328: Atomics.sub(WOKEN, 1) */
     :: d_step {  /* L328: Atomics.wait times out and leaves the waiter list */
          !patient[p] && sleeping[p] -> deregister(p); expired = true
        }
     fi;
     reg = false
  :: else         /* "not-equal" */
  fi;
  goto loop;

leave:
  WAITERS = WAITERS - SYNC_ONE;  /* _raw_lock.ts #lockContendedSync L331: Atomics.sub (finally) */
  if
  :: ok -> goto cs
  :: else ->
     atomic { busy[TH(p)] = false; r++; expired = false; sync = false }
     goto round
  fi;

cs:
  atomic {
    ok = false; expired = false; sync = false;
    busy[TH(p)] = false;   /* the caller's critical section may await */
    assert(holders == 1 && holder == p + 1)
  }
  atomic { !busy[TH(p)]; busy[TH(p)] = true }   /* release() L240: the queue's size */
  if
  :: lqlen[TH(p)] > 0 -> goto handoff
  :: else
  fi;
#ifdef MUT_LOAD_FIRST
  w = WAITERS;      /* mutant: WAITERS read before STATE is released */
#endif
  d_step {          /* _raw_lock.ts RawLock.release L242: Atomics.exchange(STATE, FREE) -> old */
    assert(ID(STATE) == TH(p) + 1);
    holders--;
    holder = 0;
    seen = STATE;
    STATE = FREE
  }
  if                /* L243: only a LOOK in the old value sends the release to #wake */
  :: (seen & LOOK) != 0 ->
     seen = 0;
#ifndef MUT_LOAD_FIRST
     w = WAITERS;    /* _raw_lock.ts #wake L268: Atomics.load(WAITERS) */
#endif
     if
     :: w != 0 ->
        kk = WOKEN;     /* _raw_lock.ts #wake L269: Atomics.load(WOKEN) */
        w = WAITERS;    /* _raw_lock.ts #wake L270: Atomics.load(WAITERS) */
        if
        :: !HAS_ASYNC(w) && (w & 65535) <= kk + SKIP_SLACK ->   /* L271: every sync waiter is woken already */
           atomic { w = 0; kk = 0; busy[TH(p)] = false }
        :: else ->
           d_step {     /* _raw_lock.ts #wake L272: Atomics.notify(STATE, async ? Infinity : 1) */
             notify_n(WAKE_COUNT(w));
             n = nw; nw = 0; w = 0; kk = 0
           }
           d_step {     /* _raw_lock.ts #wake L273: Atomics.add(WOKEN, n) */
             WOKEN = WOKEN + n; n = 0; busy[TH(p)] = false
           }
        fi
     :: else -> atomic { w = 0; busy[TH(p)] = false }
     fi
  :: else -> atomic { seen = 0; w = 0; busy[TH(p)] = false }
  fi;
  r++;
  goto round;

handoff:
  w = WAITERS;      /* _raw_lock.ts #handOff L283: Atomics.load(WAITERS) */
  if
  :: w - WATCH_ONE != 0 ->   /* somebody else waits: LOCAL_BATCH may be used up */
     d_step {       /* _raw_lock.ts #handOff L286: Atomics.exchange(STATE, FREE) */
       assert(ID(STATE) == TH(p) + 1);
       holders--;
       holder = 0;
       STATE = FREE
     }
     d_step {       /* _raw_lock.ts #handOff L287: Atomics.notify(STATE, Infinity) */
       notify_n(ALL);
       n = nw; nw = 0; w = 0
     }
     d_step {       /* _raw_lock.ts #handOff L288: Atomics.add(WOKEN, n) */
       WOKEN = WOKEN + n; n = 0; busy[TH(p)] = false
     }
     r++;
     goto round
  :: true
  fi;
  w = 0;
  d_step {          /* _raw_lock.ts #handOff L292: Atomics.load(STATE) (== id | LOOK kept: no CAS at L297) */
    assert(ID(STATE) == TH(p) + 1);
#ifdef MUT_HANDOFF_NO_LOOK
    STATE = ID(STATE);   /* mutant: the handoff writes the plain id */
#endif
    holders--;
    holder = 0;
    serve(TH(p));   /* L299: the lock passes to the head, never free */
    busy[TH(p)] = false
  }
  r++;
  goto round;

fin:
  atomic { done++; patient[p] = false }
}

/* The watcher of thread th (RawLock #watch): started by a task, in that task's turn. */
proctype Watcher(byte th) {
  byte seen;
  bool reg;
end:
  do
  :: wgo[th] ->
wloop:
     if
     :: lqlen[th] == 0 ->
        d_step {    /* _raw_lock.ts #watch L357: Atomics.sub(WAITERS, ASYNC_ONE) (finally) */
          assert(WAITERS >= WATCH_ONE);
          WAITERS = WAITERS - WATCH_ONE;
          watching[th] = false;
          wgo[th] = false;
          busy[th] = false
        }
     :: else ->
        atomic {    /* _raw_lock.ts #watch L347: Atomics.compareExchange(STATE, FREE, id | LOOK) -> seen */
          seen = STATE;
          if
          :: STATE == FREE -> STATE = th + 1 + TAKE_LOOK; serve(th); seen = 0; reg = true  /* L349 */
          :: else -> reg = false
          fi
        }
        if
        :: reg -> reg = false; goto wloop
        :: else
        fi;
        if          /* L352: LOOK not set yet: set it, or start over if STATE moved */
        :: (seen & LOOK) == 0 ->
           d_step { /* _raw_lock.ts #setLook L305: Atomics.compareExchange(STATE, seen, seen | LOOK) */
             if
             :: STATE == seen -> STATE = seen | LOOK; seen = seen | LOOK
             :: else -> seen = 0
             fi
           }
           if
           :: seen == 0 -> goto wloop
           :: else
           fi
        :: else
        fi;
        d_step {    /* _raw_lock.ts #watch L353: Atomics.waitAsync(STATE, seen | LOOK) */
          if
          :: STATE == seen ->
             assert(qlen < QMAX);
             q[qlen] = NP + 1 + th;
             qlen++;
             reg = true;
             busy[th] = false   /* awaiting: the thread is free */
          :: else -> reg = false
          fi;
          seen = 0
        }
        if
        :: reg ->
           reg = false;
           d_step { wwoken[th] && !busy[th] -> wwoken[th] = false; busy[th] = true }
           WOKEN = WOKEN - 1   /* _raw_lock.ts #watch L354: Atomics.sub(WOKEN, 1) */
        :: else
        fi;
        goto wloop
     fi
  od
}

/* When every task has finished and nothing else can move: all counters at rest. */
proctype Quiescence() {
  done == NP;
  timeout ->
  assert(STATE == FREE && holders == 0);
  assert(WAITERS == 0);
  assert(WOKEN == 0);
  assert(qlen == 0)
}

init {
  atomic {
    byte n = 0;
    do
    :: n < NP -> run Task(n); run Watcher(n); n++
    :: else -> break
    od;
    run Quiescence()
  }
}

/* No lost wake-up: a patient waiter (no timeout, no signal), registered on
 * STATE (sync) or queued (async), is eventually woken or served. Checked with
 * weak fairness (pan -a -f). */
#define WAITS(p) ((sleeping[p] || queued[p]) && patient[p])
#if NP == 2
ltl no_lost_wakeup {
  [] (WAITS(0) -> <> !WAITS(0)) &&
  [] (WAITS(1) -> <> !WAITS(1))
}
#else
ltl no_lost_wakeup {
  [] (WAITS(0) -> <> !WAITS(0)) &&
  [] (WAITS(1) -> <> !WAITS(1)) &&
  [] (WAITS(2) -> <> !WAITS(2))
}
#endif
