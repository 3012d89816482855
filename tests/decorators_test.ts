// locked / readLocked / writeLocked / tryLock:
//   deno test --allow-read tests/decorators_test.ts

import assert from "node:assert/strict";
import { locked, readLocked, tryLock, writeLocked } from "../locks/decorators.ts";
import { Lock } from "../locks/thread/lock.ts";
import { ReaderWriterLock } from "../locks/thread/reader_writer_lock.ts";
import { pause } from "./workers/driver.ts";

Deno.test("@locked with no argument uses this._lock and serialises calls", async () => {
  class Counter {
    _lock = new Lock();
    value = 0;
    inside = 0;
    most = 0;
    @locked
    async bump() {
      this.most = Math.max(this.most, ++this.inside);
      const seen = this.value;
      await pause(0);
      this.value = seen + 1;
      this.inside--;
      return this._lock.locked;
    }
  }
  const c = new Counter();
  const results = await Promise.all(Array.from({ length: 10 }, () => c.bump()));
  assert.deepEqual(results, Array(10).fill(true));
  assert.equal(c.value, 10);
  assert.equal(c.most, 1);
  assert.equal(c._lock.locked, false);
});

Deno.test("@locked(name) uses the named property, @locked(lock) and arrays use those locks", async () => {
  const a = new Lock();
  const b = new Lock();
  class Thing {
    other = new Lock();
    @locked("other")
    named(): Promise<boolean> {
      return Promise.resolve(this.other.locked);
    }
    @locked([a, b])
    both(): Promise<boolean[]> {
      return Promise.resolve([a.locked, b.locked]);
    }
    @locked(a)
    reentrant(): Promise<boolean> {
      return locked(a)(() => a.locked)(); // nested in the same chain: no self-wait
    }
  }
  const t = new Thing();
  assert.equal(await t.named(), true);
  assert.deepEqual(await t.both(), [true, true]);
  assert.equal(await t.reentrant(), true);
  assert.equal(a.locked || b.locked || t.other.locked, false);
});

Deno.test("locked(lock) is also a plain function wrapper that keeps this and arguments", async () => {
  const lock = new Lock();
  const obj = {
    n: 2,
    times: locked(lock)(function (this: { n: number }, x: number) {
      return this.n * x;
    }),
  };
  assert.equal(await obj.times(21), 42);
  await assert.rejects(locked(lock)(() => Promise.reject(new Error("boom")))(), /boom/);
  assert.equal(lock.locked, false);
});

Deno.test("locked refuses what is not a lock with TypeError", async () => {
  assert.throws(() => locked({} as Lock), TypeError);
  assert.throws(() => locked([]), RangeError);
  const wrapped = locked("_missing")(() => 1);
  await assert.rejects(wrapped.call({}), TypeError);
});

Deno.test("@readLocked and @writeLocked take the read and the write lock of this._lock", async () => {
  class Store {
    _lock = new ReaderWriterLock();
    @readLocked
    read(): Promise<"r" | "w" | null> {
      return Promise.resolve(this._lock.owner);
    }
    @writeLocked
    async write() {
      assert.equal(await this.read(), "w"); // a writer may read, reentrantly
      return this._lock.owner;
    }
  }
  const s = new Store();
  assert.equal(await s.read(), "r");
  assert.equal(await s.write(), "w");
  assert.equal(s._lock.owner, null);
  const rw = new ReaderWriterLock();
  assert.equal(await readLocked(rw)(() => rw.isReader())(), true);
  assert.equal(await writeLocked(rw)(() => rw.isWriter())(), true);
  assert.throws(() => readLocked(new Lock() as unknown as ReaderWriterLock), TypeError);
});

Deno.test("tryLock() acquires without waiting and releases at the end of the using block", () => {
  const lock = new Lock();
  {
    using first = tryLock(lock);
    assert.equal(first.acquired, true);
    using second = tryLock(lock);
    assert.equal(second.acquired, false);
  }
  assert.equal(lock.locked, false);
  assert.throws(() => tryLock({} as Lock), TypeError);
});

Deno.test("locked(42), readLocked(42), writeLocked(42) throw a TypeError naming 42 at decoration time", () => {
  for (const decorator of [locked, readLocked, writeLocked]) {
    const make = decorator as unknown as (source: unknown) => unknown;
    assert.throws(
      () => make(42),
      (e: unknown) => e instanceof TypeError && /\b42\b/.test(e.message),
    );
  }
});
