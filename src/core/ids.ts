// Queue ids: 17 characters of lower-case base32hex (RFC 4648 §7), 9 for the arrival time in
// milliseconds and 8 random. As plain strings they sort by time, they are safe as file names (also
// on case-insensitive file systems), and short enough for log lines and the Received header.
import { randomInt } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuv';
const TIME_CHARS = 9; // 45 bits of milliseconds: good until the year 3084
const RANDOM_CHARS = 8; // 40 bits
const RANDOM_SPACE = 2 ** (RANDOM_CHARS * 5);
const ID_RE = /^[0-9a-v]{17}$/;

let lastTime = -1;
let lastRandom = 0;
// Processes that write into one spool (the primary and its acceptors) each draw from their own
// slice of the random space, so two of them can never make the same id in one millisecond.
let sliceStart = 0;
let sliceSize = RANDOM_SPACE;

/** Makes this process draw queue ids from slice `index` of `count` (0 ≤ index < count). */
export function useQueueIdSlice(index: number, count: number): void {
  if (!Number.isInteger(index) || !Number.isInteger(count) || count < 1 || index < 0 || index >= count) throw new Error(`queue id slice ${index} of ${count} does not exist`);
  sliceSize = Math.floor(RANDOM_SPACE / count);
  sliceStart = index * sliceSize;
  lastTime = -1;
}

function encode(value: number, chars: number): string {
  let out = '';
  let v = value;
  for (let i = 0; i < chars; i++) {
    out = ALPHABET[v % 32]! + out;
    v = Math.floor(v / 32);
  }
  return out;
}

/**
 * A new queue id. Ids made by one process are strictly increasing, also within one millisecond or
 * when the clock steps back (the random part then counts up from the last id), so two messages of
 * one process never share an id.
 */
export function newQueueId(now: number = Date.now()): string {
  let time = Math.max(0, Math.floor(now));
  let random: number;
  if (time <= lastTime) {
    time = lastTime;
    random = lastRandom + 1;
    if (random >= sliceStart + sliceSize) {
      time += 1;
      random = sliceStart + randomInt(Math.floor(sliceSize / 2));
    }
  } else {
    // Start in the lower half so a burst within one millisecond has room to count up.
    random = sliceStart + randomInt(Math.floor(sliceSize / 2));
  }
  lastTime = time;
  lastRandom = random;
  return encode(time, TIME_CHARS) + encode(random, RANDOM_CHARS);
}

/** True for a string shaped like a queue id (and therefore safe to use in a path). */
export function isQueueId(s: string): boolean {
  return ID_RE.test(s);
}

/** The millisecond timestamp encoded in a queue id. */
export function queueIdTime(id: string): number {
  let t = 0;
  for (let i = 0; i < TIME_CHARS; i++) t = t * 32 + ALPHABET.indexOf(id[i] ?? '0');
  return t;
}
