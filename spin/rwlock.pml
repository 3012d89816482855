/*
 * spin/rwlock.pml: the Atomics protocol of `ReaderWriterLock`
 * (locks/thread/_raw_rwlock.ts, layout 2) and its async waits (locks/thread/_wait.ts).
 * NW writer tasks and NR reader tasks, each on its own thread, do ROUNDS
 * acquisitions each, either patient (no timeout, no signal) or able to give
 * up (timeout, abort). Sync and async waits share one path: with notify-all
 * and no accounting, a sync wait that times out (deregistered) and an async
 * wait whose timer fires (left registered, swallowing nothing) have the same
 * effect on shared words; abort, async only, is one more way out.
 * A writer may downgrade its hold to a read hold before releasing.
 *
 * Convention: every step that touches a shared word is ONE Promela statement
 * or d_step and maps to ONE Atomics operation, named in the comment beside it
 * with its file, function and line. Ghosts (nr, nw, gq, tstat, sleeping,
 * patient, done) change only inside those steps.
 *
 * The engine: wait/waitAsync compare the word with the expected value and
 * register only if equal, in one atomic step; every notify of this protocol
 * is Atomics.notify(view, index) = wake ALL registered waiters of the word,
 * so the FIFO order of the waiter list cannot matter and is not modelled: a
 * registration is a flag per task and word. A sync wait that times out
 * deregisters. An async wait given up (timer, abort) stays registered in the
 * engine until a notify-all reaches it; with notify-all and NO_ACCOUNTING
 * (_raw_rwlock.ts L113) such a wait can swallow nothing and changes no
 * shared word, so it is dropped from the model when given up.
 *
 * Abstractions (see spin/README.md):
 *   - MAX_READERS is MAXR (default 2, not 65535) so that the "readers were
 *     at MAX_READERS" branch of #afterUnread is reachable with 3 tasks; the
 *     bit layout (READERS_MASK, WRITER, QUEUED_ONE, TICKET_TAG) is the code's.
 *   - Ticket t's ring slot is ring[t] (no wrap-around: at most NW*ROUNDS
 *     tickets, far below RING_LIMIT), holding LIVE = live(t), CANC = t
 *     (cancelled) or EMPTY = empty(slot). #ringHasRoom (two loads, always
 *     true here) and the plain stores OWNERS[], READS[] are left out, and so
 *     are forceRelease() and Worker termination.
 *   - tryRead/tryWrite before the contended path plus #spinRead/#spinWrite
 *     (100 rounds of load + try) are collapsed into one try: a failing round
 *     writes nothing (tryRead's inner CAS-retry loop is kept as it is).
 *   - Timeouts are a nondeterministic "deadline passed" (impatient only).
 */

#ifndef NW
#define NW 2
#endif
#ifndef NR
#define NR 1
#endif
#define NP (NW + NR)
#ifndef ROUNDS
#define ROUNDS 1
#endif
#ifndef MAXR
#define MAXR 2
#endif
#define NTICKETS (NW * ROUNDS + 1)

/* _raw_rwlock.ts L146-175 */
#define READERS_MASK 65535
#define WRITER 65536
#define QUEUED_ONE 131072
#define QUEUED_MASK (16383 * QUEUED_ONE)
#define TICKET_TAG 32768
#define READERS(s) (s & READERS_MASK)
#define WLOCKED(s) ((s & WRITER) != 0)
#define QUEUED(s) ((s & QUEUED_MASK) != 0)
#ifndef MUT_READ_IGNORES_QUEUE
#define READABLE(s) ((s & ~READERS_MASK) == 0 && s != MAXR)
#else
#define READABLE(s) ((s & WRITER) == 0 && READERS(s) != MAXR)   /* mutant: no writer preference */
#endif
#define WLOCKABLE(s) ((s & (READERS_MASK | WRITER)) == 0)

#define EMPTY 0
#define LIVE 1
#define CANC 2

/* Mutation switches for spin/check.sh --mutants (never set in the real check):
 *   MUT_READ_IGNORES_QUEUE  isReadLockable lets readers in past queued writers
 *   MUT_NO_WSEQ_BUMP        #writerEvent notifies without bumping WSEQ
 *   MUT_CANCEL_NO_WAKE      cancel() of the last queued writer wakes no reader */

/* ---- shared words ---- */
int STATE = 0;
byte SERVING = 0;
byte NEXT_TICKET = 0;
byte WSEQ = 0;
byte R_SLEEPERS = 0;
byte W_SLEEPERS = 0;
byte ring[NTICKETS];

/* ---- the engine's waiter lists (notify-all only: a set per word) ---- */
bool reg[2 * NP];  /* live registration: reg[base + p] on STATE, reg[NP + p] on WSEQ */
bool woken[NP];

