// The Atomics protocol behind `ReaderWriterLock`: a state word, a ticket queue
// for writers, and records of who holds what, in a SharedArrayBuffer shared by
// every Worker that attaches to it; and, in front of it, two queues of async
// waiters per attachment. Holders here are shared holds: the reentrancy of a
// thread or of an async chain is counted by the public class and never
// reaches shared memory.
//
// state (Int32, index STATE):
//   bits 0..15   WRITER clear: number of read holds counted here (READERS_MASK),
//                at most MAX_READERS; biased read holds are in SLOT[id] instead.
//                WRITER set: the write holder's tag (no reader counted here then):
//                TICKET_TAG | (t & RING_MASK) when it took the lock as head with
//                ticket t, so the ticket's owner is OWNERS[t & RING_MASK]; its
//                attachment id when it took the lock on the fast path (ids
//                1..MAX_FAST_ID; 0 for larger ids, whose fast-path write holds
//                forceRelease() cannot find).
//   bit 16       a writer holds the lock (WRITER)
//   bits 17..28  number of queued writers: holding a ticket, neither served nor gone
//                (at most RING_LIMIT plus one per thread racing #ringHasRoom)
//   bit 29       SCAN: the read bias was revoked and SLOT words may still count
//                biased read holds: a writer may own the lock only after it saw
//                every SLOT at 0 with SCAN set; the CAS that gives it the lock
//                clears SCAN (no slot can fill again while BIASED is clear)
//   bit 30       BIASED: readers with a slot may take read holds in it, without
//                writing STATE. Set (and SCAN cleared: the next writer scans
//                because of BIASED) only by a read's CAS, so only with no writer
//                holding or queued; cleared (SCAN set) by the CAS that queues a
//                writer or takes the write lock: BIASED implies that no writer
//                holds or queues, so biased readers keep writer preference exactly.
//   bit 31       unused (Atomics.wait needs Int32: keep values non-negative)
//
// other words (Int32):
//   SERVING      the ticket at the head of the writer queue: only its writer may
//                take the lock out of the queue. Only the head moves it.
//   NEXT_TICKET  the next ticket to draw (Atomics.add); NEXT_TICKET - SERVING
//                tickets are in flight, at most RING_LIMIT.
//   WSEQ         bumped after every change that may let a queued writer go on
//                (SERVING moves to a live head, last reader leaves, writer leaves,
//                a slot goes to 0 while SCAN is set).
//   R_SLEEPERS   sync readers between "about to wait on STATE" and "done", plus
//                running reader watchers (one per attachment): an upper bound.
//   W_SLEEPERS   sync writers between "about to wait on WSEQ" and "done", plus
//                running writer watchers (one per attachment): an upper bound.
//   UNUSED       (index HEADER_WORDS + 6) always 0: the write holder's id of
//                layout 1, now in STATE; kept so the words after it stay put.
//   RING[i]      for the ticket t of slot i (t & RING_MASK == i): live(t) =
//                t ^ LIVE_BIT from its drawing until it is cancelled or used; t
//                once cancelled, until skipped; then empty(i) = i + 1 (no ticket
//                of slot i). Only a CAS live(t) -> t cancels t, so a ticket is
//                cancelled at most once, and never after it was skipped. A used
//                ticket keeps live(t) until its slot is drawn again: it is behind
//                SERVING by then, where nobody cancels.
//   OWNERS[i]    attachment id that drew the ticket of slot i (plain store).
//   READS[id]    read holds counted in STATE of attachment id (1..RECORDED_IDS),
//                stored by that attachment only (plain store), read by
//                forceRelease() after it died.
//   SLOT[id]     biased read holds of attachment id (1..SLOT_IDS), each in a
//                128-byte block of its own (SLOT_STRIDE words: two cache lines, so
//                neither a shared line nor the adjacent-line prefetcher couples
//                two readers). Stored (Atomics.store) by that attachment only,
//                and by forceRelease() after it died; read by writers' scans.
//
// Read bias (BRAVO, Dice and Kogan 2019, in its per-attachment form, as
// Linux's percpu rwsem): with one STATE word, every read is a CAS on one
// cache line, and two cores reading at once take turns owning it. With
// BIASED set, a reader stores SLOT[id] += 1, then loads STATE: if BIASED is
// still set it holds (it wrote only its own line); if not, it stores the
// slot back and takes the STATE path. A writer clears BIASED (and sets
// SCAN) in the CAS that takes or queues for the lock, then loads the slots.
// Atomics are sequentially consistent, so of the reader's store-then-load
// and the writer's CAS-then-loads one sees the other (Dekker): the writer
// sees the slot, or the reader sees the revocation. Costs: each revocation
// is a scan of the slots of the attachments made so far (at most SLOT_IDS);
// a write pair with the bias off pays nothing more than before. The bias
// comes back when an attachment with a slot has taken REBIAS_AFTER read
// holds through STATE since its last re-bias (its read CAS sets BIASED:
// a write-heavy mix pays at most one scan per REBIAS_AFTER reads). BRAVO
// waits a multiple of the revocation's time instead; a count needs no clock
// read on the read path. The bias is
// a bit of STATE rather than a word of its own so that turning it on is one
// CAS with the check that no writer holds or queues, and turning it off one
// CAS with taking or queueing: no window where a biased reader passes a
// queued writer. Biased readers only load STATE, which stays in every
// reader's cache while no writer comes.
//
// Async waiters do not wait on the shared words themselves. Each attachment
// keeps its async readers and its async writers in two FIFO queues in
// TypeScript (WaitQueue, _wait.ts) and runs at most one watcher per non-empty
// queue: the reader watcher waits on STATE, the writer watcher on WSEQ, each
// the attachment's only Atomics.waitAsync on its word. A notify thus wakes one
// wait per attachment (per isolate) and kind, never one per waiter.
//   async read   if this attachment's reader queue is empty, try as "read"
//                does; else (or if that fails) join the queue. The reader
//                watcher (R_SLEEPERS += 1 while it runs) loops { load s; if
//                readable, admit; else wait on STATE while s } until the queue
//                is empty. admit = { CAS STATE s -> s + n; READS[id] += n } for
//                the n queued readers the lock has room for, then resolves
//                them all: readers of an isolate get in together.
//   async write  if this attachment's writer queue is empty, try as "write"
//                does; else (or if that fails) join the queue, drawing a ticket
//                ("queue" below) at once if the ring has room, else later, in
//                queue order, as room appears (top-up). The writer watcher
//                (W_SLEEPERS += 1 while it runs) loops { seq = WSEQ; top up; if
//                the head's ticket may take the lock, take it as "queue" does
//                and serve the head; else wait on WSEQ while seq } until the
//                queue is empty.
//   handoff      unwrite by an attachment whose queue head holds the ticket at
//                SERVING: CAS STATE s -> s - tag + tag(t) - one queued writer
//                (WRITER stays set), pass the head on, serve its waiter. The
//                lock is never free, nobody is woken; FIFO holds, since t is
//                the shared head. Otherwise unwrite (and downgrade) as below,
//                then admit this attachment's queued readers at once, and an
//                unread tries to take the lock for its writer queue's head.
//   give up      (async timeout or abort) the waiter leaves its queue; a writer
//                with a ticket cancels it ("cancel" below).
// A watcher ends only when a wake-up finds its queue empty, so its count
// covers its registration in the engine; every notify is notify-all, so no
// registration can swallow one.
//
// Transitions (steps grouped in braces run as straight-line code, with no
// call or loop between them; see "Dead Workers" below):
//   biased    (attachment with a slot) load STATE; if BIASED, { SLOT[id] =
//   read      n + 1; load STATE; if BIASED, hold; else SLOT[id] = n, and if n
//             is 0 and SCAN is set, bump WSEQ (a scanning head may wait on it) }.
//   read      load STATE; if no writer holds or queues and readers < MAX,
//             { CAS +1 (| BIASED after REBIAS_AFTER such reads); READS[id] = holds }.
//   read wait R_SLEEPERS += 1; loop { load s; CAS if readable; wait on STATE while s }.
//             A change of STATE between the load and the wait makes the wait
//             return at once, so no release is missed.
//   unread    biased holds first: { SLOT[id] = n - 1; if 0, load STATE: if SCAN,
//             bump WSEQ }. Else { READS[id] = holds; STATE -= 1 }; if that was
//             the last reader and writers queue, bump WSEQ; if readers were at
//             MAX_READERS, wake readers.
//   write     CAS STATE 0 -> WRITER | id: nobody holds, nobody queues, so FIFO
//             holds; the CAS also records the holder. If STATE has only BIASED
//             or SCAN: CAS s -> WRITER | id | SCAN (revokes the bias), load
//             every SLOT; all 0: STATE -= SCAN, hold; else give the lock back
//             (unwrite, SCAN kept) and fail: a blocking writer then queues.
//   queue     { CAS STATE s -> s + one queued writer, BIASED -> SCAN; t =
//             NEXT_TICKET++; OWNERS[t] = id; RING[t] = live(t) };
//             then W_SLEEPERS += 1; loop { seq = WSEQ; if SERVING == t and no
//             holder, and (SCAN clear or every SLOT is 0), CAS STATE (-1 queued,
//             +WRITER, +TICKET_TAG | slot of t, -SCAN) and pass the head on;
//             else wait on WSEQ while seq }. The CAS takes the lock, uses up
//             ticket t and records both at once. Every change a head waits for
//             bumps WSEQ after it is made, and every waiter reads WSEQ before it
//             looks: no lost wake-up. A queued writer keeps BIASED clear, so
//             once its scan saw every slot at 0 no slot can hold a read again.
//   pass      (head passing ticket t on) for next = t + 1, … { SERVING = next;
//             CAS RING[next]: next -> empty }, going on while the CAS wins (next
//             was cancelled: skip it); then bump WSEQ.
//   unwrite   STATE -= WRITER + tag; bump WSEQ if writers queue, else wake readers.
//   downgrade { STATE += 1 - WRITER - tag; READS[id] = holds }; wake readers if no
//             writer queues.
//   cancel    (timeout, abort, dead owner) { CAS RING[t]: live(t) -> t; if it won,
//             STATE -= one queued writer }; then if SERVING == t, whoever wins
//             the CAS RING[t]: t -> empty skips t (pass). The head passing
//             SERVING on skips every cancelled ticket the same way.
//   force     forceRelease(id), for a dead attachment id, in this order:
//             1. if STATE has WRITER and a tag of id (its id, or TICKET_TAG | i
//                with OWNERS[i] == id): if SERVING is still that ticket, pass it
//                on for the holder; then CAS STATE s -> s - WRITER - tag (retried
//                while queued-writer bits change), and notify as unwrite does.
//             2. if READS[id] = n > 0: READS[id] = 0; STATE -= n; notify as unread.
//                If SLOT[id] = n > 0: SLOT[id] = 0; bump WSEQ if SCAN is set.
//             3. if RING[SERVING] == SERVING (a cancelled head a dead passer left
//                unskipped), whoever wins the CAS RING[SERVING] -> empty passes it.
//             4. cancel every ticket t in [SERVING, NEXT_TICKET) with OWNERS == id
//                and RING == live(t) (the CAS in cancel makes a second cancel,
//                or a cancel of a ticket skipped meanwhile, do nothing).
//   notify    every notify wakes all sleepers of its word (they re-check), and
//             only when the word's sleeper count is non-zero.
//
// Dead Workers: a Worker terminated by Worker.terminate() leaves behind what
// it held or queued for, and forceRelease(id) must undo exactly that, once.
// Measured in Deno 2.9: terminate() does not interrupt running JavaScript; a
// Worker stops only when its event loop next turns (one that loops through
// microtasks alone is never stopped), so it stops between tasks, not inside a
// synchronous step of this protocol. The write hold and the use of a ticket
// do not depend on that: the CAS that makes them records them (the tag in
// STATE); cancel is a CAS that succeeds once, and never on a ticket already
// skipped (the live mark), so forceRelease() racing a live head that skips a
// dead Worker's cancelled ticket cannot cancel it twice (the cause of the
// queued-writer count going below zero in chaos runs). Three steps still span
// two or three words, with no single word to hold both: enqueue (queued count,
// ticket, owner), a read CAS and its READS record, and cancel's ring mark and
// queued-count decrement; a biased read's slot store, check and back-out
// touch one word of the attachment's own plus loads. Each is straight-line code with no call, loop or
// await between its Atomics operations, so it is not split by Deno's
// terminate() (nor by V8's interrupt checks, at function entries and loop
// back-edges); the SPIN model treats each group as one atomic step.
// Worker.terminate() does not interrupt Atomics.wait either: a Worker blocked
// in a sync wait runs on when woken (see ReaderWriterLock.forceRelease()).
//
// Fairness: writers first, then FIFO among writers (strict across Workers
// while fewer than RING_LIMIT tickets are in flight; beyond that, queued async
// writers draw their tickets in queue order as room appears). Once a writer queues, new
// readers wait behind it (readers already in keep their hold, and a thread's
// or chain's reentrant reads are never refused); the lock goes to queued
// writers strictly in ticket order across all Workers, and readers are let in
// again only when no writer holds or queues (biased readers too: BIASED is
// clear from the moment a writer queues). Readers can therefore starve
// under a steady stream of writers, as in fasteners; writers never starve.

