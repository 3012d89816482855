// The raw process-lock state machine, under the public classes in
// interprocess_lock.ts and interprocess_reader_writer_lock.ts.
//
// One LockFile per absolute path per isolate. It keeps at most one idle
// descriptor open between acquisitions (opening costs microseconds, most of
// fasteners' 15 µs), and counts this isolate's holders so that a blocking
// sync acquisition that only this thread could ever grant throws instead of
// freezing it.
//
// Every acquisition locks through a descriptor of its own, taken from the
// idle slot or freshly opened: the kernel's locks belong to the open file
// description, so two acquisitions in one isolate (two lock objects, or two
// async tasks on one object) exclude each other exactly as two processes do.
// Released descriptors go back to the idle slot, or are closed when it is
// full, when no lock object on the path is left, or on Windows (where an open
// handle keeps the file and its folder from being deleted).
//
// Waiting rooms: how the queue, the cap and the kernel interact.
//
// An async acquisition that finds the lock busy does not wait in the kernel
// on its own: it joins the waiting room of its file and mode (exclusive or
// shared), a FIFO queue in this isolate. Each room has at most one kernel
// wait in flight: a `nonblocking` FFI call (fcntl F_OFD_SETLKW, flock,
// LockFileEx) on a descriptor of its own, parked on a thread of Deno's
// blocking pool. When the kernel grants it, the room hands that descriptor,
// locked, to the waiter at the head of its queue, and parks a new wait for
// the next one while the new holder works; the holder's release then wakes
// that wait at kernel speed, just as it wakes waiters in other processes,
// which keep their fair chance at the lock. Waiters of one isolate are so
// served in arrival order, one kernel wait per file and mode however many
// they are. (The first waiter of an empty room parks the room's wait itself
// and gets the grant straight back, so that a lone waiter's handoff runs as
// little JavaScript as a bare `nonblocking` call; it is the head all the same.)
//
// Readers: when a room of shared waiters is granted (a writer left), the head
// gets the granted descriptor, and every other waiting reader of the room
// gets in at once through a one-shot try on a descriptor of its own, which
// cannot fail while this isolate holds the shared lock: no kernel wait each.
//
// The cap: all the rooms of the isolate together park at most
// MAX_KERNEL_WAITS calls (_kernel_waits.ts explains 4), since about 32 parked
// calls use up the pool that Deno's async file operations need too. A room
// that wants to park and finds the cap reached queues there for a slot (freed
// slots are handed over in arrival order) and meanwhile polls: one try per
// room, never per waiter, on the one poll timer of the isolate, paced by its
// head waiter's `delay` and `maxDelay`. A room thus never waits for a slot
// alone, which could be held for ever by rooms of files that stay locked.
//
// Who may park: a parked call cannot be cancelled; it keeps its pool thread,
// its descriptor and the process alive until the kernel grants it. So a room
// parks only while it holds at least one waiter that waits forever (no
// timeout, no signal): that waiter stays until served, so a granted wait
// always finds someone to serve, and a process whose other waiters all time
// out or abort is never kept alive by a wait nobody needs. Timed and
// abortable waiters wait in the same room, in the same order: they ride on a
// parked wait when there is one, and the room polls for them when there is
// not. A timeout or abort removes the waiter from the queue, taking nothing;
// at its deadline a waiter at the head makes one last try.
//
// A SIGKILLed holder in another process: the kernel drops its locks and
// grants the parked wait (or the next poll succeeds), like any release.
//
// Sync waits do not use the rooms: `lockSync` blocks its thread in the kernel
// (or polls with a timeout). It refuses to wait forever while this isolate
// holds a conflicting lock or has a conflicting kernel wait parked: that wait
// could be granted while the thread is blocked, to a waiter that could then
// never run to release it.

import { type Handle, mechanism, openLockFile } from "../../ffi/mod.ts";