/* ---- ghosts ---- */
byte nr = 0;       /* read holds */
byte nw = 0;       /* write holds */
byte gq = 0;       /* writers queued: from enqueue's add until their take or cancel */
byte tstat[NTICKETS];   /* 0 none, 1 queued, 2 took the lock, 3 cancelled */
bool patient[NP];
byte done = 0;

hidden byte i;

inline notify_all_state() {
  i = 0;
  do
  :: i < NP -> if :: reg[i] -> reg[i] = false; woken[i] = true :: else fi; i++
  :: else -> break
  od;
  i = 0
}
inline notify_all_wseq() {
  i = 0;
  do
  :: i < NP -> if :: reg[NP + i] -> reg[NP + i] = false; woken[i] = true :: else fi; i++
  :: else -> break
  od;
  i = 0
}

/* #readerEvent L317-314 */
inline reader_event() {
  x = R_SLEEPERS;              /* _raw_rwlock.ts #readerEvent L318: Atomics.load(R_SLEEPERS) */
  if
  :: x != 0 ->
     d_step { notify_all_state(); x = 0 }  /* _raw_rwlock.ts #readerEvent L318: Atomics.notify(STATE) */
  :: else
  fi
}

/* #writerEvent L366-364 */
inline writer_event() {
#ifndef MUT_NO_WSEQ_BUMP
  WSEQ++;                      /* _raw_rwlock.ts #writerEvent L367: Atomics.add(WSEQ, 1) */
#endif
  x = W_SLEEPERS;              /* _raw_rwlock.ts #writerEvent L368: Atomics.load(W_SLEEPERS) */
  if
  :: x != 0 ->
     d_step { notify_all_wseq(); x = 0 }   /* _raw_rwlock.ts #writerEvent L368: Atomics.notify(WSEQ) */
  :: else
  fi
}

/* #passHead L411-413 */
inline pass_head(t) {
  nx = t + 1;
  do
  :: SERVING = nx;             /* _raw_rwlock.ts #passHead L414: Atomics.store(SERVING, next) */
     atomic {                  /* _raw_rwlock.ts #passHead L416: Atomics.compareExchange(RING[next], next, empty) */
       if
       :: ring[nx] == CANC -> ring[nx] = EMPTY; nx++
       :: else -> nx = 0; break
       fi
     }
  od
}

/* cancel L421-430 */
inline cancel(t) {
  atomic {                     /* _raw_rwlock.ts cancel L425: Atomics.compareExchange(RING[t], live(t), t) */
    if
    :: ring[t] == LIVE -> ring[t] = CANC; won = true
    :: else -> won = false
    fi
  }
  if
  :: won ->
     d_step {                  /* _raw_rwlock.ts cancel L426: Atomics.sub(STATE, QUEUED_ONE) */
       prev = STATE; STATE = STATE - QUEUED_ONE; gq--; tstat[t] = 3
     }
     x = SERVING;              /* _raw_rwlock.ts cancel L428: Atomics.load(SERVING) */
     if
     :: x == t ->
        x = 0;
        atomic {               /* _raw_rwlock.ts cancel L429: Atomics.compareExchange(RING[t], t, empty) */
          if
          :: ring[t] == CANC -> ring[t] = EMPTY; won = true
          :: else -> won = false
          fi
        }
        if
        :: won -> pass_head(t); writer_event()
        :: else
        fi
     :: else -> x = 0
     fi;
#ifndef MUT_CANCEL_NO_WAKE
     if                        /* L434 */
     :: (prev & QUEUED_MASK) == QUEUED_ONE && !WLOCKED(prev) -> reader_event()
     :: else
     fi;
#endif
     prev = 0; won = false
  :: else
  fi
}

/* The wait of task p on a word: sync or async, patient or not. Sets expired
 * when it timed out, aborted when it was aborted. */
inline wait_on(base, word, val) {
  d_step {                     /* Atomics.wait(word, val, left) / _wait.ts L41 Atomics.waitAsync(word, val) */
    if :: word == val -> reg[base + p] = true :: else fi
  }
  if
  :: reg[base + p] || woken[p] ->
     if
     :: woken[p] -> woken[p] = false                           /* "ok" */
     :: d_step {               /* sync: timed out, deregistered; async: _wait.ts giveUp L55-63 */
          !patient[p] -> reg[base + p] = false; woken[p] = false
        }
        if
        :: expired = true      /* "timed-out" */
        :: aborted = true      /* async only: reject(signal.reason) */
        fi
     fi
  :: else                      /* "not-equal" */
  fi
}