import { attachBuffer, HEADER_WORDS, makeBuffer, NEXT_ID, nextId } from "./_layout.ts";
import { sleepSync, type Waiting } from "../_options.ts";
import { type Waiter, WaitQueue } from "./_wait.ts";

/** Index of the state word. */
export const STATE = HEADER_WORDS;
/** Index of the ticket now at the head of the writer queue. */
const SERVING = HEADER_WORDS + 1;
/** Index of the next ticket to draw. */
const NEXT_TICKET = HEADER_WORDS + 2;
/** Index of the writer event counter. */
const WSEQ = HEADER_WORDS + 3;
/** Index of the count of readers that may be waiting on STATE. */
const R_SLEEPERS = HEADER_WORDS + 4;
/** Index of the count of writers that may be waiting on WSEQ. */
const W_SLEEPERS = HEADER_WORDS + 5;
/** Index HEADER_WORDS + 6 is unused (always 0), so that RING keeps its index. */
/** Tickets in flight at most: the ring of cancellation marks has this many slots. */
const RING_SIZE = 1024;
/** `t & RING_MASK` is the ring slot of ticket t. */
const RING_MASK = RING_SIZE - 1;
/** A writer waits before drawing a ticket while this many are in flight, so slots never clash. */
const RING_LIMIT = RING_SIZE - 256;
/** Index of the first cancellation mark. */
const RING = HEADER_WORDS + 7;
/** Index of the first ticket owner record. */
const OWNERS = RING + RING_SIZE;
/** Attachment ids 1..RECORDED_IDS have their read holds recorded for forceRelease(). */
const RECORDED_IDS = 256;
/** Index of READS[0] (unused: ids start at 1). */
const READS = OWNERS + RING_SIZE;
/** Words from one SLOT to the next: 128 bytes, two cache lines. */
const SLOT_STRIDE = 32;
/** Attachment ids 1..SLOT_IDS have a slot for biased read holds; later ids read through STATE. */
export const SLOT_IDS = 64;
/** Index of SLOT[1]: a block of SLOT_STRIDE words past READS, so no READS record shares its line. */
const SLOTS = (Math.ceil((READS + RECORDED_IDS + 1) / SLOT_STRIDE) + 1) * SLOT_STRIDE;
/** Index of the slot of attachment `id` (1..SLOT_IDS). */
const slotOf = (id: number) => SLOTS + (id - 1) * SLOT_STRIDE;
/** Words in a ReaderWriterLock buffer. */
const WORDS = SLOTS + SLOT_IDS * SLOT_STRIDE;

