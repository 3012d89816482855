/*
 * spin/semaphore.pml: the Atomics protocol of `Semaphore`
 * (locks/thread/_raw_semaphore.ts, layout 1). N slot words that name their
 * holder, WAITERS (sync count | async count << 16), SYNC_SEQ and ASYNC_SEQ.
 *
 * Tasks: sync tasks (acquireSync: Atomics.wait on SYNC_SEQ) and async tasks
 * (acquire: queued in their attachment's FIFO, served by its pump, the one
 * Atomics.waitAsync on ASYNC_SEQ per attachment). Each attachment is one
 * thread: its sync task and its async tasks and pump share an event loop, and
 * an async step runs only while the thread is not busy (running synchronous
 * protocol code or blocked in Atomics.wait). Each acquisition is patient (no
 * timeout) or impatient (it may give up before waiting, while blocked in
 * Atomics.wait, or, async, while queued: timeout and abort look alike here).
 *
 * Configurations (CFG):
 *   1: N = 2; attachment 0 = sync task S0 + async task A0 (one thread: a
 *      thread blocked in acquireSync() while its own async waiter queues),
 *      attachment 1 = async task A1, attachment 2 = sync task S1.
 *   2: N = 1; attachment 0 = async tasks A0 and A1 (one queue, the handoff
 *      of a release to the next queued waiter), attachment 1 = sync task S0.
 *
 * Convention (spin/README.md): every step that touches a shared word is ONE
 * statement or d_step and maps to ONE Atomics operation, named beside it with
 * its line in _raw_semaphore.ts. Thread-local state (live, counted, waiting,
 * queued, busy) changes inside those steps or in steps of its own thread.
 *
 * Abstractions:
 *   - The slot scan starts at slot 0 (the code starts at its hint; any start
 *     is one of the interleavings of a scan) and the fast path plus the spin
 *     rounds are one scan.
 *   - The FIFO order of an attachment's queue is not modelled (a pump serves
 *     the lowest queued task); the tests check it.
 *   - forceRelease(), Worker termination, the header and `held` bookkeeping
 *     are left out; holders release the slot they took.
 *   - A sync acquire does not start while an async task of its own thread
 *     holds a slot (with every slot so held it could only deadlock its thread).
 */

#ifndef CFG
#define CFG 1
#endif

#if CFG == 1
#define N 2
#define NS 1
#define NA 2
#define NATT 2
#define SATT(s) 0
#define AATT(j) (j)
#elif CFG == 3
#define N 1
#define NS 2
#define NA 1
#define NATT 3
#define SATT(s) (s)
#define AATT(j) 2
#else
#define N 1
#define NS 1
#define NA 2
#define NATT 2
#define SATT(s) 1
#define AATT(j) 0
#endif
#define ALL 255
#define QMAX 4

#define FREE 0
#define SYNC_ONE 1               /* _raw_semaphore.ts SYNC_ONE */
#define ASYNC_ONE 256            /* 1 << 16 in the code; 1 << 8 here (counts stay < 256) */
#define HAS_SYNC(w) ((w % ASYNC_ONE) != 0)
#define HAS_ASYNC(w) ((w / ASYNC_ONE) != 0)

/* Mutation switches for spin/check.sh --mutants (never set in the real check):
 *   MUT_SEM_LOAD_FIRST  release reads WAITERS before its CAS frees the slot
 *   MUT_SEM_COUNT_LATE  the pump counts itself in WAITERS after its scan
 *   MUT_SEM_NO_BUMP     release notifies without bumping SYNC_SEQ / ASYNC_SEQ
 *   MUT_SEM_TAKE_SPLIT  a take loads the slot and then stores its id (no CAS) */

/* ---- shared words ---- */
byte slot[N];            /* 0 or the holder's attachment id (attachment + 1) */
int WAITERS = 0;
byte SYNC_SEQ = 0;
byte ASYNC_SEQ = 0;

/* ---- the engine: FIFO list of sync waiters on SYNC_SEQ; async registrations on ASYNC_SEQ ---- */
byte sq[QMAX];           /* s + 1 */
byte sqlen = 0;
bool swoken[NS];
bool areg[NATT];         /* the pump of attachment a is registered on ASYNC_SEQ */
bool awoken[NATT];

