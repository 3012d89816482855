/*
 * spin/rwlock.pml: the Atomics protocol of `ReaderWriterLock`
 * (locks/thread/_raw_rwlock.ts, layout 3) with its queues of async waiters
 * per attachment and their watchers. NW writer tasks and NR reader tasks do
 * ROUNDS acquisitions each, either patient (no timeout, no signal) or able to
 * give up (timeout; abort for async waits). A task alone on its thread may
 * wait sync (Atomics.wait, its own registration) or async (queued, served by
 * its attachment's watcher); with SHAREW=1 writers 0 and 1 share a thread
 * (one attachment, one writer queue: the direct handoff of releaseWrite is
 * reachable), with SHARER=1 the readers do (one reader queue: admission of
 * several queued readers in one CAS). Tasks on a shared thread wait async
 * only: the public class refuses the sync waits that could only end by the
 * thread's own async holders or queued writers, and a thread's sync calls act
 * for one holder (its reentrancy never reaches shared memory).
 * A writer may downgrade its hold to a read hold before releasing.
 * Read bias: each thread (attachment) has a slot (slot[th]); a reader's
 * try takes a biased hold in it when it sees BIASED, a writer revokes the
 * bias in the CAS that takes or queues and then scans every slot, and any
 * read through STATE may turn the bias back on (the code does so after
 * REBIAS_AFTER such reads: here a free choice, so every interleaving of
 * re-bias and revocation is explored). The ghost nr counts biased holds too,
 * so the writer's "nr == 0" assertions check the scans.
 *
 * Convention: every step that touches a shared word is ONE Promela statement
 * or d_step and maps to ONE Atomics operation, named in the comment beside it
 * with its file, function and line. Ghosts (nr, nw, gq, tstat, sleeping,
 * queued, served, patient, done) change only inside those steps or in steps
 * on an attachment's own queues (plain JavaScript on one thread).
 *
 * The engine: wait/waitAsync compare the word with the expected value and
 * register only if equal, in one atomic step; every notify of this protocol
 * is Atomics.notify(view, index) = wake ALL registered waiters of the word,
 * so the FIFO order of the waiter list cannot matter and is not modelled: a
 * registration is a flag per waiter (sync task or watcher) and word. A sync
 * wait that times out deregisters. A watcher's waitAsync is never given up;
 * its continuation runs when its thread is not busy.
 *
 * Abstractions (see spin/README.md):
 *   - MAX_READERS is MAXR (default 2, not 65535) so that the "readers were
 *     at MAX_READERS" branch of #afterUnread is reachable with 3 tasks; the
 *     bit layout (READERS_MASK, WRITER, QUEUED_ONE, TICKET_TAG) is the code's.
 *   - Ticket t's ring slot is ring[t] (no wrap-around: at most NW*ROUNDS
 *     tickets, far below RING_LIMIT), holding LIVE = live(t), CANC = t
 *     (cancelled) or EMPTY = empty(slot). #ringHasRoom (always true here, so
 *     every queued async writer has its ticket and #topUp does nothing) and
 *     the plain stores OWNERS[], READS[] are left out, and so are
 *     forceRelease() and Worker termination.
 *   - tryRead/tryWrite before the contended path plus #spinRead/#spinWrite
 *     (100 rounds of load + try) are collapsed into one try: a failing round
 *     writes nothing (tryRead's inner CAS-retry loop is kept as it is).
 *   - Timeouts are a nondeterministic "deadline passed" (impatient only).
 *   - #enqueue's load-and-CAS loop on STATE is one atomic step (a CAS that
 *     fails writes nothing); #slotsEmpty loads every thread's slot, one step
 *     each (the code loads those of the attachments made so far: the others
 *     were made after the revocation and see it); the slow read's re-bias
 *     (#slowReads >= REBIAS_AFTER) is a free choice at every read through STATE.
 *   - tryRead's first load of STATE is a plain read in the code: a hint that
 *     the load after the slot store or the CAS checks (modelled as a load).
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
#ifndef SHAREW
#define SHAREW 0
#endif
#ifndef SHARER
#define SHARER 0
#endif
#define NTICKETS (NW * ROUNDS + 1)
#define NT NP
#define TH(p) ((SHAREW && p == 1) -> 0 : ((SHARER && p == NW + 1) -> NW : p))
#define ASYNC_ONLY(p) ((SHAREW && p <= 1) || (SHARER && p >= NW))

/* _raw_rwlock.ts L196-220 */
#define READERS_MASK 65535
#define WRITER 65536
#define QUEUED_ONE 131072
#define QUEUED_MASK (4095 * QUEUED_ONE)
#define SCAN 536870912
#define BIASED 1073741824
#define TICKET_TAG 32768
#define READERS(s) (s & READERS_MASK)
#define WLOCKED(s) ((s & WRITER) != 0)
#define QUEUED(s) ((s & QUEUED_MASK) != 0)
#ifndef MUT_READ_IGNORES_QUEUE
#define READABLE(s) ((s & (WRITER | QUEUED_MASK)) == 0 && READERS(s) != MAXR)
#else
#define READABLE(s) ((s & WRITER) == 0 && READERS(s) != MAXR)   /* mutant: no writer preference */
#endif
#define WLOCKABLE(s) ((s & (READERS_MASK | WRITER)) == 0)
#define ISBIASED(s) ((s & BIASED) != 0)
#define MUSTSCAN(s) ((s & SCAN) != 0)
#define FREE_BUT_BIASED(s) (s != 0 && (s & ~(BIASED | SCAN)) == 0)