/** STATE bits holding the number of read holds. */
const READERS_MASK = 0xffff;
/** The most read holds at once. */
const MAX_READERS = READERS_MASK;
/** STATE bit: a writer holds the lock. */
const WRITER = 1 << 16;
/** STATE: one queued writer. */
const QUEUED_ONE = 1 << 17;
/** STATE bits counting queued writers. */
const QUEUED_MASK = 0xfff << 17;
/** STATE bit: slots may hold biased reads; a writer must see them all at 0 before it owns the lock. */
const SCAN = 1 << 29;
/** STATE bit: readers with a slot may take read holds in it. */
export const BIASED = 1 << 30;
/** Read holds an attachment takes through STATE before its read CAS sets BIASED again. */
export const REBIAS_AFTER = 512;
/** STATE, WRITER set: the tag bits (bits 0..15) name the holder. */
const TAG_MASK = 0xffff;
/** A tag with this bit names a ticket slot (the holder came through the queue). */
const TICKET_TAG = 0x8000;
/** The largest attachment id a fast-path write hold can record as its tag. */
const MAX_FAST_ID = TICKET_TAG - 1;

/** "FRwL": marks a ReaderWriterLock buffer. */
const RW_MAGIC = 0x4652774c;
/**
 * Bumped whenever a word above changes meaning (2: the write holder's tag in
 * STATE; 3: BIASED, SCAN and the slots).
 */