export type { Handle };
import { AsyncLocalStorage } from "node:async_hooks";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { badArgument, misuse } from "../../errors.ts";
import type { Guard } from "../guard.ts";
import { MAX_TIMER, pollSync, sleep, type Waiting, waitsForever } from "../_options.ts";
import { queueForKernelWait, returnKernelWait, tryTakeKernelWait } from "./_kernel_waits.ts";

/** One lock file (or one byte of it) as this isolate sees it. */
export class LockFile {
  readonly path: string;
  /**
   * The byte this LockFile locks (the mechanism's `slot`), or undefined for
   * the whole lock. The reader-writer lock's gate and data bytes are two
   * LockFiles of one path, each with its own descriptors and rooms.
   */
  readonly slot: number | undefined;
  readonly #key: string;
  /** Live lock objects on this path; the idle descriptor is closed at 0. */
  users = 0;
  /** This isolate's exclusive holders (0 or 1). */
  writers = 0;
  /** This isolate's shared holders. */
  readers = 0;
  /** The waiting rooms of async acquisitions: exclusive, shared. */
  readonly #rooms: readonly [Room, Room];
  #idle: Handle | undefined;

  private constructor(path: string, slot: number | undefined, key: string) {
    this.path = path;
    this.slot = slot;
    this.#key = key;
    this.#rooms = [new Room(this, true), new Room(this, false)];
  }

  /**
   * The LockFile of `path` (of its byte `slot`, when given), counting `owner`
   * as a user until it is collected.
   */
  static for(path: string, owner: object, slot?: number): LockFile {
    const key = slot === undefined ? path : `${path}\0${slot}`;
    let file = files.get(key);
    if (file === undefined) files.set(key, file = new LockFile(path, slot, key));
    file.users++;
    collector.register(owner, file);
    return file;
  }

  /** Whether async acquisitions of this isolate wait in the room of this mode. */
  queued(exclusive: boolean): boolean {
    return !this.#rooms[exclusive ? 0 : 1].empty;
  }

  /** A descriptor to lock through: the idle one, or a new one. */
  take(): Handle {
    const handle = this.#idle;
    if (handle === undefined) return openLockFile(this.path);
    this.#idle = undefined;
    return handle;
  }

  /** Puts back a descriptor that holds no lock. */
  give(handle: Handle): void {
    const m = mechanism();
    if (this.#idle === undefined && this.users > 0 && m.keepsIdleHandles) this.#idle = handle;
    else m.close(handle);
  }

  /** Counts a descriptor that now holds the lock as held by this isolate. */
  held(handle: Handle, exclusive: boolean): Handle {
    if (exclusive) this.writers++;
    else this.readers++;
    return handle;
  }

  /**
   * Whether this isolate holds, or waits in the kernel for, a lock that
   * conflicts with the one asked for: a blocking sync wait would then wait
   * for this very thread, which it blocks.
   */
  #heldHere(exclusive: boolean): boolean {
    // The whole lock overlaps every byte of its file: an InterProcessLock and
    // a reader-writer lock on one path are LockFiles of their own.
    for (const other of files.values()) {
      if (
        other.path === this.path &&
        (other.slot === undefined || this.slot === undefined || other.slot === this.slot) &&
        other.#holdsHere(exclusive)
      ) return true;
    }
    return false;
  }

