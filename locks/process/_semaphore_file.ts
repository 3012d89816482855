// The raw process-semaphore state machine, under the public class in
// interprocess_semaphore.ts.
//
// Slots. A semaphore of N slots on `path` is N exclusive one-byte locks:
// slot k is byte k of the file (Linux OFD fcntl, Windows LockFileEx), or,
// where the OS has no byte ranges (macOS flock), the whole file
// `<path>.slot-<k>` (`path` itself is opened once, so that a bad path fails
// the same way everywhere). The file is never written. Every acquisition locks one
// slot through a descriptor of its own, so Workers, objects and async tasks
// count as separate holders, and the kernel frees a dead holder's slot at once
// (SIGKILL included). An attempt tries the slots from 0 up: the first free
// one is taken. Every user of a path must pass the same N: one that thinks
// there are more slots takes bytes the others never look at.
//
// Waiting. A kernel wait cannot wait for "any of N bytes", and an FFI wait
// cannot be cancelled, so a waiter cannot simply park on a slot. Instead:
// - The turnstile is one more exclusive byte (offset MAX_SLOT = 1024, beyond
//   every slot; `<path>.turnstile` on macOS). Its holder is the one waiter
//   that polls the slots, often (sync: sleeps of 50 µs doubling to 1 ms;
//   async: 1 ms timers), and takes the first that frees. Waiters in other
//   processes and Workers queue for the turnstile in the kernel (one blocking
//   wait, or one parked `nonblocking` FFI call under the isolate's cap in
//   _kernel_waits.ts), so only one poller per isolate and path is ever awake.
// - In one isolate, every `acquire()` that waits forever queues here, FIFO,
//   behind a single driver: the driver takes the turnstile (parking at most
//   one kernel wait for all of them, so many async waiters never take the
//   blocking thread pool hostage), polls, hands each freed slot to the head
//   of the queue, and lets the turnstile go when the queue is empty. When the
//   cap on parked kernel waits is reached, the driver polls the turnstile.
// - A wait with a timeout or a signal polls the slots itself with its own
//   backoff (options.delay, options.maxDelay), outside the queue: nothing of
//   it is pending once it gives up, so a process whose only waiters are timed
//   exits when they time out.
// - A blocking `acquireSync()` with no timeout waits for the turnstile in the
//   kernel on its own thread, then polls; if this isolate's async driver is
//   active (its parked wait could never be resumed while this thread blocks),
//   it polls the slots directly instead. It throws when this isolate already
//   holds every slot: only this thread could free one.
// Cost of polling: one tryLock per slot per poll, on a descriptor the poller
// keeps between polls; with 1 ms polls and N slots, N system calls a
// millisecond, for one waiter per isolate and path.
// Fairness: the turnstile is granted in the kernel's order, and queued async
// waiters in FIFO order, but a fresh try (or a timed poller) may take a slot
// that frees before the turnstile holder's next poll.

import { type Handle, MAX_SLOT, mechanism, openLockFile } from "../../ffi/mod.ts";
import { misuse } from "../../errors.ts";
import { pollAsync, pollSync, sleep, sleepSync, type Waiting, waitsForever } from "../_options.ts";
import { returnKernelWait, tryTakeKernelWait } from "./_kernel_waits.ts";

/** The byte (or file) every waiter queues on in the kernel. */
const TURNSTILE = MAX_SLOT;
/** The most idle descriptors kept open per file between acquisitions. */
const MAX_IDLE = 8;
/** The sync turnstile holder's first sleep between polls, in ms; doubled up to POLL_SYNC_MAX. */
const POLL_SYNC_MIN = 0.05;
/** The sync turnstile holder's longest sleep between polls (the handoff's p99 budget is 15 ms). */
const POLL_SYNC_MAX = 1;
/** The async driver's sleep between polls: the shortest timer. */
const POLL_ASYNC = 1;

/** One slot held: the descriptor that locks it, and which slot it is. */
export interface HeldSlot {
  readonly handle: Handle;
  readonly slot: number;
}

interface Queued {
  resolve(held: HeldSlot): void;
  reject(error: unknown): void;
}

/** One semaphore file as this isolate sees it. */
export class SemaphoreFile {
  readonly path: string;
  readonly slots: number;
  /** Live semaphore objects on this path and count; idle descriptors are closed at 0. */
  users = 0;
  /** Slots this isolate holds. */
  held = 0;
  /** Idle descriptors on `path` itself (every slot where the OS has byte ranges). */
  readonly #idleMain: Handle[] = [];
  /** Idle descriptors on the other files: macOS's slot files and turnstile. */
  readonly #idle = new Map<string, Handle[]>();
  readonly #queue: Queued[] = [];
  #driving = false;
  /** The turnstile holder's descriptor between two polls (see tryAcquire). */
  #probe: Handle | undefined;
  /** macOS: `path` itself was opened once (see #tryFiles). */
  #opened = false;