const RW_LAYOUT = 3;

/** Load-and-CAS rounds tried before a contended acquire waits. */
const SPIN = 100;

/** Read holds in `s`. */
const readers = (s: number) => s & READERS_MASK;
/** Whether a writer holds in `s`. */
const isWriteLocked = (s: number) => (s & WRITER) !== 0;
/** Whether writers queue in `s`. */
const hasQueuedWriters = (s: number) => (s & QUEUED_MASK) !== 0;
/** Whether a new reader may come in: no writer holds or queues, room for one more. */
const isReadLockable = (s: number) =>
  (s & (WRITER | QUEUED_MASK)) === 0 && readers(s) !== MAX_READERS;
/** Whether biased readers may take read holds in their slots. */
const isBiased = (s: number) => (s & BIASED) !== 0;
/** Whether a writer must see every slot at 0 before it owns the lock. */
const mustScan = (s: number) => (s & (BIASED | SCAN)) !== 0;
/** Whether nobody holds or queues in `s`, but the bias is on or not yet scanned. */
const isFreeButBiased = (s: number) => s !== 0 && (s & ~(BIASED | SCAN)) === 0;
/** Whether the head writer may take the lock: nobody holds it. */
const isWriteLockable = (s: number) => (s & (READERS_MASK | WRITER)) === 0;
/** The value of a ring slot that marks no ticket. */
const empty = (slot: number) => slot + 1;
/** Flipped in a ticket to mark it live in its ring slot: same slot, never a ticket in flight with it. */
const LIVE_BIT = 1 << 30;
/** The value of ticket t's ring slot while t is live. */
const live = (t: number) => t ^ LIVE_BIT;

/** One attachment (one Worker's view) of a shared reader-writer lock. */
export class RawRwLock {
  readonly view: Int32Array;
  /** This attachment's holder id, unique within the buffer. */
  readonly id: number;
  /** Read holds of this attachment counted in STATE, mirrored into READS[id]. */
  #reads = 0;
  readonly #recorded: boolean;
  /** Index of this attachment's SLOT, or 0 when its id has none. */
  readonly #slot: number;
  /** Biased read holds of this attachment, mirrored into its SLOT. */
  #biased = 0;
  /** Read holds taken through STATE since this attachment last set BIASED. */
  #slowReads = 0;
  /** The tag this attachment's fast-path write holds carry: its id, or 0 when too large. */
  readonly #fastTag: number;
  /** The tag of the write hold this attachment has now (meaningful only while it has one). */
  #writeTag = 0;
  /** Async readers of this attachment waiting, in arrival order. */
  readonly #readers = new WaitQueue();
  /** Async writers of this attachment waiting, in arrival order; those with a ticket come first. */
  readonly #writers = new WaitQueue((w) => this.#writerGaveUp(w));
  /** The first queued async writer without a ticket (the ring was full when it came). */
  #unticketed: Waiter | undefined = undefined;
  /** Whether the reader watcher runs (counted once in R_SLEEPERS). */
  #readWatching = false;
  /** Whether the writer watcher runs (counted once in W_SLEEPERS). */
  #writeWatching = false;

  constructor(buffer?: SharedArrayBuffer) {
    if (buffer === undefined) {
      this.view = makeBuffer(WORDS, RW_MAGIC, RW_LAYOUT);
      for (let i = 0; i < RING_SIZE; i++) this.view[RING + i] = empty(i);
    } else {
      this.view = attachBuffer(buffer, WORDS, RW_MAGIC, RW_LAYOUT, "ReaderWriterLock");
    }
    this.id = nextId(this.view);
    this.#recorded = this.id <= RECORDED_IDS;
    this.#slot = this.id <= SLOT_IDS ? slotOf(this.id) : 0;
    this.#fastTag = this.id <= MAX_FAST_ID ? this.id : 0;
  }