#define EMPTY 0
#define LIVE 1
#define CANC 2

/* Mutation switches for spin/check.sh --mutants (never set in the real check):
 *   MUT_READ_IGNORES_QUEUE  isReadLockable lets readers in past queued writers
 *   MUT_NO_WSEQ_BUMP        #writerEvent notifies without bumping WSEQ
 *   MUT_CANCEL_NO_WAKE      cancel() of the last queued writer wakes no reader
 *   MUT_HANDOFF_ANY_HEAD    releaseWrite hands off to its queue's head without
 *                           checking that its ticket is at SERVING
 *   MUT_NO_END_WATCH        a writer queue that runs empty does not wake its watcher
 *   MUT_BIAS_NO_RECHECK     a biased reader holds without loading STATE after its slot store
 *   MUT_NO_SLOT_WAKE        a biased read leaving its slot empty does not bump WSEQ
 *   MUT_QUEUE_KEEPS_BIAS    queueing a writer does not revoke the bias */

/* ---- shared words ---- */
int STATE = 0;
byte SERVING = 0;
byte NEXT_TICKET = 0;
byte WSEQ = 0;
byte R_SLEEPERS = 0;
byte W_SLEEPERS = 0;
byte ring[NTICKETS];
byte slot[NT];     /* SLOT[id] of each thread's attachment: its biased read holds */
byte bcount[NT];   /* the attachment's #biased (plain JavaScript): slot[th] but mid-try */

/* ---- the engine's waiter lists (notify-all only: a set per word) ---- */
bool regS[NP];     /* sync wait of task p on STATE (reader) */
bool regW[NP];     /* sync wait of task p on WSEQ (writer) */
bool woken[NP];
bool rwReg[NT];    /* reader watcher of thread th registered on STATE */
bool wwReg[NT];    /* writer watcher of thread th registered on WSEQ */
bool rwWoken[NT];
bool wwWoken[NT];
bool busy[NT];     /* thread runs synchronous code or sits in Atomics.wait */

/* ---- each attachment's queues (plain JavaScript) ---- */
byte lr[NT * NP];  /* reader queue: task ids */
byte lrlen[NT];
byte lw[NT * NP];  /* writer queue: task ids */
byte lwt[NT * NP]; /* ... and their tickets */
byte lwlen[NT];
bool rwatch[NT];   /* reader watcher runs */
bool wwatch[NT];   /* writer watcher runs */
bool rgo[NT];      /* reader watcher started, holding its thread's turn */
bool wgo[NT];      /* writer watcher started, holding its thread's turn */
int wtag[NT];      /* the attachment's #writeTag */

/* ---- ghosts ---- */
byte nr = 0;       /* read holds */
byte nw = 0;       /* write holds */
byte gq = 0;       /* writers queued: from enqueue's add until their take or cancel */
byte tstat[NTICKETS];   /* 0 none, 1 queued, 2 took the lock, 3 cancelled */
bool queued[NP];   /* p waits in its attachment's queue */
bool served[NP];   /* p was served; its continuation has not run yet */
bool patient[NP];
byte done = 0;

hidden byte i, j, n;

inline notify_all_state() {
  i = 0;
  do
  :: i < NP -> if :: regS[i] -> regS[i] = false; woken[i] = true :: else fi; i++
  :: else -> break
  od;
  i = 0;
  do
  :: i < NT -> if :: rwReg[i] -> rwReg[i] = false; rwWoken[i] = true :: else fi; i++
  :: else -> break
  od;
  i = 0
}
inline notify_all_wseq() {
  i = 0;
  do
  :: i < NP -> if :: regW[i] -> regW[i] = false; woken[i] = true :: else fi; i++
  :: else -> break
  od;
  i = 0;
  do
  :: i < NT -> if :: wwReg[i] -> wwReg[i] = false; wwWoken[i] = true :: else fi; i++
  :: else -> break
  od;
  i = 0
}

/* #readerEvent L540-542 */
inline reader_event() {
  x = R_SLEEPERS;              /* _raw_rwlock.ts #readerEvent L541: Atomics.load(R_SLEEPERS) */
  if
  :: x != 0 ->
     d_step { notify_all_state(); x = 0 }  /* _raw_rwlock.ts #readerEvent L541: Atomics.notify(STATE) */
  :: else
  fi
}