  private constructor(path: string, slots: number) {
    this.path = path;
    this.slots = slots;
  }

  /** The SemaphoreFile of `path` with `slots`, counting `owner` as a user until it is collected. */
  static for(path: string, slots: number, owner: object): SemaphoreFile {
    const key = `${slots}:${path}`;
    let file = files.get(key);
    if (file === undefined) files.set(key, file = new SemaphoreFile(path, slots));
    file.users++;
    collector.register(owner, file);
    return file;
  }

  /** The file that holds slot `k` (or the turnstile), and the byte to lock in it. */
  #place(k: number): [file: string, slot: number | undefined] {
    if (mechanism().byteRanges) return [this.path, k];
    return [k === TURNSTILE ? `${this.path}.turnstile` : `${this.path}.slot-${k}`, undefined];
  }

  #idleOf(file: string): Handle[] {
    if (file === this.path) return this.#idleMain;
    let idle = this.#idle.get(file);
    if (idle === undefined) this.#idle.set(file, idle = []);
    return idle;
  }

  #take(file: string): Handle {
    return this.#idleOf(file).pop() ?? openLockFile(file);
  }

  #give(file: string, handle: Handle): void {
    const m = mechanism();
    const idle = this.#idleOf(file);
    if (idle.length < MAX_IDLE && this.users > 0 && m.keepsIdleHandles) idle.push(handle);
    else m.close(handle);
  }

  /**
   * One attempt at every slot, from 0 up.
   *
   * @param polling Keep the descriptor of a failed attempt for the next one
   *   (the turnstile holder's polls), instead of putting it back: on Windows,
   *   where idle handles are closed, this spares an open and a close per poll.
   *   Give it back with #dropProbe() when the polling ends.
   * @returns the slot taken, or undefined when all are busy.
   */
  tryAcquire(polling = false): HeldSlot | undefined {
    const m = mechanism();
    if (!m.byteRanges) return this.#tryFiles();
    // Fast path (Linux, Windows): one descriptor tries byte 0, 1, … in turn.
    const handle = this.#probe ?? this.#take(this.path);
    this.#probe = undefined;
    let k = -1;
    try {
      for (let i = 0; i < this.slots; i++) {
        if (m.tryLock(handle, true, this.path, i)) {
          k = i;
          break;
        }
      }
    } finally {
      if (k < 0 && polling) this.#probe = handle;
      else if (k < 0) this.#give(this.path, handle);
    }
    if (k < 0) return undefined;
    this.held++;
    return { handle, slot: k };
  }

  /** Puts back the descriptor kept between polls, if any. */
  #dropProbe(): void {
    const probe = this.#probe;
    this.#probe = undefined;
    if (probe !== undefined) this.#give(this.path, probe);
  }

  /** tryAcquire where slots are files (macOS): a descriptor per slot file. */
  #tryFiles(): HeldSlot | undefined {
    const m = mechanism();
    if (!this.#opened) {
      // Open (or create) `path` itself once, so that a folder or a bad path
      // fails here as it does on the other systems, naming `path`.
      m.close(openLockFile(this.path));
      this.#opened = true;
    }
    for (let k = 0; k < this.slots; k++) {
      const [file] = this.#place(k);
      const handle = this.#take(file);
      let locked = false;
      try {
        locked = m.tryLock(handle, true, file);
      } finally {
        if (!locked) this.#give(file, handle);
      }
      if (locked) {
        this.held++;
        return { handle, slot: k };
      }
    }
    return undefined;
  }

  /** Gives back a slot. The count drops even when the OS complains. */
  release(held: HeldSlot): void {
    this.held--;
    let file = this.path, byte: number | undefined = held.slot;
    if (!mechanism().byteRanges) [file, byte] = this.#place(held.slot);
    try {
      mechanism().unlock(held.handle, file, byte);
    } finally {
      this.#give(file, held.handle);
    }
  }

  /**
   * Waits (blocking the thread) as `w` says.
   *
   * @returns the slot, or undefined when busy or timed out.
   * @throws {LockError} when waiting forever could only deadlock this thread.
   */
  acquireSync(w: Waiting, name: string): HeldSlot | undefined {
    w.signal?.throwIfAborted();
    // Fast path: one attempt at every slot.
    const held = this.tryAcquire();
    if (held !== undefined || !w.blocking || w.timeout === 0) return held;
    if (w.timeout !== Infinity) return this.#pollSync(w);
    if (this.held >= this.slots) {
      throw misuse(
        name,
        `this thread already holds all ${this.slots} slots, so a blocking acquisition with no ` +
          "timeout would wait forever; release one first or pass a timeout",
        this.path,
      );
    }
    // This isolate's driver holds (or waits in the kernel for) the turnstile:
    // waiting for it here would block the very thread that must let it go.
    if (this.#driving) return this.#pollForever(sleepSyncFor);
    const [file, byte] = this.#place(TURNSTILE);
    const turnstile = this.#take(file);
    const m = mechanism();
    try {
      m.lockSync(turnstile, true, file, byte);
      try {
        return this.#pollForever(sleepSyncFor);
      } finally {
        m.unlock(turnstile, file, byte);
      }
    } finally {
      this.#give(file, turnstile);
    }
  }

  #pollSync(w: Waiting): HeldSlot | undefined {
    let held: HeldSlot | undefined;
    pollSync(() => (held = this.tryAcquire()) !== undefined, w);
    return held;
  }

  /** Polls every slot until one is taken, sleeping (sync) with a short backoff. */
  #pollForever(sleepFor: (n: number) => void): HeldSlot {
    try {
      for (let n = 0;; n++) {
        const held = this.tryAcquire(true);
        if (held !== undefined) return held;
        sleepFor(n);
      }
    } finally {
      this.#dropProbe();
    }
  }

  /**
   * Waits without blocking the event loop: queued behind this isolate's
   * driver when waiting forever, else by polling.
   */
  async acquire(w: Waiting): Promise<HeldSlot | undefined> {
    w.signal?.throwIfAborted();
    const held = this.tryAcquire();
    if (held !== undefined || !w.blocking || w.timeout === 0) return held;
    if (!waitsForever(w)) {
      let polled: HeldSlot | undefined;
      await pollAsync(() => (polled = this.tryAcquire()) !== undefined, w);
      return polled;
    }
    const queued = new Promise<HeldSlot>((resolve, reject) => {
      this.#queue.push({ resolve, reject });
    });
    if (!this.#driving) this.#drive();
    return await queued;
  }

  /** The one loop that serves this isolate's queued async waiters. */
  async #drive(): Promise<void> {
    this.#driving = true;
    const m = mechanism();
    const [file, byte] = this.#place(TURNSTILE);
    let turnstile: Handle | undefined;
    let holds = false;
    try {
      turnstile = this.#take(file);
      // A slot may have freed between the caller's try and now.
      this.#serve();
      if (this.#queue.length === 0) return;
      holds = await this.#takeTurnstile(turnstile, file, byte);
      while (this.#queue.length > 0) {
        this.#serve();
        if (this.#queue.length > 0) await sleep(POLL_ASYNC);
      }
    } catch (error) {
      for (const waiter of this.#queue.splice(0)) waiter.reject(error);
    } finally {
      this.#driving = false;
      this.#dropProbe();
      if (turnstile !== undefined) {
        try {
          if (holds) m.unlock(turnstile, file, byte);
        } finally {
          this.#give(file, turnstile);
        }
      }
    }
  }

  /** Hands free slots to the head of the queue, as many as there are. */
  #serve(): void {
    while (this.#queue.length > 0) {
      const held = this.tryAcquire(true);
      if (held === undefined) return;
      this.#queue.shift()!.resolve(held);
    }
  }

  /**
   * Takes the turnstile: at once if free, else parked in the kernel (one
   * `nonblocking` FFI call, counted against the isolate's cap), else by
   * polling it when the cap is reached. Serves the queue while it polls.
   *
   * @returns whether the turnstile is held (false: the queue emptied meanwhile).
   */
  async #takeTurnstile(
    turnstile: Handle,
    file: string,
    byte: number | undefined,
  ): Promise<boolean> {
    const m = mechanism();
    if (m.tryLock(turnstile, true, file, byte)) return true;
    if (tryTakeKernelWait()) {
      try {
        for (;;) {
          if (await m.lock(turnstile, true, byte)) return true;
          // errno is lost across the await: a sync try tells whether the
          // wait was only interrupted (wait again) or the OS refuses (throws).
          if (m.tryLock(turnstile, true, file, byte)) return true;
          await sleep(1);
        }
      } finally {
        returnKernelWait();
      }
    }
    // The cap is reached: poll the turnstile and, meanwhile, the slots.
    for (;;) {
      this.#serve();
      if (this.#queue.length === 0) return false;
      if (m.tryLock(turnstile, true, file, byte)) return true;
      await sleep(POLL_ASYNC);
    }
  }

  /** Called when the last semaphore object on the path is collected. */
  retire(): void {
    if (--this.users > 0) return;
    const m = mechanism();
    for (const h of this.#idleMain.splice(0)) m.close(h);
    for (const handles of this.#idle.values()) for (const h of handles.splice(0)) m.close(h);
    if (this.held === 0 && !this.#driving) files.delete(`${this.slots}:${this.path}`);
  }
}

/** The sync poller's sleep before poll `n + 1`: 50 µs, doubling, at most 1 ms. */
function sleepSyncFor(n: number): void {
  sleepSync(Math.min(POLL_SYNC_MIN * 2 ** Math.min(n, 16), POLL_SYNC_MAX));
}

const files = new Map<string, SemaphoreFile>();
const collector = new FinalizationRegistry<SemaphoreFile>((file) => file.retire());
