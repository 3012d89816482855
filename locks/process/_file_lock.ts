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

import { type Handle, mechanism, openLockFile } from "../../ffi/mod.ts";

export type { Handle };
import { AsyncLocalStorage } from "node:async_hooks";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { badArgument, misuse } from "../../errors.ts";
import type { Guard } from "../guard.ts";
import { pollAsync, pollSync, sleep, type Waiting, waitsForever } from "../_options.ts";

/** One lock file as this isolate sees it. */
export class LockFile {
  readonly path: string;
  /** Live lock objects on this path; the idle descriptor is closed at 0. */
  users = 0;
  /** This isolate's exclusive holders (0 or 1). */
  writers = 0;
  /** This isolate's shared holders. */
  readers = 0;
  /** This isolate's async acquisitions waiting in the kernel, exclusive and shared: the kernel may grant them at any moment. */
  #kernelWaits = [0, 0];
  #idle: Handle | undefined;

  private constructor(path: string) {
    this.path = path;
  }

  /** The LockFile of `path`, counting `owner` as a user until it is collected. */
  static for(path: string, owner: object): LockFile {
    let file = files.get(path);
    if (file === undefined) files.set(path, file = new LockFile(path));
    file.users++;
    collector.register(owner, file);
    return file;
  }

  #take(): Handle {
    const handle = this.#idle;
    if (handle === undefined) return openLockFile(this.path);
    this.#idle = undefined;
    return handle;
  }

  #give(handle: Handle): void {
    const m = mechanism();
    if (this.#idle === undefined && this.users > 0 && m.keepsIdleHandles) this.#idle = handle;
    else m.close(handle);
  }

  #held(handle: Handle, exclusive: boolean): Handle {
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
    const [writers, readers] = this.#kernelWaits;
    return this.writers + writers > 0 || (exclusive && this.readers + readers > 0);
  }

  /** One attempt. @returns the handle that holds the lock, or undefined when busy. */
  tryLock(exclusive: boolean): Handle | undefined {
    const handle = this.#take();
    let locked = false;
    try {
      locked = mechanism().tryLock(handle, exclusive, this.path);
    } finally {
      if (!locked) this.#give(handle);
    }
    return locked ? this.#held(handle, exclusive) : undefined;
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
    const waiting = this.#take();
    try {
      mechanism().lockSync(waiting, exclusive, this.path);
    } catch (error) {
      this.#give(waiting);
      throw error;
    }
    return this.#held(waiting, exclusive);
  }

  #pollSync(exclusive: boolean, w: Waiting): Handle | undefined {
    let handle: Handle | undefined;
    pollSync(() => (handle = this.tryLock(exclusive)) !== undefined, w);
    return handle;
  }

  /**
   * Waits without blocking the event loop: in the kernel on a pool thread
   * when waiting forever, else by polling (a kernel wait cannot be cancelled).
   */
  async lock(exclusive: boolean, w: Waiting): Promise<Handle | undefined> {
    w.signal?.throwIfAborted();
    const handle = this.tryLock(exclusive);
    if (handle !== undefined || !w.blocking || w.timeout === 0) return handle;
    if (!waitsForever(w)) {
      let polled: Handle | undefined;
      await pollAsync(() => (polled = this.tryLock(exclusive)) !== undefined, w);
      return polled;
    }
    return await this.#lockContended(exclusive);
  }

  async #lockContended(exclusive: boolean): Promise<Handle> {
    const m = mechanism();
    const waiting = this.#take();
    const kind = exclusive ? 0 : 1;
    this.#kernelWaits[kind]++;
    try {
      for (;;) {
        if (await m.lock(waiting, exclusive)) break;
        // errno is lost across the await: a sync try tells whether the wait
        // was only interrupted (busy: wait again) or the OS refuses (throws).
        if (m.tryLock(waiting, exclusive, this.path)) break;
        await sleep(1);
      }
    } catch (error) {
      this.#give(waiting);
      throw error;
    } finally {
      this.#kernelWaits[kind]--;
    }
    return this.#held(waiting, exclusive);
  }

  /** Unlocks `handle` and puts it back. The counts drop even when the OS complains. */
  unlock(handle: Handle, exclusive: boolean): void {
    if (exclusive) this.writers--;
    else this.readers--;
    try {
      mechanism().unlock(handle, this.path);
    } finally {
      this.#give(handle);
    }
  }

  /** Called when the last lock object on the path is collected. */
  retire(): void {
    if (--this.users > 0) return;
    const handle = this.#idle;
    this.#idle = undefined;
    if (handle !== undefined) mechanism().close(handle);
    if (this.writers === 0 && this.readers === 0) files.delete(this.path);
  }
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
const heldHere = new AsyncLocalStorage<ReadonlyMap<LockFile, boolean>>();

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
  const holds = held?.get(file);
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
    return await heldHere.run(new Map(held).set(file, exclusive), fn);
  } finally {
    guard.release();
  }
}