/* ---- per attachment (thread-local in the code) ---- */
bool busy[NATT];         /* its thread runs synchronous code or is blocked in Atomics.wait */
byte live[NATT];         /* queued async waiters */
bool pumping[NATT];
bool counted[NATT];      /* the pump is counted in WAITERS */
bool waiting[NATT];      /* the pump awaits its waitAsync */
byte asyncHolds[NATT];   /* slots held by async tasks of the attachment (ghost, for the guard above) */

/* ---- per async task ---- */
bool queued[NA];
bool served[NA];
byte servedSlot[NA];

/* ---- ghosts ---- */
byte holders = 0;
bool ssleep[NS];         /* sync task s has a live registration */
bool spatient[NS];
bool apatient[NA];
byte done = 0;

hidden byte k, i, e;

/* Atomics.notify(SYNC_SEQ, n): wake up to n sync waiters, FIFO. */
inline snotify(n) {
  k = n;
  do
  :: k > 0 && sqlen > 0 ->
     e = sq[0];
     i = 0;
     do
     :: i + 1 < sqlen -> sq[i] = sq[i + 1]; i++
     :: else -> break
     od;
     sqlen--;
     sq[sqlen] = 0;
     swoken[e - 1] = true;
     ssleep[e - 1] = false;
     k--
  :: else -> break
  od;
  k = 0; i = 0; e = 0
}

/* Atomics.notify(ASYNC_SEQ): wake every registered pump. */
inline anotify() {
  i = 0;
  do
  :: i < NATT -> if :: areg[i] -> areg[i] = false; awoken[i] = true :: else fi; i++
  :: else -> break
  od;
  i = 0
}

/* A sync waiter whose wait timed out leaves the list (ECMA-262 DoWait). */
inline sderegister(s) {
  i = 0;
  do
  :: sq[i] == s + 1 -> break
  :: else -> i++
  od;
  do
  :: i + 1 < sqlen -> sq[i] = sq[i + 1]; i++
  :: else -> break
  od;
  sqlen--;
  sq[sqlen] = 0;
  ssleep[s] = false;
  i = 0
}

/* The scan of #take: one CAS per slot; got = the slot taken or N (t: a local of the caller). */
inline take(a, got, t) {
  got = 0;
  do
  :: got < N ->
#ifdef MUT_SEM_TAKE_SPLIT
     t = (slot[got] == FREE);   /* mutant: load, then store, instead of one CAS */
     if
     :: t == 1 -> d_step { slot[got] = a + 1; holders++; assert(holders <= N) }
     :: else
     fi;
#else
     d_step {   /* _raw_semaphore.ts #take / #scan L197 / L210: Atomics.compareExchange(SLOT + k, FREE, id) */
       if
       :: slot[got] == FREE -> slot[got] = a + 1; holders++; assert(holders <= N); t = 1
       :: else -> t = 0
       fi
     }
#endif
     if
     :: t == 1 -> t = 0; break
     :: else -> got++
     fi
  :: else -> break
  od
}

/* #serve: give slot `sl` to the lowest queued async task of attachment a (the code: the FIFO head). */
inline serve(a, sl) {
  i = 0;
  do
  :: i < NA -> if :: AATT(i) == a && queued[i] -> break :: else -> i++ fi
  :: else -> break
  od;
  assert(i < NA);
  queued[i] = false; served[i] = true; servedSlot[i] = sl; live[a]--;
  asyncHolds[a]++;
  i = 0
}

/* #leave, when the last queued waiter left while the pump waits. */
inline endPump(a, t) {
  if
  :: t -> d_step { anotify() }   /* #leave L316: Atomics.notify(this.view, ASYNC_SEQ) */
  :: else
  fi;
  t = 0
}