  #holdsHere(exclusive: boolean): boolean {
    const [writers, readers] = this.#rooms;
    return this.writers > 0 || writers.parked ||
      (exclusive && (this.readers > 0 || readers.parked));
  }

  /** One attempt. @returns the handle that holds the lock, or undefined when busy. */
  tryLock(exclusive: boolean): Handle | undefined {
    const handle = this.take();
    let locked = false;
    try {
      locked = mechanism().tryLock(handle, exclusive, this.path, this.slot);
    } finally {
      if (!locked) this.give(handle);
    }
    return locked ? this.held(handle, exclusive) : undefined;
  }

  /**
   * One attempt to lock this byte and `next`, the byte after it, in one call
   * on one descriptor (the mechanism's `tryLockPair`), counted as held by
   * both LockFiles; release it with `unlockPair`.
   *
   * @returns the handle that holds both, undefined when either is busy, or
   *   null where the OS has no such call.
   */
  tryLockPair(exclusive: boolean, next: LockFile): Handle | undefined | null {
    const lockPair = mechanism().tryLockPair;
    if (lockPair === undefined || this.slot === undefined || next.slot !== this.slot + 1) {
      return null;
    }
    const handle = this.take();
    let locked = false;
    try {
      locked = lockPair(handle, exclusive, this.path, this.slot);
    } finally {
      if (!locked) this.give(handle);
    }
    if (!locked) return undefined;
    next.held(handle, exclusive);
    return this.held(handle, exclusive);
  }

  /** Unlocks what `tryLockPair` locked and puts the descriptor back; as `unlock`, for both bytes. */
  unlockPair(handle: Handle, exclusive: boolean, next: LockFile): void {
    for (const file of [this, next]) {
      if (exclusive) file.writers--;
      else file.readers--;
    }
    try {
      mechanism().unlockPair!(handle, this.path, this.slot!);
    } finally {
      this.give(handle);
      for (const file of [this, next]) for (const room of file.#rooms) pollSoon(room);
    }
  }

  /**
   * Whether a `tryLock` in this mode would succeed now, asked without taking
   * the lock (one call on the idle descriptor, which holds nothing); undefined
   * where the OS cannot tell (the mechanism's `wouldLock`).
   */
  wouldLock(exclusive: boolean): boolean | undefined {
    const test = mechanism().wouldLock;
    if (test === undefined) return undefined;
    const handle = this.take();
    try {
      return test(handle, exclusive, this.path, this.slot);
    } finally {
      this.give(handle);
    }
  }

  /**
   * Waits (blocking the thread) as `w` says.
   *
   * @returns the handle, or undefined when busy or timed out.
   * @throws {LockError} when waiting forever could only deadlock this thread.
   */
  lockSync(exclusive: boolean, w: Waiting, name: string): Handle | undefined {
    w.signal?.throwIfAborted();
    // Fast path: one non-blocking attempt.
    const handle = this.tryLock(exclusive);
    if (handle !== undefined || !w.blocking || w.timeout === 0) return handle;
    // A signal cannot fire while this thread is blocked: only a timeout ends a sync wait.
    if (w.timeout !== Infinity) return this.#pollSync(exclusive, w);
    if (this.#heldHere(exclusive)) {
      throw misuse(
        name,
        "this thread already holds (or waits in acquire() for) a conflicting lock on this file, " +
          "so a blocking acquisition with no timeout would wait forever; release it first or " +
          "pass a timeout",
        this.path,
      );
    }
    const waiting = this.take();
    try {
      mechanism().lockSync(waiting, exclusive, this.path, this.slot);
    } catch (error) {
      this.give(waiting);
      throw error;
    }
    return this.held(waiting, exclusive);
  }

  #pollSync(exclusive: boolean, w: Waiting): Handle | undefined {
    let handle: Handle | undefined;
    pollSync(() => (handle = this.tryLock(exclusive)) !== undefined, w);
    return handle;
  }

  /**
   * Waits without blocking the event loop, in the waiting room of the mode
   * (see the header). Arrivals queue behind waiters already there.
   *
   * @returns the handle, or undefined when busy or timed out.
   * @throws the signal's reason when it aborts; {LockError} when the OS refuses.
   */
  lock(exclusive: boolean, w: Waiting): Promise<Handle | undefined> {
    w.signal?.throwIfAborted();
    const room = this.#rooms[exclusive ? 0 : 1];
    const once = !w.blocking || w.timeout === 0;
    // Fast path: one non-blocking attempt, unless waiters are already queued
    // (a blocking arrival must not pass them).
    if (once || room.empty) {
      const handle = this.tryLock(exclusive);
      if (handle !== undefined || once) return Promise.resolve(handle);
    }
    // Fast path for the first to wait: with nobody queued and a kernel slot
    // free, it parks the room's kernel wait itself and gets its result straight
    // back (the fewest steps between the kernel's grant and the caller); later
    // arrivals queue behind it.
    if (room.empty && !room.parked && waitsForever(w) && tryTakeKernelWait()) {
      return room.parkFirst();
    }
    return room.wait(w);
  }

  /**
   * Unlocks `handle` and puts it back. The counts drop even when the OS
   * complains. Rooms of this file that poll poll again at once: the lock may
   * be theirs now (a parked room is woken by the kernel instead).
   */
  unlock(handle: Handle, exclusive: boolean): void {
    if (exclusive) this.writers--;
    else this.readers--;
    try {
      mechanism().unlock(handle, this.path, this.slot);
    } finally {
      this.give(handle);
      for (const room of this.#rooms) pollSoon(room);
    }
  }

  /** Drops a lock nobody is left to take: closing the descriptor releases it, whatever happens. */
  discard(handle: Handle, exclusive: boolean): void {
    if (exclusive) this.writers--;
    else this.readers--;
    const m = mechanism();
    // Windows' close unlocks byte 0 only: a slot is unlocked first (a failure changes nothing).
    if (this.slot !== undefined) {
      try {
        m.unlock(handle, this.path, this.slot);
      } catch { /* closing releases it in the end */ }
    }
    m.close(handle);
  }

  /**
   * Waits for a lock whose wait is known to be short, outside the rooms:
   * the reader-writer lock's writer, holding the gate, waits here for the
   * data byte, which only readers that passed the gate before it still hold.
   * It parks a kernel wait, which skips the room's queue (the gate lets one
   * such writer of the isolate in at a time) but not the isolate's cap: when
   * the cap is reached it tries every millisecond instead. For a caller that
   * waits forever only: a parked wait cannot be taken back.
   *
   * @returns the handle, holding the lock.
   * @throws {LockError} when the OS refuses.
   */
  async lockBounded(exclusive: boolean): Promise<Handle> {
    const m = mechanism();
    const handle = this.take();
    try {
      for (;;) {
        if (m.tryLock(handle, exclusive, this.path, this.slot)) break;
        if (!tryTakeKernelWait()) {
          // A pool-thread pause where the OS layer has one: setTimeout(1) takes about 2 ms.
          await (m.pause?.(1) ?? sleep(1));
          continue;
        }
        let locked: boolean;
        try {
          locked = await m.lock(handle, exclusive, this.slot);
        } finally {
          returnKernelWait();
        }
        if (locked) break;
        // Interrupted (errno is lost): the try at the top of the loop tells busy from a refusal.
      }
    } catch (error) {
      this.give(handle);
      throw error;
    }
    return this.held(handle, exclusive);
  }

  /** Called when the last lock object on the path is collected. */
  retire(): void {
    if (--this.users > 0) return;
    const handle = this.#idle;
    this.#idle = undefined;
    if (handle !== undefined) mechanism().close(handle);
    const [writers, readers] = this.#rooms;
    if (this.writers === 0 && this.readers === 0 && writers.empty && readers.empty) {
      files.delete(this.#key);
    }
  }
}

/** An async acquisition in a waiting room. */
interface Waiter {
  readonly w: Waiting;
  /** No timeout and no signal: it leaves only when served, so it may park a kernel wait. */
  readonly forever: boolean;
  readonly resolve: (handle: Handle | undefined) => void;
  readonly reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  onAbort: (() => void) | undefined;
}

/** The waiting room of one lock file and mode in this isolate (see the header). */
class Room {
  readonly #file: LockFile;
  readonly #exclusive: boolean;
  /** Waiting acquisitions, in arrival order (a Set: an abort removes one in O(1)). */
  readonly #queue = new Set<Waiter>();
  /** How many queued waiters wait forever; the room parks only while there is one. */
  #forever = 0;
  /** A kernel wait of this room is in flight (holding one of the isolate's slots). */
  parked = false;
  /** Withdraws the room's request for a kernel slot, while it queues for one. */
  #slotRequest: (() => void) | undefined;
  /** Polls made since the room started polling (for backoff). */
  polls = 0;
  /** When the room's next poll is due (performance.now() ms). */
  due = 0;

  constructor(file: LockFile, exclusive: boolean) {
    this.#file = file;
    this.#exclusive = exclusive;
  }

  get empty(): boolean {
    return this.#queue.size === 0;
  }

  #head(): Waiter | undefined {
    for (const waiter of this.#queue) return waiter;
    return undefined;
  }

  /** Queues an acquisition; settles when it is served, times out or aborts. */
  wait(w: Waiting): Promise<Handle | undefined> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        w,
        forever: waitsForever(w),
        resolve,
        reject,
        timer: undefined,
        onAbort: undefined,
      };
      this.#queue.add(waiter);
      if (waiter.forever) this.#forever++;
      if (w.timeout !== Infinity) this.#armDeadline(waiter, performance.now() + w.timeout);
      if (w.signal !== undefined) {
        const signal = w.signal;
        waiter.onAbort = () => {
          this.#leave(waiter);
          reject(signal.reason);
          this.pump();
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.pump();
    });
  }

  #armDeadline(waiter: Waiter, deadline: number): void {
    const left = Math.max(0, deadline - performance.now());
    // setTimeout holds at most MAX_TIMER ms: a longer timeout re-arms.
    waiter.timer = left > MAX_TIMER
      ? setTimeout(() => this.#armDeadline(waiter, deadline), MAX_TIMER)
      : setTimeout(() => this.#timedOut(waiter), left);
  }

  #timedOut(waiter: Waiter): void {
    waiter.timer = undefined;
    // A last try at the deadline, by the head only: others would pass it.
    if (this.#head() === waiter && this.#attempt()) return;
    if (!this.#queue.has(waiter)) return; // the last try served or failed it
    this.#leave(waiter);
    waiter.resolve(undefined);
    this.pump();
  }

  /** Takes a waiter out of the queue, with its timer and abort listener. */
  #leave(waiter: Waiter): void {
    this.#queue.delete(waiter);
    if (waiter.forever) this.#forever--;
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    if (waiter.onAbort !== undefined) waiter.w.signal!.removeEventListener("abort", waiter.onAbort);
  }

  /** Makes sure a queued room is being served: by a parked kernel wait, else by polls. */
  pump(): void {
    if (this.#queue.size === 0) {
      stopPolling(this);
      this.#withdraw();
      return;
    }
    if (this.parked) return;
    if (this.#forever > 0) {
      if (this.#slotRequest === undefined) {
        if (tryTakeKernelWait()) return this.#park();
        this.#slotRequest = queueForKernelWait(() => this.#granted());
      }
    } else {
      this.#withdraw();
    }
    startPolling(this);
  }

  #withdraw(): void {
    this.#slotRequest?.();
    this.#slotRequest = undefined;
  }

  /** Handed a kernel slot by another room's returnKernelWait(). Must not throw. */
  #granted(): void {
    this.#slotRequest = undefined;
    if (this.parked || this.#forever === 0) returnKernelWait();
    else this.#park();
  }

  /**
   * The fast path of {@linkcode LockFile.lock}: the caller, first in an empty
   * room, has taken a kernel slot; it parks the room's kernel wait and is the
   * head the grant goes to. Waiters that arrive meanwhile queue behind it.
   */
  async parkFirst(): Promise<Handle> {
    const file = this.#file;
    const m = mechanism();
    let handle: Handle | undefined;
    this.parked = true;
    try {
      handle = file.take();
      for (;;) {
        if (await m.lock(handle, this.#exclusive, file.slot)) break;
        // As in #parkEnded: a sync try tells an interruption (busy) from a refusal (throws).
        if (m.tryLock(handle, this.#exclusive, file.path, file.slot)) break;
        await sleep(1);
      }
    } catch (error) {
      if (handle !== undefined) file.give(handle);
      this.parked = false;
      returnKernelWait();
      this.pump();
      throw error;
    }
    this.parked = false;
    returnKernelWait();
    file.held(handle, this.#exclusive);
    // Nothing else to do unless others queued meanwhile (a parked room neither
    // polls nor asks for a slot): the handoff's latency is this path's length.
    if (this.#queue.size > 0) {
      if (this.#exclusive) this.pump();
      // Readers that queued meanwhile get in too, right after this one: a
      // microtask queued now runs before the caller's continuation, and the
      // readers it lets in continue after it, in arrival order.
      else {
        queueMicrotask(() => {
          this.#admitReaders();
          this.pump();
        });
      }
    }
    return handle;
  }

  /** Parks the room's kernel wait; it owns one slot until the call returns. */
  #park(): void {
    stopPolling(this);
    const file = this.#file;
    let handle: Handle;
    try {
      handle = file.take();
    } catch (error) {
      returnKernelWait();
      this.#fail(error);
      return;
    }
    this.parked = true;
    mechanism().lock(handle, this.#exclusive, file.slot).then(
      (locked) => this.#parkEnded(handle, locked, undefined),
      (error) => this.#parkEnded(handle, false, error ?? new Error("kernel wait failed")),
    );
  }

  #parkEnded(handle: Handle, locked: boolean, error: unknown): void {
    this.parked = false;
    const file = this.#file;
    if (!locked && error === undefined) {
      // errno is lost across the pool thread: a sync try tells whether the
      // wait was only interrupted (busy: wait again) or the OS refuses (throws).
      try {
        locked = mechanism().tryLock(handle, this.#exclusive, file.path, file.slot);
      } catch (e) {
        error = e;
      }
    }
    // The slot goes back first, so rooms queued for one are served before this one parks again.
    returnKernelWait();
    if (locked) {
      this.#serve(file.held(handle, this.#exclusive));
      this.pump();
      return;
    }
    file.give(handle);
    if (error !== undefined) {
      this.#fail(error);
      this.pump();
    } else {
      setTimeout(() => this.pump(), 1); // interrupted: wait again shortly, not in a tight loop
    }
  }

  /** One poll (or a last try). @returns whether it served someone. */
  #attempt(): boolean {
    let handle: Handle | undefined;
    try {
      handle = this.#file.tryLock(this.#exclusive);
    } catch (error) {
      this.#fail(error);
      this.pump();
      return false;
    }
    if (handle === undefined) return false;
    this.#serve(handle);
    this.pump();
    return true;
  }

  /** Called by the poll timer when this room's poll is due. */
  poll(): void {
    if (this.#queue.size === 0 || this.#attempt()) return;
    this.polls++;
    this.due = performance.now() + this.nextDelay();
  }

  /** The wait before the next poll: the head's `delay` times the polls made, at most its `maxDelay`. */
  nextDelay(): number {
    const w = this.#head()?.w;
    return w === undefined ? 0 : Math.min(w.delay * this.polls, w.maxDelay);
  }

  /** The head waiter gets the error the OS gave for its attempt. */
  #fail(error: unknown): void {
    const head = this.#head();
    if (head === undefined) return;
    this.#leave(head);
    head.reject(error);
  }

  /**
   * Hands `handle`, which holds the lock, to the head waiter; a shared lock
   * also lets every other waiting reader in at once.
   */
  #serve(handle: Handle): void {
    const file = this.#file;
    const head = this.#head();
    if (head === undefined) {
      file.discard(handle, this.#exclusive); // all timed out or aborted meanwhile
      return;
    }
    this.#leave(head);
    head.resolve(handle);
    if (!this.#exclusive) this.#admitReaders();
  }

  /** While this isolate holds the shared lock: lets every waiting reader in, each on a descriptor of its own. */
  #admitReaders(): void {
    const file = this.#file;
    for (const next of this.#queue) {
      let shared: Handle | undefined;
      try {
        shared = file.tryLock(false);
      } catch (error) {
        this.#leave(next);
        next.reject(error);
        continue;
      }
      // Cannot be busy while this isolate holds the shared lock, barring a
      // release meanwhile; then the rest wait on as before.
      if (shared === undefined) break;
      this.#leave(next);
      next.resolve(shared);
    }
  }
}

// The one poll timer of the isolate, shared by every room that polls.

const polling = new Set<Room>();
let pollTimer: ReturnType<typeof setTimeout> | undefined;
let pollTimerAt = Infinity;

function startPolling(room: Room): void {
  if (polling.has(room)) return;
  room.polls = 1;
  room.due = performance.now() + room.nextDelay();
  polling.add(room);
  schedulePolls();
}

/** Makes a polling room's next poll due now, its backoff restarted. */
function pollSoon(room: Room): void {
  if (!polling.has(room)) return;
  room.polls = 1;
  room.due = performance.now();
  schedulePolls();
}

function stopPolling(room: Room): void {
  if (!polling.delete(room) || polling.size > 0 || pollTimer === undefined) return;
  clearTimeout(pollTimer); // nothing left to poll: let the process end
  pollTimer = undefined;
  pollTimerAt = Infinity;
}

function schedulePolls(): void {
  let next = Infinity;
  for (const room of polling) next = Math.min(next, room.due);
  if (next === Infinity || (pollTimer !== undefined && pollTimerAt <= next)) return;
  if (pollTimer !== undefined) clearTimeout(pollTimer);
  pollTimerAt = next;
  pollTimer = setTimeout(runPolls, Math.max(0, next - performance.now()));
}

function runPolls(): void {
  pollTimer = undefined;
  pollTimerAt = Infinity;
  const now = performance.now();
  for (const room of [...polling]) if (polling.has(room) && room.due <= now) room.poll();
  schedulePolls();
}

const files = new Map<string, LockFile>();
const collector = new FinalizationRegistry<LockFile>((file) => file.retire());

/**
 * The absolute path of a lock file given as a string or `file:` URL.
 *
 * @throws {TypeError} for an empty path, a NUL byte, another type or URL scheme.
 */
export function lockFilePath(path: string | URL): string {
  if (path instanceof URL) {
    if (path.protocol !== "file:") {
      throw badArgument("type", "path", path.href, "a file: URL or a path string");
    }
    path = fileURLToPath(path);
  }
  if (typeof path !== "string") throw badArgument("type", "path", path, "a string or file: URL");
  if (path === "") throw badArgument("type", "path", path, "a non-empty path");
  if (path.includes("\0")) throw badArgument("type", "path", path, "a path without NUL bytes");
  return resolve(path);
}

/** The process locks held by the current async chain inside `with…` callbacks. */
const heldHere = new AsyncLocalStorage<ReadonlyMap<string, boolean>>();

/**
 * Runs `fn` holding `file` (exclusively or shared), reentrantly: a nested
 * `with…` on the same file in the same async chain runs at once when what is
 * held covers it, and an upgrade from shared to exclusive is refused.
 */
export async function withLockFile<T>(
  file: LockFile,
  exclusive: boolean,
  acquire: () => Promise<Guard>,
  fn: () => T | Promise<T>,
  name: string,
): Promise<T> {
  if (typeof fn !== "function") throw badArgument("type", "fn", fn, "a function");
  const held = heldHere.getStore();
  const holds = held?.get(file.path);
  if (holds === true || (holds === false && !exclusive)) return await fn();
  if (holds === false) {
    throw misuse(
      name,
      "this async chain holds the read lock: taking the write lock inside it would deadlock",
      file.path,
    );
  }
  const guard = await acquire();
  try {
    return await heldHere.run(new Map(held).set(file.path, exclusive), fn);
  } finally {
    guard.release();
  }
}
