/*
 * spin/lock.pml: the Atomics protocol of `Lock` (locks/_raw_lock.ts) and of
 * its async waits (locks/_wait.ts), for NP Workers doing ROUNDS acquisitions
 * each, sync (Atomics.wait) or async (Atomics.waitAsync), each acquisition
 * either patient (no timeout, no signal) or able to give up (timeout, abort).
 *
 * Convention: every step that touches a shared word is ONE Promela statement
 * or d_step and maps to ONE Atomics operation, named in the comment beside it
 * with its file, function and line. Ghost variables (holders, sleeping,
 * patient, busy, done) are updated inside those same steps and never add a
 * step of their own on shared memory.
 *
 * The engine (ECMA-262 WaiterList of the STATE word):
 *   - wait/waitAsync: in one atomic step, compare the word with the expected
 *     value and, only if equal, append the caller to the FIFO list q;
 *   - notify(n): in one atomic step, remove up to n entries from the head of q
 *     and wake them;
 *   - a sync wait that times out removes itself (ECMA-262 DoWait);
 *   - an async wait here has no engine timeout (_wait.ts: its timer or the
 *     abort signal ends it), so a given-up wait stays in q, "abandoned", until
 *     a notify reaches it; that notify then runs onAbandonedWake() on the
 *     waiter's event loop (process EventLoop), never while that loop is busy
 *     with synchronous protocol code (busy[p]) or blocked in Atomics.wait.
 *
 * Abstractions (see spin/README.md):
 *   - HOLDER (a plain store, for recovery/diagnostics) and forceRelease() are
 *     left out; so are the header words and Worker termination.
 *   - acquireSync/acquireAsync's first tryAcquire plus #spin (100 rounds of
 *     load + CAS) are collapsed into ONE tryAcquire CAS: a failing round
 *     writes nothing, so any run with k failing rounds then a success is the
 *     run where the single CAS is scheduled at that success, and a run where
 *     all fail equals one failing CAS followed by the same steps.
 *   - Timeouts are a nondeterministic "deadline passed" (only for an
 *     impatient acquisition); performance.now() is not modelled.
 */

#ifndef NP
#define NP 3
#endif
#ifndef ROUNDS
#define ROUNDS 1
#endif
#define QMAX 8

#define FREE 0
#define HELD 1

/* Mutation switches for spin/check.sh --mutants (never set in the real check):
 *   MUT_NOTIFY_ONE   #wake notifies 1 instead of ABANDONED + 1
 *   MUT_LATE_COUNT   a waiter adds itself to WAITERS after its CAS, not before
 *   MUT_LOAD_FIRST   release() reads WAITERS before its exchange frees STATE
 *   MUT_NO_PASS_ON   an aborted async wait does not pass a wake-up on */
#ifdef MUT_NOTIFY_ONE
#define WAKE_COUNT(ab) 1
#else
#define WAKE_COUNT(ab) (ab + 1)
#endif

/* ---- shared words (_raw_lock.ts L44-49) ---- */
byte STATE = FREE;
byte WAITERS = 0;
byte ABANDONED = 0;

/* ---- the engine's waiter list for STATE ---- */
byte q[QMAX];      /* p+1: live wait of Worker p; p+1+NP: abandoned wait of p */
byte qlen = 0;
bool woken[NP];    /* a notify removed p's live wait: p's wait returns "ok" */
byte cb[NP];       /* onAbandonedWake() calls queued on p's event loop */
bool busy[NP];     /* p's thread runs synchronous protocol code or sits in Atomics.wait */
bool incb[NP];     /* p's event loop is inside onAbandonedWake() */

/* ---- ghosts ---- */
byte holders = 0;  /* Workers between a successful CAS and their release's exchange */
bool sleeping[NP]; /* p has a live (not given-up) registration in q */
bool patient[NP];  /* p's current acquisition has no timeout and no signal */
byte done = 0;     /* Workers that finished all their rounds */

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
     k--
  :: else -> break
  od;
  k = 0; i = 0; e = 0
}