/* RawSemaphore.release(k) by a task of attachment a. */
inline release(a, sl, w, t) {
  d_step { !busy[a]; busy[a] = true }
#ifdef MUT_SEM_LOAD_FIRST
  w = WAITERS;
#endif
  if
  :: d_step {   /* _raw_semaphore.ts release L382: Atomics.load(view, WAITERS) (the handoff test) */
       counted[a] && live[a] > 0 && WAITERS == ASYNC_ONE ->
       serve(a, sl);
       t = (live[a] == 0 && waiting[a])
     }
     endPump(a, t)
  :: else ->
     d_step {   /* _raw_semaphore.ts release L388: Atomics.compareExchange(view, SLOT + k, this.id, FREE) */
       assert(slot[sl] == a + 1); slot[sl] = FREE; holders--
     }
#ifndef MUT_SEM_LOAD_FIRST
     w = WAITERS;   /* _raw_semaphore.ts release L390: Atomics.load(view, WAITERS) */
#endif
     if
     :: HAS_SYNC(w) ->
#ifndef MUT_SEM_NO_BUMP
        SYNC_SEQ++;                 /* #wake L415: Atomics.add(view, SYNC_SEQ, 1) */
#endif
        d_step { snotify(1) }       /* #wake L416: Atomics.notify(view, SYNC_SEQ, freed) */
     :: else
     fi;
     if
     :: HAS_ASYNC(w) ->
#ifndef MUT_SEM_NO_BUMP
        ASYNC_SEQ++;                /* #wake L419: Atomics.add(view, ASYNC_SEQ, 1) */
#endif
        d_step { anotify() }        /* #wake L420: Atomics.notify(view, ASYNC_SEQ) */
     :: else
     fi;
     w = 0
  fi;
  busy[a] = false
}

proctype Sync(byte s) {
  byte a = SATT(s), got, seen, t;
  int w;
  bool expired;
  if
  :: spatient[s] = true
  :: spatient[s] = false
  fi;
  d_step { !busy[a] && asyncHolds[a] == 0; busy[a] = true }
  take(a, got, t);
  if
  :: got < N -> goto cs
  :: else
  fi;
  WAITERS = WAITERS + SYNC_ONE;     /* #lockContendedSync L246: Atomics.add(view, WAITERS, SYNC_ONE) */
loop:
  seen = SYNC_SEQ;                  /* #lockContendedSync L249: Atomics.load(view, SYNC_SEQ) */
  take(a, got, t);
  if
  :: got < N -> goto leave
  :: else
  fi;
  if
  :: expired -> goto leave
  :: !expired && !spatient[s] -> expired = true; goto leave   /* left <= 0 */
  :: !expired -> skip
  fi;
  if
  :: d_step {   /* #lockContendedSync L254: Atomics.wait(view, SYNC_SEQ, seen, left) */
       SYNC_SEQ == seen -> assert(sqlen < QMAX); sq[sqlen] = s + 1; sqlen++; ssleep[s] = true;
       seen = 0
     }
     if
     :: swoken[s] -> swoken[s] = false
     :: d_step { !spatient[s] && ssleep[s] -> sderegister(s); expired = true }
     fi
  :: else -> seen = 0     /* not-equal */
  fi;
  goto loop;
leave:
  WAITERS = WAITERS - SYNC_ONE;     /* #lockContendedSync L257: Atomics.sub(view, WAITERS, SYNC_ONE) */
  if
  :: got < N -> goto cs
  :: else -> busy[a] = false; goto fin
  fi;
cs:
  busy[a] = false;
  release(a, got, w, t);
fin:
  atomic { done++; got = 0; seen = 0; spatient[s] = false }
}

proctype Async(byte j) {
  byte a = AATT(j), got, t;
  int w;
  if
  :: apatient[j] = true
  :: apatient[j] = false
  fi;
  d_step { !busy[a]; busy[a] = true }
  if
  :: live[a] == 0 -> take(a, got, t)   /* acquireAsync: a newcomer tries only when nobody is queued */
  :: else -> got = N
  fi;
  if
  :: got < N -> asyncHolds[a]++; busy[a] = false; goto cs
  :: else
  fi;
  /* queue, and start the pump if it is not running */
  atomic { queued[j] = true; live[a]++; pumping[a] = true; busy[a] = false }
  if
  :: d_step { served[j] && !busy[a] -> served[j] = false; got = servedSlot[j]; servedSlot[j] = 0 }
     goto cs
  :: d_step { !apatient[j] && queued[j] && !busy[a] ->   /* timer or abort: #leave */
       busy[a] = true; queued[j] = false; live[a]--;
       t = (live[a] == 0 && waiting[a])
     }
     endPump(a, t);
     busy[a] = false;
     goto fin
  fi;
cs:
  release(a, got, w, t);
  d_step { asyncHolds[a]-- }
fin:
  atomic { done++; got = 0; apatient[j] = false }
}