proctype Writer(byte p) {
  byte r = 0, t, seq, x, nx;
  int s, prev;
  bool ok, won, expired, aborted;

round:
  if
  :: r == ROUNDS -> goto fin
  :: else
  fi;
  if :: patient[p] = true :: patient[p] = false fi;

  /* writeSync L335 / writeAsync L341 -> tryWrite, and #spinWrite L373, collapsed */
  d_step {                     /* _raw_rwlock.ts tryWrite L327: Atomics.compareExchange(STATE, 0, WRITER | id) */
    if
    :: STATE == 0 -> STATE = WRITER | (p + 1); nw++; ok = true;
       assert(gq == 0 && nr == 0 && nw == 1)    /* FIFO: no queued writer is jumped */
    :: else -> ok = false
    fi
  }
  if
  :: ok -> goto cs
  :: else
  fi;

  /* #enqueue L379-381 (#ringHasRoom L390: always room here) */
  d_step { STATE = STATE + QUEUED_ONE; gq++ }   /* _raw_rwlock.ts #enqueue L381: Atomics.add(STATE, QUEUED_ONE) */
  d_step { t = NEXT_TICKET; NEXT_TICKET++; tstat[t] = 1 }   /* _raw_rwlock.ts #enqueue L382: Atomics.add(NEXT_TICKET, 1) */
  ring[t] = LIVE;              /* _raw_rwlock.ts #enqueue L384: Atomics.store(RING[t], live(t)) */
  W_SLEEPERS++;                /* _raw_rwlock.ts L446 / L472: Atomics.add(W_SLEEPERS, 1) */

loop:
  seq = WSEQ;                  /* _raw_rwlock.ts L449 / L475: Atomics.load(WSEQ) */
  /* #tryTakeAsHead L395-403 */
  x = SERVING;                 /* _raw_rwlock.ts #tryTakeAsHead L397: Atomics.load(SERVING) */
  if
  :: x == t ->
     x = 0;
take:
     s = STATE;                /* _raw_rwlock.ts #tryTakeAsHead L399: Atomics.load(STATE) */
     if
     :: WLOCKABLE(s) ->
        d_step {               /* _raw_rwlock.ts #tryTakeAsHead L402: Atomics.compareExchange(STATE, s, s - QUEUED_ONE + WRITER + tag) */
          if
          :: STATE == s ->
             STATE = s - QUEUED_ONE + WRITER + (TICKET_TAG | t);
             nw++; gq--; tstat[t] = 2; ok = true;
             assert(nr == 0 && nw == 1);
             i = 0;            /* FIFO among writers: every earlier ticket was served or withdrawn */
             do
             :: i < t -> assert(tstat[i] == 2 || tstat[i] == 3); i++
             :: else -> break
             od;
             i = 0
          :: else -> ok = false
          fi
        }
        if
        :: ok -> s = 0; pass_head(t); goto wleave
        :: else -> goto take
        fi
     :: else -> s = 0
     fi
  :: else -> x = 0
  fi;
  /* L451-450 / L477-476: left <= 0 -> cancel */
  if
  :: expired -> cancel(t); goto wleave
  :: !expired && !patient[p] -> expired = true; cancel(t); goto wleave
  :: !expired -> skip
  fi;
  /* _raw_rwlock.ts L456: Atomics.wait(WSEQ, seq, left) / L483: waitAsync(WSEQ, seq) */
  wait_on(NP, WSEQ, seq);
  seq = 0;
  if
  :: aborted -> cancel(t); goto wleave      /* L484-481 */
  :: else -> goto loop
  fi;

wleave:
  W_SLEEPERS--;                /* _raw_rwlock.ts L459 / L490 (finally): Atomics.sub(W_SLEEPERS, 1) */
  t = 0;
  if
  :: ok -> goto cs
  :: else -> atomic { r++; expired = false; aborted = false }; goto round
  fi;

cs:
  atomic { ok = false; expired = false; aborted = false; assert(nw == 1 && nr == 0) }
  if
  :: d_step {                  /* _raw_rwlock.ts releaseWrite L347: Atomics.sub(STATE, WRITER + tag) */
       prev = STATE; STATE = STATE - WRITER - (STATE & READERS_MASK); nw--
     }
     if                        /* #afterUnwrite L352-348 */
     :: QUEUED(prev) -> prev = 0; writer_event()
     :: else -> prev = 0; reader_event()
     fi
  :: d_step {                  /* _raw_rwlock.ts downgrade L360: Atomics.add(STATE, 1 - WRITER - tag) */
       prev = STATE; STATE = STATE + 1 - WRITER - (STATE & READERS_MASK); nw--; nr++;
       assert(nw == 0)
     }
     if                        /* L363 */
     :: !QUEUED(prev) -> prev = 0; reader_event()
     :: else -> prev = 0
     fi;
     d_step {                  /* _raw_rwlock.ts releaseRead L259: Atomics.sub(STATE, 1) */
       prev = STATE; STATE = STATE - 1; nr--
     }
     if                        /* #afterUnread L264-260 */
     :: READERS(prev) == 1 && QUEUED(prev) -> prev = 0; writer_event()
     :: READERS(prev) == MAXR && !(READERS(prev) == 1 && QUEUED(prev)) -> prev = 0; reader_event()
     :: else -> prev = 0
     fi
  fi;
  r++;
  goto round;

fin:
  atomic { done++; patient[p] = false }
}