  get owner(): "r" | "w" | null {
    const s = Atomics.load(this.view, STATE);
    if (isWriteLocked(s)) return "w";
    return readers(s) !== 0 || (mustScan(s) && !this.#slotsEmpty()) ? "r" : null;
  }

  /** Async writers of this attachment now queued (a sync wait of its thread would wait for them). */
  get queuedWriters(): number {
    return this.#writers.size;
  }

  get hasPendingWriters(): boolean {
    return hasQueuedWriters(Atomics.load(this.view, STATE));
  }

  // ---- readers -------------------------------------------------------------

  /** One attempt at a read hold; retries only while the lock stays readable. */
  tryRead(): boolean {
    const view = this.view;
    // A plain load: only a hint (the biased path loads STATE again after its
    // store, the CAS checks the value), and one Atomics operation fewer.
    let s = view[STATE];
    const slot = this.#slot;
    if (isBiased(s) && slot !== 0) {
      // Fast path, biased: a store to this attachment's own line and a load
      // (see "Read bias"); straight-line, with no call before the back-out.
      const n = this.#biased;
      Atomics.store(view, slot, n + 1);
      if (isBiased(Atomics.load(view, STATE))) {
        this.#biased = n + 1;
        return true;
      }
      Atomics.store(view, slot, n);
      if (n === 0) this.#afterSlotEmptied();
      s = Atomics.load(view, STATE);
    }
    for (;; s = Atomics.load(view, STATE)) {
      if (!isReadLockable(s)) return false;
      // Fast path, unbiased: one CAS, no allocation. The CAS and its record run
      // with no call between them (see "Dead Workers"). Once in REBIAS_AFTER
      // reads the CAS turns the bias back on (and SCAN off: the next writer
      // scans because of BIASED).
      const rebias = this.#slowReads >= REBIAS_AFTER && slot !== 0;
      const next = rebias ? ((s + 1) | BIASED) & ~SCAN : s + 1;
      if (Atomics.compareExchange(view, STATE, s, next) === s) {
        const reads = ++this.#reads;
        if (this.#recorded) view[READS + this.id] = reads;
        this.#slowReads = rebias ? 0 : this.#slowReads + 1;
        return true;
      }
    }
  }

  /**
   * This attachment's slot went to 0 (a biased read left or backed out): wake
   * a queued head that waits for the slots to empty (SCAN set). The load comes
   * after the slot's store (Dekker, see "Read bias").
   */
  #afterSlotEmptied(): void {
    if ((Atomics.load(this.view, STATE) & SCAN) !== 0) this.#writerEvent();
  }

  /** Whether every slot of the attachments made so far is 0. */
  #slotsEmpty(): boolean {
    const view = this.view;
    // Attachments made after this load of NEXT_ID see the revocation that
    // came before it, so their slots cannot hold a read that counts.
    const last = Math.min(Atomics.load(view, NEXT_ID), SLOT_IDS);
    for (let id = 1; id <= last; id++) {
      if (Atomics.load(view, slotOf(id)) !== 0) return false;
    }
    return true;
  }

  readSync(w: Waiting): boolean {
    if (this.tryRead()) return true;
    if (w.timeout === 0) return false;
    return this.#readContendedSync(w.timeout);
  }

