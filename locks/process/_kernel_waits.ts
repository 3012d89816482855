// The per-isolate cap on parked kernel waits: `nonblocking` FFI calls
// (fcntl F_OFD_SETLKW, flock, LockFileEx) that sit on a thread of Deno's
// blocking pool until another process lets go of a lock.
//
// Why a cap: Deno runs `nonblocking` FFI calls on the same blocking pool as
// its async file operations (Deno.stat, Deno.readTextFile, FsFile#lock). A
// parked lock wait holds its pool thread until the lock is granted, and about
// 32 of them use the pool up: every async file operation of the process then
// waits for a lock's release (issue 13 measured 2.7 s for one Deno.stat).
//
// Why 4: each waiting room (one per lock file, per mode, per isolate) parks at
// most one call, so 4 lets four files be waited on at kernel speed at once,
// which covers the common cases (one lock, a reader-writer pair, a semaphore
// and its lock) while leaving 28 of the ~32 threads to file operations. The
// pool is per isolate, like this cap: each Worker runs its own (a Worker with
// 40 parked waits left the main isolate's Deno.stat unaffected). A room
// that finds the cap reached does not park: it polls (one try per room on one
// shared timer) and queues here for a slot, which `returnKernelWait()` hands
// straight to the first in line.
//
// Protocol, for every user (waiting rooms, the process semaphore):
//   - `tryTakeKernelWait()` before parking a call; park only when it says true.
//     It says false while others queue for a slot, so slots go in arrival order.
//   - `returnKernelWait()` once the parked call has returned (granted or not),
//     exactly once per slot taken or handed over.
//   - `queueForKernelWait(granted)` to be handed a slot when one frees, instead
//     of polling for it. `granted` runs synchronously inside the
//     `returnKernelWait()` that frees the slot, owns the slot from then on, and
//     must not throw; if it no longer needs the slot it returns it at once.
//     The function it returns cancels the request (a no-op once granted).

/** The most `nonblocking` lock waits one isolate parks at once. */
export const MAX_KERNEL_WAITS = 4;

/** Slots taken and not yet returned: 0..MAX_KERNEL_WAITS. */
let inUse = 0;
/** Requests for a slot, in arrival order; handed a slot by `returnKernelWait()`. */
const queue = new Set<() => void>();

/** Takes a slot when one is free and nobody queues for one. @returns whether a slot was taken. */
export function tryTakeKernelWait(): boolean {
  if (inUse >= MAX_KERNEL_WAITS || queue.size > 0) return false;
  inUse++;
  return true;
}

/** Gives back a slot: to the first queued request, else to the pool of free slots. */
export function returnKernelWait(): void {
  for (const granted of queue) {
    queue.delete(granted);
    granted(); // The slot passes to it: inUse is unchanged.
    return;
  }
  inUse--;
}

/**
 * Asks to be handed a slot when one frees (see the protocol above).
 * @returns a function that withdraws the request if it was not granted yet.
 */
export function queueForKernelWait(granted: () => void): () => void {
  const request = () => granted();
  queue.add(request);
  return () => void queue.delete(request);
}

/** The slots in use now (for tests and the bench). */
export function kernelWaitsInUse(): number {
  return inUse;
}