/* Atomics.wait/waitAsync(view, STATE, HELD): compare and register, atomically. */
inline register(p, reg) {
  if
  :: STATE == HELD ->
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

proctype Worker(byte p) {
  byte r = 0, ab, s, w;
  bool sync, ok, reg, expired, aborted, got;
#ifdef MUT_LATE_COUNT
  bool counted;
#endif

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
  expired = false;
  aborted = false;
  reg = false;

  /* acquireSync L102 / acquireAsync L109 -> tryAcquire, and #spin L136, collapsed */
  d_step { /* _raw_lock.ts RawLock.tryAcquire L93: Atomics.compareExchange(STATE, FREE, HELD) */
    !incb[p];
    busy[p] = true;
    if
    :: STATE == FREE -> STATE = HELD; holders++; ok = true
    :: else -> ok = false
    fi
  }
  if
  :: ok -> goto cs
  :: else
  fi;

#ifndef MUT_LATE_COUNT
  WAITERS++;        /* _raw_lock.ts #lockContendedSync L145 / #lockContendedAsync L162: Atomics.add(WAITERS, 1) */
#endif

loop:
  atomic {          /* _raw_lock.ts RawLock.tryAcquire L93 (from L148 / L165): Atomics.compareExchange */
    if
    :: STATE == FREE -> STATE = HELD; holders++; ok = true
    :: else -> ok = false
    fi
  }
  if
  :: ok -> goto leave
  :: else
  fi;
#ifdef MUT_LATE_COUNT
  if
  :: !counted -> WAITERS++; counted = true   /* mutant: counted after the CAS, not before */
  :: else
  fi;
#endif
  /* L149-150 / L166-167: left <= 0 ? */
  if
  :: expired -> goto leave
  :: !expired && !patient[p] -> expired = true; goto leave   /* deadline passed before waiting */
  :: !expired -> skip
  fi;

  if
  :: sync ->
     d_step {       /* _raw_lock.ts #lockContendedSync L151: Atomics.wait(STATE, HELD, left) */
       register(p, reg)
     }
     if
     :: reg ->
        if
        :: woken[p] -> woken[p] = false              /* "ok" */
        :: d_step {  /* L151: Atomics.wait times out and leaves the waiter list */
             !patient[p] && sleeping[p] -> deregister(p); expired = true
           }
        fi
     :: else         /* "not-equal" */
     fi;
     goto loop
  :: else ->
     d_step {       /* _wait.ts waitAsync L41: Atomics.waitAsync(STATE, HELD) (from _raw_lock.ts L169) */
       register(p, reg);
       if
       :: reg -> busy[p] = false   /* awaiting: p's event loop is free */
       :: else
       fi
     }
     if
     :: reg ->
        if
        :: d_step {  /* _wait.ts L68-76: the wait resolves "ok" (settled = true) */
             woken[p] && !incb[p] -> woken[p] = false; busy[p] = true
           }
        :: d_step {  /* _wait.ts giveUp L55-63: the timer or the abort runs first */
             !patient[p] && !incb[p] ->
             busy[p] = true;
             if
             :: sleeping[p] -> abandon(p); got = false
             :: else -> woken[p] = false; got = true   /* notified, but the "ok" task comes after */
             fi
           }
           WAITERS++;     /* _raw_lock.ts RawLock.onAbandon L182: Atomics.add(WAITERS, 1) */
           d_step {       /* _raw_lock.ts RawLock.onAbandon L183: Atomics.add(ABANDONED, 1) */
             ABANDONED++;
             if
             :: got -> cb[p]++; got = false   /* L68-71 then runs onAbandonedWake */
             :: else
             fi
           }
           if
           :: expired = true   /* resolve("timed-out"): loop, one last CAS, then left <= 0 */
           :: aborted = true   /* reject(signal.reason) */
           fi;
           if
#ifdef MUT_NO_PASS_ON
           :: aborted -> goto leave   /* mutant: an abort does not pass a swallowed wake-up on */
#endif
           :: aborted ->
              s = STATE;     /* _raw_lock.ts #lockContendedAsync L172: Atomics.load(STATE) */
              if
              :: s == FREE ->
                 ab = ABANDONED;             /* _raw_lock.ts #wake L130: Atomics.load(ABANDONED) */
                 d_step {                    /* _raw_lock.ts #wake L130: Atomics.notify(STATE, ABANDONED + 1) */
                   notify_n(WAKE_COUNT(ab));
                   ab = 0; s = 0
                 }
              :: else -> s = 0
              fi;
              goto leave
           :: else
           fi
        fi
     :: else         /* "not-equal": resolved at once */
     fi;
     goto loop
  fi;

leave:
#ifdef MUT_LATE_COUNT
  if
  :: counted -> WAITERS--; counted = false
  :: else
  fi;
#else
  WAITERS--;        /* _raw_lock.ts L154 / L177 (finally): Atomics.sub(WAITERS, 1) */
#endif
  if
  :: ok -> goto cs
  :: else ->
     atomic { busy[p] = false; r++; reg = false; expired = false; aborted = false; sync = false }
     goto round
  fi;

cs:
  atomic {
    ok = false; reg = false; expired = false; aborted = false; sync = false;
    busy[p] = false;   /* the caller's critical section may await */
    assert(holders == 1)
  }
  /* release L115; L117 HOLDER = 0 is a plain store, not modelled */
#ifdef MUT_LOAD_FIRST
  w = WAITERS;      /* mutant: WAITERS read before STATE is released */
#endif
  d_step {          /* _raw_lock.ts RawLock.release L118: Atomics.exchange(STATE, FREE) */
    !incb[p];
    busy[p] = true;
    assert(STATE == HELD);
    holders--;
    STATE = FREE
  }
#ifndef MUT_LOAD_FIRST
  w = WAITERS;      /* _raw_lock.ts RawLock.release L119: Atomics.load(WAITERS) */
#endif
  if
  :: w != 0 ->
     ab = ABANDONED; /* _raw_lock.ts #wake L130: Atomics.load(ABANDONED) */
     d_step {        /* _raw_lock.ts #wake L130: Atomics.notify(STATE, ABANDONED + 1) */
       notify_n(WAKE_COUNT(ab));
       ab = 0; w = 0; busy[p] = false
     }
  :: else -> w = 0; busy[p] = false
  fi;
  r++;
  goto round;

fin:
  atomic { done++; busy[p] = false; patient[p] = false }
}

/* Worker p's event loop running the queued onAbandonedWake() calls. */
proctype EventLoop(byte p) {
end:
  do
  :: d_step {       /* _raw_lock.ts RawLock.onAbandonedWake L187: Atomics.sub(ABANDONED, 1) */
       cb[p] > 0 && !busy[p] && !incb[p] ->
       cb[p]--;
       incb[p] = true;
       assert(ABANDONED > 0);
       ABANDONED--
     }
     d_step {       /* _raw_lock.ts RawLock.onAbandonedWake L188: Atomics.sub(WAITERS, 1) */
       assert(WAITERS > 0);
       WAITERS--;
       incb[p] = false
     }
  od
}

/* When every Worker has finished and nothing else can move: all counters at rest. */
proctype Quiescence() {
  done == NP;
  timeout ->
  assert(STATE == FREE && holders == 0);
  assert(WAITERS == 0 && ABANDONED == 0);
  assert(qlen == 0)
}

init {
  atomic {
    byte n = 0;
    do
    :: n < NP -> run Worker(n); run EventLoop(n); n++
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