  /** Takes a read hold, waiting in this attachment's reader queue (FIFO) as `w` allows. */
  readAsync(w: Waiting): Promise<boolean> {
    if (this.#readers.size === 0) {
      if (this.tryRead()) return Promise.resolve(true);
      if (w.timeout === 0) return Promise.resolve(false);
      if (this.#spinRead()) return Promise.resolve(true);
    } else if (w.timeout === 0) {
      return Promise.resolve(this.tryRead());
    }
    const served = this.#readers.push(w.timeout, w.signal);
    if (!this.#readWatching) this.#watchReaders();
    return served;
  }

  releaseRead(): void {
    const view = this.view;
    const biased = this.#biased;
    if (biased !== 0) {
      this.#biased = biased - 1;
      Atomics.store(view, this.#slot, biased - 1);
      if (biased === 1) this.#afterSlotEmptied();
      if (this.#writers.size !== 0) this.#serveWriters();
      return;
    }
    // The record and the release run with no call between them (see "Dead Workers").
    const reads = --this.#reads;
    if (this.#recorded) view[READS + this.id] = reads;
    this.#afterUnread(Atomics.sub(view, STATE, 1), 1);
    if (this.#writers.size !== 0) this.#serveWriters();
  }

  /** Wakes whoever `n` read holds leaving (STATE was `prev`) may let in. */
  #afterUnread(prev: number, n: number): void {
    if (readers(prev) === n && hasQueuedWriters(prev)) this.#writerEvent();
    else if (readers(prev) === MAX_READERS) this.#readerEvent();
  }

  #spinRead(): boolean {
    for (let i = 0; i < SPIN; i++) {
      if (isReadLockable(Atomics.load(this.view, STATE)) && this.tryRead()) return true;
    }
    return false;
  }

  #readContendedSync(timeout: number): boolean {
    if (this.#spinRead()) return true;
    const view = this.view;
    const deadline = performance.now() + timeout;
    Atomics.add(view, R_SLEEPERS, 1);
    try {
      for (;;) {
        const s = Atomics.load(view, STATE);
        if (isReadLockable(s)) {
          if (this.tryRead()) return true;
          continue;
        }
        const left = deadline - performance.now();
        if (left <= 0) return false;
        Atomics.wait(view, STATE, s, left);
      }
    } finally {
      Atomics.sub(view, R_SLEEPERS, 1);
    }
  }

  /**
   * Lets in every queued async reader of this attachment that the lock has
   * room for, with one CAS (a writer leaving lets them in together).
   */
  #admitReaders(): boolean {
    const view = this.view;
    const queue = this.#readers;
    for (;;) {
      const s = Atomics.load(view, STATE);
      if (!isReadLockable(s)) return false;
      const n = Math.min(queue.size, MAX_READERS - readers(s));
      // The CAS and its record run with no call between them (see "Dead Workers").
      if (Atomics.compareExchange(view, STATE, s, s + n) === s) {
        const reads = this.#reads += n;
        if (this.#recorded) view[READS + this.id] = reads;
        for (let i = 0; i < n; i++) queue.serve();
        return true;
      }
    }
  }

  /**
   * The reader watcher: the one async wait of this attachment on STATE for its
   * readers. Lets them in whenever the lock is readable; ends when it finds
   * the reader queue empty.
   */
  async #watchReaders(): Promise<void> {
    const view = this.view;
    const queue = this.#readers;
    this.#readWatching = true;
    Atomics.add(view, R_SLEEPERS, 1);
    try {
      while (queue.size !== 0) {
        const s = Atomics.load(view, STATE);
        if (isReadLockable(s)) {
          this.#admitReaders();
          continue;
        }
        const wait = Atomics.waitAsync(view, STATE, s);
        if (wait.async) await wait.value;
      }
    } finally {
      Atomics.sub(view, R_SLEEPERS, 1);
      this.#readWatching = false;
    }
  }

  #readerEvent(): void {
    if (Atomics.load(this.view, R_SLEEPERS) !== 0) Atomics.notify(this.view, STATE);
  }

  // ---- writers -------------------------------------------------------------

  /** One attempt at the write hold: only when nobody holds or queues. */
  tryWrite(): boolean {
    // Fast path: one CAS, no allocation; the CAS also records the holder.
    const tag = this.#fastTag;
    if (Atomics.compareExchange(this.view, STATE, 0, WRITER | tag) === 0) {
      this.#writeTag = tag;
      return true;
    }
    return this.#tryWriteRevoking(tag);
  }

  /**
   * Nobody holds or queues, but the bias is on (or was revoked and the slots
   * not yet seen empty): take the lock and revoke the bias in one CAS, then
   * scan the slots; if a biased reader holds, give the lock back (SCAN stays
   * set, for the next writer) and fail.
   */
  #tryWriteRevoking(tag: number): boolean {
    const view = this.view;
    const s = Atomics.load(view, STATE);
    if (!isFreeButBiased(s)) return false;
    if (Atomics.compareExchange(view, STATE, s, WRITER | SCAN | tag) !== s) return false;
    this.#writeTag = tag;
    if (this.#slotsEmpty()) {
      Atomics.sub(view, STATE, SCAN);
      return true;
    }
    this.#afterUnwrite(Atomics.sub(view, STATE, WRITER + tag));
    return false;
  }

  writeSync(w: Waiting): boolean {
    if (this.tryWrite()) return true;
    if (w.timeout === 0) return false;
    return this.#writeContendedSync(w.timeout);
  }

  /**
   * Takes the write hold, waiting in this attachment's writer queue as `w`
   * allows. Each queued writer draws its ticket as it comes (while the ring
   * has room), so writers keep their order across Workers.
   */
  writeAsync(w: Waiting): Promise<boolean> {
    if (this.#writers.size === 0) {
      if (this.tryWrite()) return Promise.resolve(true);
      if (w.timeout === 0) return Promise.resolve(false);
      if (this.#spinWrite()) return Promise.resolve(true);
    } else if (w.timeout === 0) {
      return Promise.resolve(this.tryWrite());
    }
    const served = this.#writers.push(w.timeout, w.signal);
    if (this.#unticketed === undefined) {
      const waiter = this.#writers.last!;
      if (this.#ringHasRoom()) this.#ticket(waiter);
      else this.#unticketed = waiter;
    }
    if (!this.#writeWatching) this.#watchWriters();
    return served;
  }

  releaseWrite(): void {
    const view = this.view;
    const head = this.#writers.first;
    if (head !== undefined && head.hasTicket && Atomics.load(view, SERVING) === head.ticket) {
      // Direct handoff: the head of this attachment's queue is the head of the
      // shared queue. The write hold passes to it in one CAS (the tag changes,
      // one queued writer fewer) without the lock ever being free.
      const t = head.ticket;
      const tag = TICKET_TAG | (t & RING_MASK);
      const change = tag - this.#writeTag - QUEUED_ONE;
      for (;;) {
        const s = Atomics.load(view, STATE);
        if (Atomics.compareExchange(view, STATE, s, s + change) === s) break;
      }
      this.#writeTag = tag;
      this.#passHead(t);
      this.#writers.serve();
      this.#topUp();
      return;
    }
    this.#afterUnwrite(Atomics.sub(view, STATE, WRITER + this.#writeTag));
    if (this.#readers.size !== 0) this.#admitReaders();
    if (this.#writeWatching && this.#writers.size === 0) this.#endWriterWatch();
  }

  /**
   * The writer queue ran empty while the watcher waits on WSEQ (its waiters
   * were served by handoffs, or gave up): wake it so that it ends and its
   * W_SLEEPERS count goes (other sleepers on WSEQ look again and wait on).
   */
  #endWriterWatch(): void {
    Atomics.notify(this.view, WSEQ);
  }

  /** Wakes whoever a write hold leaving (STATE was `prev`) may let in. */
  #afterUnwrite(prev: number): void {
    if (hasQueuedWriters(prev)) this.#writerEvent();
    else this.#readerEvent();
  }

  /** Turns the write hold into a read hold, letting no writer in between. */
  downgrade(): void {
    const view = this.view;
    // The change and its record run with no call between them (see "Dead Workers").
    const prev = Atomics.add(view, STATE, 1 - WRITER - this.#writeTag);
    const reads = ++this.#reads;
    if (this.#recorded) view[READS + this.id] = reads;
    if (!hasQueuedWriters(prev)) this.#readerEvent();
    if (this.#readers.size !== 0) this.#admitReaders();
  }

  #writerEvent(): void {
    Atomics.add(this.view, WSEQ, 1);
    if (Atomics.load(this.view, W_SLEEPERS) !== 0) Atomics.notify(this.view, WSEQ);
  }

  #spinWrite(): boolean {
    for (let i = 0; i < SPIN; i++) {
      if (Atomics.load(this.view, STATE) === 0 && this.tryWrite()) return true;
    }
    return false;
  }

  /**
   * Joins the queue: one more queued writer in STATE (revoking the bias), a
   * ticket, its owner (no call between).
   */
  #enqueue(): number {
    const view = this.view;
    for (;;) {
      const s = Atomics.load(view, STATE);
      const next = isBiased(s) ? s + QUEUED_ONE - BIASED + SCAN : s + QUEUED_ONE;
      if (Atomics.compareExchange(view, STATE, s, next) === s) break;
    }
    const t = Atomics.add(view, NEXT_TICKET, 1);
    view[OWNERS + (t & RING_MASK)] = this.id;
    Atomics.store(view, RING + (t & RING_MASK), live(t));
    return t;
  }

  /** Whether a ticket may be drawn without its ring slot clashing with a live one. */
  #ringHasRoom(): boolean {
    const inFlight = (Atomics.load(this.view, NEXT_TICKET) - Atomics.load(this.view, SERVING)) | 0;
    return inFlight < RING_LIMIT;
  }

  /** The head (ticket t) takes the lock if nobody holds it. */
  #tryTakeAsHead(t: number): boolean {
    const view = this.view;
    if (Atomics.load(view, SERVING) !== t) return false;
    let scanned = false;
    for (;;) {
      const s = Atomics.load(view, STATE);
      if (!isWriteLockable(s)) return false;
      // While this writer queues BIASED stays clear: once the slots were seen
      // empty, they stay so.
      const scan = s & SCAN;
      if (scan !== 0 && !scanned) {
        if (!this.#slotsEmpty()) return false;
        scanned = true;
      }
      const tag = TICKET_TAG | (t & RING_MASK);
      const next = s - QUEUED_ONE + WRITER + tag - scan;
      if (Atomics.compareExchange(view, STATE, s, next) === s) {
        this.#writeTag = tag;
        this.#passHead(t);
        return true;
      }
    }
  }

  /** Moves SERVING past ticket t and past every cancelled ticket after it. */
  #passHead(t: number): void {
    const view = this.view;
    for (let next = (t + 1) | 0;; next = (next + 1) | 0) {
      Atomics.store(view, SERVING, next);
      const slot = next & RING_MASK;
      if (Atomics.compareExchange(view, RING + slot, next, empty(slot)) !== next) return;
    }
  }

  /** Withdraws ticket t (its writer gave up or died); does nothing if t was cancelled already. */
  cancel(t: number): void {
    const view = this.view;
    const slot = t & RING_MASK;
    // The mark and the count run with no call between them (see "Dead Workers").
    if (Atomics.compareExchange(view, RING + slot, live(t), t) !== live(t)) return;
    const prev = Atomics.sub(view, STATE, QUEUED_ONE);
    if (
      Atomics.load(view, SERVING) === t &&
      Atomics.compareExchange(view, RING + slot, t, empty(slot)) === t
    ) {
      this.#passHead(t);
      this.#writerEvent();
    }
    if ((prev & QUEUED_MASK) === QUEUED_ONE && !isWriteLocked(prev)) this.#readerEvent();
  }

  #writeContendedSync(timeout: number): boolean {
    if (this.#spinWrite()) return true;
    const view = this.view;
    const deadline = performance.now() + timeout;
    while (!this.#ringHasRoom()) {
      if (performance.now() >= deadline) return false;
      sleepSync(1);
    }
    const t = this.#enqueue();
    Atomics.add(view, W_SLEEPERS, 1);
    try {
      for (;;) {
        const seq = Atomics.load(view, WSEQ);
        if (this.#tryTakeAsHead(t)) return true;
        const left = deadline - performance.now();
        if (left <= 0) {
          this.cancel(t);
          return false;
        }
        Atomics.wait(view, WSEQ, seq, left);
      }
    } finally {
      Atomics.sub(view, W_SLEEPERS, 1);
    }
  }

  /** Draws a ticket for a queued async writer of this attachment. */
  #ticket(waiter: Waiter): void {
    waiter.ticket = this.#enqueue();
    waiter.hasTicket = true;
  }

  /** Draws tickets for queued writers that have none, in queue order, while the ring has room. */
  #topUp(): void {
    let waiter = this.#unticketed;
    while (waiter !== undefined && this.#ringHasRoom()) {
      this.#ticket(waiter);
      waiter = waiter.next;
    }
    this.#unticketed = waiter;
  }

  /** A queued async writer timed out or was aborted: withdraw its ticket. */
  #writerGaveUp(waiter: Waiter): void {
    if (waiter === this.#unticketed) this.#unticketed = waiter.next;
    if (waiter.hasTicket) this.cancel(waiter.ticket);
    if (this.#writers.size === 0) this.#endWriterWatch();
  }

  /** Gives the lock to the head of this attachment's writer queue if its ticket may take it. */
  #serveWriters(): boolean {
    const head = this.#writers.first!;
    if (!head.hasTicket || !this.#tryTakeAsHead(head.ticket)) return false;
    this.#writers.serve();
    this.#topUp();
    return true;
  }

  /**
   * The writer watcher: the one async wait of this attachment on WSEQ. Takes
   * the lock for the head of the writer queue when its ticket comes up and
   * the lock is free; ends when it finds the writer queue empty.
   */
  async #watchWriters(): Promise<void> {
    const view = this.view;
    const queue = this.#writers;
    this.#writeWatching = true;
    Atomics.add(view, W_SLEEPERS, 1);
    try {
      while (queue.size !== 0) {
        const seq = Atomics.load(view, WSEQ);
        this.#topUp();
        if (this.#serveWriters()) continue;
        const wait = Atomics.waitAsync(view, WSEQ, seq);
        if (wait.async) await wait.value;
      }
    } finally {
      Atomics.sub(view, W_SLEEPERS, 1);
      this.#writeWatching = false;
    }
  }

  // ---- recovery ------------------------------------------------------------

  /**
   * Releases every hold of attachment `id` and withdraws its queued tickets.
   * Meant for an attachment whose Worker is gone: a live one would be robbed.
   * Returns how many holds and tickets were undone.
   */
  forceRelease(id: number): number {
    const view = this.view;
    if (id <= 0) return 0;
    let undone = 0;
    // 1. Its write hold, found by the tag in STATE.
    for (let s = Atomics.load(view, STATE); isWriteLocked(s);) {
      const tag = s & TAG_MASK;
      const ticketHold = (tag & TICKET_TAG) !== 0;
      if (ticketHold ? view[OWNERS + (tag & RING_MASK)] !== id : tag === 0 || tag !== id) break;
      const serving = Atomics.load(view, SERVING);
      // Took the lock as head but died before passing the head on: pass it on.
      if (ticketHold && (serving & RING_MASK) === (tag & RING_MASK)) this.#passHead(serving);
      const seen = Atomics.compareExchange(view, STATE, s, s - WRITER - tag);
      if (seen === s) {
        this.#afterUnwrite(s);
        undone++;
        break;
      }
      s = seen; // queued writers came or went: look again
    }
    // 2. Its read holds, from its record.
    if (id <= RECORDED_IDS) {
      const reads = view[READS + id];
      if (reads > 0) {
        view[READS + id] = 0;
        if (id === this.id) this.#reads = 0;
        this.#afterUnread(Atomics.sub(view, STATE, reads), reads);
        undone += reads;
      }
    }
    // 2b. Its biased read holds, from its slot.
    if (id <= SLOT_IDS) {
      const slot = slotOf(id);
      const biased = Atomics.load(view, slot);
      if (biased > 0) {
        Atomics.store(view, slot, 0);
        if (id === this.id) this.#biased = 0;
        this.#afterSlotEmptied();
        undone += biased;
      }
    }
    // 3. A cancelled head that a passer which died mid-pass left unskipped.
    const head = Atomics.load(view, SERVING);
    const headSlot = head & RING_MASK;
    if (
      Atomics.load(view, RING + headSlot) === head &&
      Atomics.compareExchange(view, RING + headSlot, head, empty(headSlot)) === head
    ) {
      this.#passHead(head);
      this.#writerEvent();
    }
    // 4. Its tickets still in the queue.
    const end = Atomics.load(view, NEXT_TICKET);
    for (let t = Atomics.load(view, SERVING); t !== end; t = (t + 1) | 0) {
      const slot = t & RING_MASK;
      if (view[OWNERS + slot] === id && Atomics.load(view, RING + slot) === live(t)) {
        this.cancel(t);
        undone++;
      }
    }
    return undone;
  }
}