/* #writerEvent L657-660 */
inline writer_event() {
#ifndef MUT_NO_WSEQ_BUMP
  WSEQ++;                      /* _raw_rwlock.ts #writerEvent L658: Atomics.add(WSEQ, 1) */
#endif
  x = W_SLEEPERS;              /* _raw_rwlock.ts #writerEvent L659: Atomics.load(W_SLEEPERS) */
  if
  :: x != 0 ->
     d_step { notify_all_wseq(); x = 0 }   /* _raw_rwlock.ts #writerEvent L659: Atomics.notify(WSEQ) */
  :: else
  fi
}

/* #passHead L718-725 */
inline pass_head(t) {
  nx = t + 1;
  do
  :: SERVING = nx;             /* _raw_rwlock.ts #passHead L721: Atomics.store(SERVING, next) */
     atomic {                  /* _raw_rwlock.ts #passHead L723: Atomics.compareExchange(RING[next], next, empty) */
       if
       :: ring[nx] == CANC -> ring[nx] = EMPTY; nx++
       :: else -> nx = 0; break
       fi
     }
  od
}

/* cancel L728-742 */
inline cancel(t) {
  atomic {                     /* _raw_rwlock.ts cancel L732: Atomics.compareExchange(RING[t], live(t), t) */
    if
    :: ring[t] == LIVE -> ring[t] = CANC; won = true
    :: else -> won = false
    fi
  }
  if
  :: won ->
     d_step {                  /* _raw_rwlock.ts cancel L733: Atomics.sub(STATE, QUEUED_ONE) */
       prev = STATE; STATE = STATE - QUEUED_ONE; gq--; tstat[t] = 3
     }
     x = SERVING;              /* _raw_rwlock.ts cancel L735: Atomics.load(SERVING) */
     if
     :: x == t ->
        x = 0;
        atomic {               /* _raw_rwlock.ts cancel L736: Atomics.compareExchange(RING[t], t, empty) */
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
     if                        /* L741 */
     :: (prev & QUEUED_MASK) == QUEUED_ONE && !WLOCKED(prev) -> reader_event()
     :: else
     fi;
#endif
     prev = 0; won = false
  :: else
  fi
}

/* #afterSlotEmptied: a slot went to 0: wake a head that waits for the slots (SCAN). */
inline after_slot_emptied() {
#ifndef MUT_NO_SLOT_WAKE
  prev = STATE;                /* _raw_rwlock.ts #afterSlotEmptied L407: Atomics.load(STATE) */
  if
  :: MUSTSCAN(prev) -> prev = 0; writer_event()
  :: else -> prev = 0
  fi
#else
  skip
#endif
}

/* #slotsEmpty: one load per slot; ok tells whether all were 0. */
inline slots_empty() {
  j = 0; ok = true;
  do
  :: j < NT ->
     if
     :: slot[j] != 0 -> ok = false; break   /* _raw_rwlock.ts #slotsEmpty L417: Atomics.load(slotOf(id)) */
     :: else -> j++
     fi
  :: else -> break
  od;
  j = 0
}

/* #enqueue: one more queued writer (revoking the bias), its ticket, the ticket's live mark */
inline enqueue(t) {
  d_step {                     /* _raw_rwlock.ts #enqueue L678: Atomics.compareExchange(STATE, s, next) (its load-CAS loop, as one step) */
#ifndef MUT_QUEUE_KEEPS_BIAS
    if
    :: ISBIASED(STATE) -> STATE = STATE + QUEUED_ONE - BIASED + SCAN
    :: else -> STATE = STATE + QUEUED_ONE
    fi;
#else
    STATE = STATE + QUEUED_ONE;
#endif
    gq++
  }
  d_step { t = NEXT_TICKET; NEXT_TICKET++; tstat[t] = 1 }   /* _raw_rwlock.ts #enqueue L680: Atomics.add(NEXT_TICKET, 1) */
  ring[t] = LIVE               /* _raw_rwlock.ts #enqueue L682: Atomics.store(RING[t], live(t)) */
}

/* FIFO among writers: every ticket before t was served or withdrawn. */
inline assert_fifo(t) {
  j = 0;
  do
  :: j < t -> assert(tstat[j] == 2 || tstat[j] == 3); j++
  :: else -> break
  od;
  j = 0
}

/* #tryTakeAsHead L693-715 for ticket t of thread th; ok tells whether it took the lock. */
inline take_as_head(th, t) {
  ok = false;
  x = SERVING;                 /* _raw_rwlock.ts #tryTakeAsHead L695: Atomics.load(SERVING) */
  if
  :: x == t ->
     x = 0;
     scanned = false;
     do
     :: s = STATE;             /* _raw_rwlock.ts #tryTakeAsHead L698: Atomics.load(STATE) */
        if
        :: WLOCKABLE(s) && MUSTSCAN(s) && !scanned ->
           slots_empty();
           if
           :: ok -> ok = false; scanned = true
           :: else -> ok = false; s = 0; break
           fi
        :: else
        fi;
        if
        :: WLOCKABLE(s) ->
           d_step {            /* _raw_rwlock.ts #tryTakeAsHead L709: Atomics.compareExchange(STATE, s, next) */
             if
             :: STATE == s ->
                STATE = s - QUEUED_ONE + WRITER + (TICKET_TAG | t) - (s & SCAN);
                wtag[th] = TICKET_TAG | t;
                nw++; gq--; tstat[t] = 2; ok = true;
                assert(nr == 0 && nw == 1);
                assert_fifo(t)
             :: else
             fi
           }
           if
           :: ok -> s = 0; pass_head(t); break
           :: else
           fi
        :: else -> s = 0; break
        fi
     od
  :: else -> x = 0
  fi
}

/* WaitQueue.serve() of th's writer queue: its head is resolved with the write hold. */
inline serve_writer(th) {
  e = lw[th * NP];
  j = 0;
  do
  :: j + 1 < lwlen[th] -> lw[th * NP + j] = lw[th * NP + j + 1]; lwt[th * NP + j] = lwt[th * NP + j + 1]; j++
  :: else -> break
  od;
  lwlen[th]--;
  lw[th * NP + lwlen[th]] = 0; lwt[th * NP + lwlen[th]] = 0;
  queued[e] = false; served[e] = true;
  j = 0; e = 0
}

/* #serveWriters L794-800: take the lock for the head of th's writer queue if its ticket may. */
inline serve_writers(th) {
  take_as_head(th, lwt[th * NP]);
  if
  :: ok -> atomic { serve_writer(th); ok = false; won = true }
  :: else -> won = false
  fi
}

/* #admitReaders L497-512: let in every queued reader of th the lock has room for, in one CAS. */
inline admit_readers(th) {
  do
  :: s = STATE;                /* _raw_rwlock.ts #admitReaders L501: Atomics.load(STATE) */
     if
     :: READABLE(s) ->
        d_step {               /* _raw_rwlock.ts #admitReaders L505: Atomics.compareExchange(STATE, s, s + n) */
          n = (lrlen[th] < MAXR - READERS(s) -> lrlen[th] : MAXR - READERS(s));
          if
          :: STATE == s ->
             STATE = s + n;
             nr = nr + n;
             assert(nw == 0 && gq == 0 && READERS(STATE) <= MAXR);   /* writer preference */
             do                /* L508: serve the n readers at the head, in order */
             :: n > 0 ->
                e = lr[th * NP];
                j = 0;
                do
                :: j + 1 < lrlen[th] -> lr[th * NP + j] = lr[th * NP + j + 1]; j++
                :: else -> break
                od;
                lrlen[th]--;
                lr[th * NP + lrlen[th]] = 0;
                queued[e] = false; served[e] = true;
                n--
             :: else -> break
             od;
             j = 0; e = 0; ok = true
          :: else -> n = 0; ok = false
          fi
        }
        if
        :: ok -> ok = false; s = 0; break
        :: else
        fi
     :: else -> s = 0; break
     fi
  od
}

/* The writer queue ran empty with its watcher waiting: #endWriterWatch L636-638. */
inline end_writer_watch(th) {
#ifdef MUT_NO_END_WATCH
  skip
#else
  if
  :: wwatch[th] && lwlen[th] == 0 ->
     d_step { notify_all_wseq() }   /* _raw_rwlock.ts #endWriterWatch L637: Atomics.notify(WSEQ) */
  :: else
  fi
#endif
}

/* A writer's timer or abort: it leaves its queue (WaitQueue #giveUp); t is its ticket. */
inline leave_writers(p) {
  j = 0;
  do
  :: lw[TH(p) * NP + j] == p -> break
  :: else -> j++
  od;
  t = lwt[TH(p) * NP + j];
  do
  :: j + 1 < lwlen[TH(p)] ->
     lw[TH(p) * NP + j] = lw[TH(p) * NP + j + 1]; lwt[TH(p) * NP + j] = lwt[TH(p) * NP + j + 1]; j++
  :: else -> break
  od;
  lwlen[TH(p)]--;
  lw[TH(p) * NP + lwlen[TH(p)]] = 0;
  lwt[TH(p) * NP + lwlen[TH(p)]] = 0;
  queued[p] = false;
  j = 0
}

/* A reader's timer or abort: it leaves its queue (WaitQueue #giveUp). */
inline leave_readers(p) {
  j = 0;
  do
  :: lr[TH(p) * NP + j] == p -> break
  :: else -> j++
  od;
  do
  :: j + 1 < lrlen[TH(p)] -> lr[TH(p) * NP + j] = lr[TH(p) * NP + j + 1]; j++
  :: else -> break
  od;
  lrlen[TH(p)]--;
  lr[TH(p) * NP + lrlen[TH(p)]] = 0;
  queued[p] = false;
  j = 0
}

/* The release of a write hold by a task of thread th (releaseWrite L606-629 or downgrade L647-655). */
inline unwrite(th) {
  if
  :: lwlen[th] > 0 ->
     x = SERVING;             /* _raw_rwlock.ts releaseWrite L609: Atomics.load(SERVING) */
#ifndef MUT_HANDOFF_ANY_HEAD
     if
     :: x == lwt[th * NP] -> ok = true
     :: else -> ok = false
     fi;
#else
     ok = true;
#endif
     x = 0
  :: else -> ok = false
  fi;
  if
  :: ok ->                     /* direct handoff to the head of th's writer queue */
     t = lwt[th * NP];
     do
     :: s = STATE;             /* _raw_rwlock.ts releaseWrite L617: Atomics.load(STATE) */
        d_step {               /* _raw_rwlock.ts releaseWrite L618: Atomics.compareExchange(STATE, s, s + change) */
          if
          :: STATE == s ->
             STATE = s - wtag[th] + (TICKET_TAG | t) - QUEUED_ONE;
             wtag[th] = TICKET_TAG | t;
             gq--; tstat[t] = 2;
             assert(WLOCKED(s) && nw == 1 && nr == 0);
             assert_fifo(t);
             won = true
          :: else -> won = false
          fi;
          s = 0
        }
        if
        :: won -> won = false; break
        :: else
        fi
     od;
     pass_head(t);
     atomic { serve_writer(th); ok = false; t = 0 }
  :: else ->
     if
     :: d_step {               /* _raw_rwlock.ts releaseWrite L626: Atomics.sub(STATE, WRITER + tag) */
          prev = STATE; STATE = STATE - WRITER - wtag[th]; nw--
        }
        if                     /* #afterUnwrite L641-644 */
        :: QUEUED(prev) -> prev = 0; writer_event()
        :: else -> prev = 0; reader_event()
        fi;
        if
        :: lrlen[th] > 0 -> admit_readers(th)
        :: else
        fi;
        end_writer_watch(th)
     :: !ASYNC_ONLY(p) ->      /* a thread's own sync read under its write hold: downgrade */
        d_step {               /* _raw_rwlock.ts downgrade L650: Atomics.add(STATE, 1 - WRITER - tag) */
          prev = STATE; STATE = STATE + 1 - WRITER - wtag[th]; nw--; nr++;
          assert(nw == 0)
        }
        if                     /* L653 */
        :: !QUEUED(prev) -> prev = 0; reader_event()
        :: else -> prev = 0
        fi;
        if
        :: lrlen[th] > 0 -> admit_readers(th)
        :: else
        fi;
        unread(th)
     fi
  fi
}

/* releaseRead L442-457 by a task of thread th. */
inline unread(th) {
  if
  :: bcount[th] > 0 ->         /* a biased hold of this attachment first */
     d_step {                  /* _raw_rwlock.ts releaseRead L447: Atomics.store(view, this.#slot, biased - 1) */
       bcount[th]--; slot[th]--; nr--
     }
     if
     :: slot[th] == 0 -> after_slot_emptied()
     :: else
     fi
  :: else ->
     d_step {                  /* _raw_rwlock.ts releaseRead L455: Atomics.sub(STATE, 1) */
       prev = STATE; STATE = STATE - 1; nr--
     }
     if                        /* #afterUnread L460-463 */
     :: READERS(prev) == 1 && QUEUED(prev) -> prev = 0; writer_event()
     :: READERS(prev) == MAXR && !(READERS(prev) == 1 && QUEUED(prev)) -> prev = 0; reader_event()
     :: else -> prev = 0
     fi
  fi;
  if                           /* L456 (L449 after a biased hold): the head of this attachment's writer queue may take it */
  :: lwlen[th] > 0 -> serve_writers(th)
  :: else
  fi
}

proctype Writer(byte p) {
  byte r = 0, t, seq, x, nx, e;
  int s, prev;
  bool ok, won, expired, sync, scanned;

round:
  if
  :: r == ROUNDS -> goto fin
  :: else
  fi;
  if :: patient[p] = true :: patient[p] = false fi;
  if :: !ASYNC_ONLY(p) -> sync = true :: sync = false fi;

  atomic { !busy[TH(p)]; busy[TH(p)] = true }
  if
  :: !sync && lwlen[TH(p)] > 0 -> goto join   /* writeAsync L589: queue not empty: join it */
  :: else
  fi;
  /* writeSync L578 / writeAsync L590 -> tryWrite, and #spinWrite L664, collapsed */
  d_step {                     /* _raw_rwlock.ts tryWrite L550: Atomics.compareExchange(STATE, 0, WRITER | id) */
    if
    :: STATE == 0 -> STATE = WRITER | (p + 1); wtag[TH(p)] = p + 1; nw++; ok = true;
       assert(gq == 0 && nr == 0 && nw == 1)    /* FIFO: no queued writer is jumped */
    :: else -> ok = false
    fi
  }
  if
  :: !ok ->                    /* #tryWriteRevoking: free but biased (or not yet scanned) */
     s = STATE;                /* _raw_rwlock.ts #tryWriteRevoking L565: Atomics.load(STATE) */
     if
     :: FREE_BUT_BIASED(s) ->
        d_step {               /* _raw_rwlock.ts #tryWriteRevoking L567: Atomics.compareExchange(STATE, s, WRITER | SCAN | tag) */
          if
          :: STATE == s -> STATE = WRITER | SCAN | (p + 1); wtag[TH(p)] = p + 1; won = true
          :: else -> won = false
          fi;
          s = 0
        }
        if
        :: won ->
           won = false;
           slots_empty();
           if
           :: ok ->
              d_step {         /* _raw_rwlock.ts #tryWriteRevoking L570: Atomics.sub(STATE, SCAN) */
                STATE = STATE - SCAN; nw++;
                assert(nr == 0 && nw == 1)   /* the scan saw every biased reader */
              }
           :: else ->
              d_step {         /* _raw_rwlock.ts #tryWriteRevoking L573: Atomics.sub(STATE, WRITER + tag) */
                prev = STATE; STATE = STATE - WRITER - wtag[TH(p)]
              }
              if               /* #afterUnwrite */
              :: QUEUED(prev) -> prev = 0; writer_event()
              :: else -> prev = 0; reader_event()
              fi
           fi
        :: else
        fi
     :: else -> s = 0
     fi
  :: else
  fi;
  if
  :: ok -> goto cs
  :: !ok && sync -> goto syncwait
  :: else
  fi;

join:                          /* writeAsync L588-604: queue, draw a ticket, start the watcher */
  enqueue(t);
  atomic {
    lw[TH(p) * NP + lwlen[TH(p)]] = p; lwt[TH(p) * NP + lwlen[TH(p)]] = t; lwlen[TH(p)]++;
    queued[p] = true; t = 0
  }
  if
  :: wwatch[TH(p)] -> busy[TH(p)] = false
  :: else ->
     d_step {                  /* _raw_rwlock.ts #watchWriters L811: Atomics.add(W_SLEEPERS, 1) */
       wwatch[TH(p)] = true; W_SLEEPERS++; wgo[TH(p)] = true
     }
  fi;
  if
  :: d_step { served[p] && !busy[TH(p)] -> served[p] = false; busy[TH(p)] = true }
     goto cs
  :: d_step {                  /* WaitQueue #giveUp (timer or abort), then #writerGaveUp L787-791 */
       queued[p] && !patient[p] && !busy[TH(p)] -> busy[TH(p)] = true; leave_writers(p)
     }
     cancel(t);
     t = 0;
     end_writer_watch(TH(p));
     atomic { busy[TH(p)] = false; r++ }
     goto round
  fi;

syncwait:
  enqueue(t);
  W_SLEEPERS++;                /* _raw_rwlock.ts #writeContendedSync L753: Atomics.add(W_SLEEPERS, 1) */
loop:
  seq = WSEQ;                  /* _raw_rwlock.ts #writeContendedSync L756: Atomics.load(WSEQ) */
  take_as_head(TH(p), t);
  if
  :: ok -> goto wleave
  :: else
  fi;
  /* L758-762: left <= 0 -> cancel */
  if
  :: expired -> cancel(t); goto wleave
  :: !expired && !patient[p] -> expired = true; cancel(t); goto wleave
  :: !expired -> skip
  fi;
  d_step {                     /* _raw_rwlock.ts #writeContendedSync L763: Atomics.wait(WSEQ, seq, left) */
    if :: WSEQ == seq -> regW[p] = true :: else fi
  }
  if
  :: regW[p] || woken[p] ->
     if
     :: woken[p] -> woken[p] = false
     :: d_step { !patient[p] && regW[p] -> regW[p] = false; expired = true }   /* timed out */
     fi
  :: else                      /* "not-equal" */
  fi;
  seq = 0;
  goto loop;

wleave:
  W_SLEEPERS--;                /* _raw_rwlock.ts #writeContendedSync L766: Atomics.sub(W_SLEEPERS, 1) (finally) */
  t = 0;
  if
  :: ok -> goto cs
  :: else -> atomic { r++; expired = false; busy[TH(p)] = false }; goto round
  fi;

cs:
  atomic { ok = false; expired = false; busy[TH(p)] = false; assert(nw == 1 && nr == 0) }
  atomic { !busy[TH(p)]; busy[TH(p)] = true }
  unwrite(TH(p));
  atomic { busy[TH(p)] = false; r++ }
  goto round;

fin:
  atomic { done++; patient[p] = false }
}

proctype Reader(byte p) {
  byte r = 0, x, t, nx, seq, e;
  int s, prev;
  bool ok, won, expired, tried, sync, rebias, scanned;

round:
  if
  :: r == ROUNDS -> goto fin
  :: else
  fi;
  if :: patient[p] = true :: patient[p] = false fi;
  if :: !ASYNC_ONLY(p) -> sync = true :: sync = false fi;
  tried = false;

  atomic { !busy[TH(p)]; busy[TH(p)] = true }
  if
  :: !sync && lrlen[TH(p)] > 0 -> goto join   /* readAsync L430: queue not empty: join it */
  :: else
  fi;
  /* readSync L423 / readAsync L431 -> tryRead, and #spinRead L467, collapsed; then
   * from L481 inside the sync contended loop */
tryread:
  s = STATE;                   /* _raw_rwlock.ts tryRead L369: view[STATE], a plain load (a hint); retries: L384 */
  if
  :: ISBIASED(s) ->            /* biased: a store to this thread's slot, then a load */
     slot[TH(p)]++;            /* _raw_rwlock.ts tryRead L375: Atomics.store(view, slot, n + 1) */
#ifndef MUT_BIAS_NO_RECHECK
     d_step {                  /* _raw_rwlock.ts tryRead L376: Atomics.load(view, STATE) */
       s = STATE;
#else
     d_step {
#endif
       if
       :: ISBIASED(s) -> nr++; ok = true; bcount[TH(p)]++;
          assert(nw == 0 && gq == 0)   /* writer preference */
       :: else -> ok = false
       fi
     }
     if
     :: ok && !tried -> s = 0; goto cs
     :: ok && tried -> s = 0; goto rleave
     :: else
     fi;
     slot[TH(p)]--;            /* _raw_rwlock.ts tryRead L380: Atomics.store(view, slot, n) */
     if
     :: slot[TH(p)] == 0 -> after_slot_emptied()
     :: else
     fi;
     s = STATE                 /* _raw_rwlock.ts tryRead L382: Atomics.load(view, STATE) */
  :: else
  fi;
  if :: rebias = true :: rebias = false fi;   /* #slowReads >= REBIAS_AFTER: any value */
  if
  :: READABLE(s) ->
     d_step {                  /* _raw_rwlock.ts tryRead L392: Atomics.compareExchange(view, STATE, s, next) */
       if
       :: STATE == s ->
          if
          :: rebias -> STATE = ((s + 1) | BIASED) & ~SCAN
          :: else -> STATE = s + 1
          fi;
          nr++; ok = true;
          assert(nw == 0 && gq == 0 && READERS(STATE) <= MAXR)   /* writer preference */
       :: else -> ok = false
       fi;
       s = 0; rebias = false
     }
     if
     :: ok && !tried -> goto cs
     :: ok && tried -> goto rleave
     :: else -> goto tryread
     fi
  :: else -> s = 0
  fi;
  if
  :: tried -> goto rloop       /* tryRead returned false: `continue` (L482) */
  :: !tried && sync -> tried = true
  :: else -> goto join
  fi;

  R_SLEEPERS++;                /* _raw_rwlock.ts #readContendedSync L476: Atomics.add(R_SLEEPERS, 1) */
rloop:
  s = STATE;                   /* _raw_rwlock.ts #readContendedSync L479: Atomics.load(STATE) */
  if
  :: READABLE(s) -> s = 0; goto tryread
  :: else
  fi;
  /* L484-485: left <= 0 */
  if
  :: expired -> s = 0; goto rleave
  :: !expired && !patient[p] -> s = 0; expired = true; goto rleave
  :: !expired -> skip
  fi;
  d_step {                     /* _raw_rwlock.ts #readContendedSync L486: Atomics.wait(STATE, s, left) */
    if :: STATE == s -> regS[p] = true :: else fi
  }
  if
  :: regS[p] || woken[p] ->
     if
     :: woken[p] -> woken[p] = false
     :: d_step { !patient[p] && regS[p] -> regS[p] = false; expired = true }   /* timed out */
     fi
  :: else                      /* "not-equal" */
  fi;
  s = 0;
  goto rloop;

rleave:
  R_SLEEPERS--;                /* _raw_rwlock.ts #readContendedSync L489: Atomics.sub(R_SLEEPERS, 1) (finally) */
  if
  :: ok -> goto cs
  :: else -> atomic { r++; expired = false; tried = false; busy[TH(p)] = false }; goto round
  fi;

join:                          /* readAsync L429-440: queue, start the watcher */
  atomic {
    lr[TH(p) * NP + lrlen[TH(p)]] = p; lrlen[TH(p)]++; queued[p] = true
  }
  if
  :: rwatch[TH(p)] -> busy[TH(p)] = false
  :: else ->
     d_step {                  /* _raw_rwlock.ts #watchReaders L523: Atomics.add(R_SLEEPERS, 1) */
       rwatch[TH(p)] = true; R_SLEEPERS++; rgo[TH(p)] = true
     }
  fi;
  if
  :: d_step { served[p] && !busy[TH(p)] -> served[p] = false; busy[TH(p)] = true }
     goto cs
  :: d_step {                  /* WaitQueue #giveUp (timer or abort): nothing shared changes */
       queued[p] && !patient[p] && !busy[TH(p)] -> leave_readers(p)
     }
     atomic { r++; t = 0 }
     goto round
  fi;

cs:
  atomic { ok = false; expired = false; tried = false; busy[TH(p)] = false; assert(nw == 0 && nr >= 1) }
  atomic { !busy[TH(p)]; busy[TH(p)] = true }
  unread(TH(p));
  atomic { busy[TH(p)] = false; r++ }
  goto round;

fin:
  atomic { done++; patient[p] = false }
}

/* The reader watcher of thread th (#watchReaders L519-538). */
proctype ReaderWatcher(byte th) {
  int s;
  byte x, e;
  bool ok;
end:
  do
  :: rgo[th] ->
rwloop:
     if
     :: lrlen[th] == 0 ->
        d_step {               /* _raw_rwlock.ts #watchReaders L535: Atomics.sub(R_SLEEPERS, 1) (finally) */
          R_SLEEPERS--; rwatch[th] = false; rgo[th] = false; busy[th] = false
        }
     :: else ->
        s = STATE;             /* _raw_rwlock.ts #watchReaders L526: Atomics.load(STATE) */
        if
        :: READABLE(s) -> s = 0; admit_readers(th); goto rwloop
        :: else
        fi;
        d_step {               /* _raw_rwlock.ts #watchReaders L531: Atomics.waitAsync(STATE, s) */
          if
          :: STATE == s -> rwReg[th] = true; busy[th] = false; ok = true
          :: else -> ok = false
          fi;
          s = 0
        }
        if
        :: ok -> ok = false; d_step { rwWoken[th] && !busy[th] -> rwWoken[th] = false; busy[th] = true }
        :: else
        fi;
        goto rwloop
     fi
  od
}

/* The writer watcher of thread th (#watchWriters L807-824). */
proctype WriterWatcher(byte th) {
  int s;
  byte x, seq, nx, e;
  bool ok, won, scanned;
end:
  do
  :: wgo[th] ->
wwloop:
     if
     :: lwlen[th] == 0 ->
        d_step {               /* _raw_rwlock.ts #watchWriters L821: Atomics.sub(W_SLEEPERS, 1) (finally) */
          W_SLEEPERS--; wwatch[th] = false; wgo[th] = false; busy[th] = false
        }
     :: else ->
        seq = WSEQ;            /* _raw_rwlock.ts #watchWriters L814: Atomics.load(WSEQ) */
        serve_writers(th);
        if
        :: won -> won = false; seq = 0; goto wwloop   /* served the head: loop */
        :: else
        fi;
        d_step {               /* _raw_rwlock.ts #watchWriters L817: Atomics.waitAsync(WSEQ, seq) */
          if
          :: WSEQ == seq -> wwReg[th] = true; busy[th] = false; ok = true
          :: else -> ok = false
          fi;
          seq = 0
        }
        if
        :: ok -> ok = false; d_step { wwWoken[th] && !busy[th] -> wwWoken[th] = false; busy[th] = true }
        :: else
        fi;
        goto wwloop
     fi
  od
}

/* When every task has finished and nothing else can move: all counters at rest. */
proctype Quiescence() {
  done == NP;
  timeout ->
  assert((STATE & ~(BIASED | SCAN)) == 0 && nr == 0 && nw == 0 && gq == 0);
  assert(slot[0] + slot[NT / 2] + slot[NT - 1] + bcount[0] + bcount[NT / 2] + bcount[NT - 1] == 0);
  assert(R_SLEEPERS == 0 && W_SLEEPERS == 0);
  assert(SERVING == NEXT_TICKET)
}

init {
  atomic {
    byte m = 0;
    do
    :: m < NW -> run Writer(m); run WriterWatcher(m); m++
    :: m >= NW && m < NP -> run Reader(m); run ReaderWatcher(m); m++
    :: else -> break
    od;
    run Quiescence()
  }
}

/* No lost wake-up: a patient waiter, registered on STATE or WSEQ (sync) or
 * queued (async), is eventually woken or served (pan -a -f: weak fairness). */
#define WAITS(p) ((regS[p] || regW[p] || queued[p]) && patient[p])
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
