// The reader-writer lock of etcd 3.4's contrib/recipes (`rwmutex.go`):
//
//   reader   a unique key <name>/read/<n> under the lease; holds once no key
//            under <name>/write has a lower revision: it watches only the
//            last such writer key
//   writer   a unique key <name>/write/<n>; holds once no key at all under
//            <name>/ has a lower revision: it watches only the last such key
//
// Order is the keys' revisions, so it is FIFO across clients: a writer waits
// only for the keys before it, and every reader coming after a waiting writer
// lines up behind it, so a stream of readers never starves a writer (and a
// reader's `blocking: false` try while a writer waits gets `false`). Keys are
// unique per acquisition, so acquisitions of one client need no local queue.
// Keys are never modified, so their mod revision is their create revision
// (the recipe compares mod revisions).

import type { Recipe } from "./_hold.ts";
import { encodeKey, prefixEnd, type RangeRequest } from "./_wire.ts";

let sequence = 0;

/** The recipe for a reader (`write: false`) or a writer of the lock `name`. */
export function rwRecipe(name: string, write: boolean, label: string): Recipe {
  const own = `${name}/${write ? "write" : "read"}/`;
  // A reader is blocked by earlier writers, a writer by every earlier key.
  const blocking = write ? `${name}/` : `${name}/write`;
  const key = encodeKey(blocking);
  const end = prefixEnd(blocking);
  return {
    label,
    perLease: false,
    ownInRange: write,
    // The recipe names keys by UnixNano; a counter keeps them unique here,
    // and a collision across clients fails the create-if-absent compare.
    key: (_lease, attempt) =>
      own +
      String(BigInt(Date.now()) * 1_000_000n + BigInt((++sequence + attempt * 7919) % 1_000_000)),
    blockers(below?: bigint): RangeRequest {
      const range: RangeRequest = {
        key,
        range_end: end,
        sort_order: "DESCEND",
        sort_target: "MOD",
        limit: "1",
        keys_only: true,
      };
      if (below !== undefined) range.max_mod_revision = String(below - 1n);
      return range;
    },
  };
}
