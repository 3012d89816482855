// The process-lock mechanism of this OS, loaded on first use, and the lock
// file's opening (with creation of what is missing), common to every OS.

import { dirname } from "node:path";
import type { Handle, Mechanism } from "./_mechanism.ts";
import { darwinMechanism } from "./darwin.ts";
import { linuxMechanism } from "./linux.ts";
import { windowsMechanism } from "./windows.ts";
import { LockError, osError } from "../errors.ts";

export { type Handle, MAX_SLOT, type Mechanism } from "./_mechanism.ts";

let loaded: Mechanism | undefined;

/**
 * This OS's mechanism. The native library is opened on the first call, so
 * that importing the module needs no permission.
 *
 * @throws {LockError} without `--allow-ffi`, or on an OS with no mechanism.
 */
export function mechanism(): Mechanism {
  return loaded ??= load();
}

function load(): Mechanism {
  const os = Deno.build.os;
  const make = os === "linux"
    ? linuxMechanism
    : os === "darwin"
    ? darwinMechanism
    : os === "windows"
    ? windowsMechanism
    : undefined;
  if (make === undefined) {
    throw new LockError(`process locks are not supported on ${os} (only linux, darwin, windows)`);
  }
  try {
    return make(Deno.dlopen);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
      throw new LockError(
        "process locks call the OS through FFI: run Deno with the --allow-ffi flag",
        { cause: error, code: "NotCapable" },
      );
    }
    throw new LockError(`cannot load the ${os} lock functions through FFI`, { cause: error });
  }
}

/**
 * Opens the lock file at the absolute `path`, creating its parent folders
 * and the file itself when missing. An existing file is never truncated or
 * written. A new file is made with Deno's API (mode 0644 under the umask,
 * exclusive creation), so that a dangling symbolic link planted at `path` is
 * not followed into creating a file elsewhere: it gives an ENOENT error.
 *
 * @throws {LockError} naming the path and the OS error.
 */
export function openLockFile(path: string): Handle {
  const m = mechanism();
  for (let attempt = 0;; attempt++) {
    const handle = m.open(path);
    if (handle !== null) return handle;
    if (attempt === 2) {
      throw osError(
        "open",
        path,
        undefined,
        "ENOENT",
        new Error("it vanished after creation, or is a dangling symbolic link"),
      );
    }
    create(path);
  }
}

function create(path: string): void {
  const folder = dirname(path);
  try {
    Deno.mkdirSync(folder, { recursive: true });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      // Windows reports a file in the way of a folder as a missing path.
      const notFolder = new Error(`'${folder}' or one of its parents is a file`, { cause: error });
      throw osError("create the folder of", path, undefined, "ENOTDIR", notFolder);
    }
    throw osError("create the folder of", path, undefined, errorCode(error), error);
  }
  try {
    Deno.openSync(path, { createNew: true, write: true, mode: 0o644 }).close();
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return; // made by someone else, or a link
    throw osError("create", path, undefined, errorCode(error), error);
  }
}

function errorCode(error: unknown): string | undefined {
  if (error === null || typeof error !== "object") return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" ? code : (error as { name?: string }).name;
}