proctype Reader(byte p) {
  byte r = 0, x;
  int s, prev;
  bool ok, expired, aborted, tried;

round:
  if
  :: r == ROUNDS -> goto fin
  :: else
  fi;
  if :: patient[p] = true :: patient[p] = false fi;
  tried = false;

  /* readSync L243 / readAsync L249 -> tryRead, and #spinRead L270, collapsed; then
   * from L284 / L305 inside the contended loop */
tryread:
  s = STATE;                   /* _raw_rwlock.ts tryRead L230: Atomics.load(STATE) */
  if
  :: READABLE(s) ->
     d_step {                  /* _raw_rwlock.ts tryRead L234: Atomics.compareExchange(STATE, s, s + 1) */
       if
       :: STATE == s -> STATE = s + 1; nr++; ok = true;
          assert(nw == 0 && gq == 0 && nr <= MAXR)   /* writer preference */
       :: else -> ok = false
       fi;
       s = 0
     }
     if
     :: ok && !tried -> goto cs
     :: ok && tried -> goto rleave
     :: else -> goto tryread
     fi
  :: else -> s = 0
  fi;
  if
  :: tried -> goto rloop       /* tryRead returned false: `continue` (L285 / L306) */
  :: else -> tried = true
  fi;

  R_SLEEPERS++;                /* _raw_rwlock.ts L279 / L300: Atomics.add(R_SLEEPERS, 1) */
rloop:
  s = STATE;                   /* _raw_rwlock.ts L282 / L303: Atomics.load(STATE) */
  if
  :: READABLE(s) -> s = 0; goto tryread
  :: else
  fi;
  /* L287-283 / L308-304: left <= 0 */
  if
  :: expired -> s = 0; goto rleave
  :: !expired && !patient[p] -> s = 0; expired = true; goto rleave
  :: !expired -> skip
  fi;
  /* _raw_rwlock.ts L289: Atomics.wait(STATE, s, left) / L310: waitAsync(STATE, s) */
  wait_on(0, STATE, s);
  s = 0;
  if
  :: aborted -> goto rleave    /* the rejection leaves through finally */
  :: else -> goto rloop
  fi;

rleave:
  R_SLEEPERS--;                /* _raw_rwlock.ts L292 / L313 (finally): Atomics.sub(R_SLEEPERS, 1) */
  if
  :: ok -> goto cs
  :: else -> atomic { r++; expired = false; aborted = false; tried = false }; goto round
  fi;

cs:
  atomic { ok = false; expired = false; aborted = false; tried = false; assert(nw == 0 && nr >= 1) }
  d_step {                     /* _raw_rwlock.ts releaseRead L259: Atomics.sub(STATE, 1) */
    prev = STATE; STATE = STATE - 1; nr--
  }
  if                           /* #afterUnread L264-260 */
  :: READERS(prev) == 1 && QUEUED(prev) -> prev = 0; writer_event()
  :: READERS(prev) == MAXR && !(READERS(prev) == 1 && QUEUED(prev)) -> prev = 0; reader_event()
  :: else -> prev = 0
  fi;
  r++;
  goto round;

fin:
  atomic { done++; patient[p] = false }
}

/* When every task has finished and nothing else can move: all counters at rest. */
proctype Quiescence() {
  done == NP;
  timeout ->
  assert(STATE == 0 && nr == 0 && nw == 0 && gq == 0);
  assert(R_SLEEPERS == 0 && W_SLEEPERS == 0);
  assert(SERVING == NEXT_TICKET)
}

init {
  atomic {
    byte n = 0;
    do
    :: n < NW -> run Writer(n); n++
    :: n >= NW && n < NP -> run Reader(n); n++
    :: else -> break
    od;
    run Quiescence()
  }
}

/* No lost wake-up: a patient waiter registered on STATE or WSEQ is eventually
 * woken (pan -a -f: weak fairness). */
#define SLEEPS(p) ((reg[p] || reg[NP + p]) && patient[p])
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
