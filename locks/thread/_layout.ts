// The header every shared-memory lock buffer starts with, so that a buffer
// made for another primitive, by another layout version, or of the wrong size
// is refused by `from()` instead of being misread.
//
// header (Int32 words 0..3):
//   MAGIC    tells which primitive the buffer belongs to; never changes
//   LAYOUT   the layout version; bumped whenever any word's meaning changes
//   SIZE     the buffer's byte length as made; never changes
//   NEXT_ID  the last attachment id handed out; ids start at 1, 0 means "nobody"

import { badArgument } from "../../errors.ts";

/** Index of the magic number. */
export const MAGIC = 0;
/** Index of the layout version. */
export const LAYOUT = 1;
/** Index of the byte length the buffer was made with. */
export const SIZE = 2;
/** Index of the attachment id counter: `Atomics.add` hands out 1, 2, … */
export const NEXT_ID = 3;
/** Number of header words; the primitive's own words follow. */
export const HEADER_WORDS = 4;

/** Makes a zeroed buffer of `words` Int32 words with its header filled in. */
export function makeBuffer(words: number, magic: number, layout: number): Int32Array {
  const view = new Int32Array(new SharedArrayBuffer(words * 4));
  view[MAGIC] = magic;
  view[LAYOUT] = layout;
  view[SIZE] = words * 4;
  return view;
}

/**
 * Checks that `buffer` was made by {@linkcode makeBuffer} with the same
 * magic, layout and size, and returns its view.
 *
 * @throws {TypeError} naming `kind` and what did not match.
 */
export function attachBuffer(
  buffer: unknown,
  words: number,
  magic: number,
  layout: number,
  kind: string,
): Int32Array {
  if (!(buffer instanceof SharedArrayBuffer)) {
    throw badArgument("type", `${kind}.from() buffer`, buffer, "a SharedArrayBuffer");
  }
  const bytes = words * 4;
  if (buffer.byteLength !== bytes) {
    throw new TypeError(
      `${kind}.from(): the buffer is ${buffer.byteLength} bytes, a ${kind} buffer is ${bytes}`,
    );
  }
  const view = new Int32Array(buffer);
  if (Atomics.load(view, MAGIC) !== magic || Atomics.load(view, SIZE) !== bytes) {
    throw new TypeError(`${kind}.from(): the buffer was not made by ${kind}`);
  }
  const found = Atomics.load(view, LAYOUT);
  if (found !== layout) {
    throw new TypeError(
      `${kind}.from(): the buffer has layout version ${found}, this library reads version ${layout}`,
    );
  }
  return view;
}

/** Hands out the next attachment id of a buffer (1, 2, …). */
export function nextId(view: Int32Array): number {
  return Atomics.add(view, NEXT_ID, 1) + 1;
}