proctype Pump(byte a) {
  byte got, seen, t;
end:
  atomic { pumping[a] && !busy[a] -> busy[a] = true }
loop:
  if
  :: live[a] == 0 -> atomic { pumping[a] = false; busy[a] = false }; goto end
  :: else
  fi;
#ifndef MUT_SEM_COUNT_LATE
  d_step {   /* #pump L347: Atomics.add(view, WAITERS, ASYNC_ONE) */
    WAITERS = WAITERS + ASYNC_ONE; counted[a] = true
  }
#endif
  seen = ASYNC_SEQ;   /* #pump L349: Atomics.load(view, ASYNC_SEQ) */
  do
  :: live[a] > 0 ->
     take(a, got, t);
     if
     :: got < N -> d_step { serve(a, got) }
     :: else -> break
     fi
  :: else -> break
  od;
#ifdef MUT_SEM_COUNT_LATE
  skip;   /* (a jump target: "break" may not land inside a d_step) */
  d_step { WAITERS = WAITERS + ASYNC_ONE; counted[a] = true }
#endif
  if
  :: live[a] > 0 ->
     if
     :: d_step {   /* #pump L358: Atomics.waitAsync(view, ASYNC_SEQ, seen) */
          ASYNC_SEQ == seen -> areg[a] = true; waiting[a] = true; busy[a] = false; seen = 0
        }
        d_step { awoken[a] && !busy[a] -> awoken[a] = false; waiting[a] = false; busy[a] = true }
     :: else   /* not-equal: resolved at once */
     fi
  :: else
  fi;
  d_step {   /* #pump L366: Atomics.sub(view, WAITERS, ASYNC_ONE) */
    WAITERS = WAITERS - ASYNC_ONE; counted[a] = false; seen = 0; got = 0
  }
  goto loop
}

/* When every task has finished and nothing else can move: all counters at rest. */
proctype Quiescence() {
  done == NS + NA;
  timeout ->
  assert(holders == 0);
  i = 0;
  do
  :: i < N -> assert(slot[i] == FREE); i++
  :: else -> break
  od;
  assert(WAITERS == 0);
  assert(sqlen == 0);
  i = 0;
  do
  :: i < NATT -> assert(!areg[i] && live[i] == 0); i++
  :: else -> break
  od
}

init {
  atomic {
    byte n = 0;
    do
    :: n < NS -> run Sync(n); n++
    :: else -> break
    od;
    n = 0;
    do
    :: n < NA -> run Async(n); n++
    :: else -> break
    od;
    n = 0;
    do
    :: n < NATT -> run Pump(n); n++
    :: else -> break
    od;
    run Quiescence()
  }
}

/* No lost wake-up: a patient sync waiter registered on SYNC_SEQ is eventually
 * woken, and a patient queued async waiter is eventually served. Checked with
 * weak fairness (pan -a -f). */
#define SSLEEPS(s) (ssleep[s] && spatient[s])
#define AWAITS(j) (queued[j] && apatient[j])
#if NS == 2
ltl no_lost_wakeup {
  [] (SSLEEPS(0) -> <> !SSLEEPS(0)) && [] (SSLEEPS(1) -> <> !SSLEEPS(1)) &&
  [] (AWAITS(0) -> <> !AWAITS(0))
}
#else
ltl no_lost_wakeup {
  [] (SSLEEPS(0) -> <> !SSLEEPS(0)) &&
  [] (AWAITS(0) -> <> !AWAITS(0)) && [] (AWAITS(1) -> <> !AWAITS(1))
}
#endif
