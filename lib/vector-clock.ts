/**
 * Vector clocks: `{[clientId]: counter}`, one counter per client that wrote. A missing entry is 0,
 * so `{}` is the clock of "nothing happened yet" and `{a: 0}` equals `{}`.
 *
 * A client writing an entity takes the clock it knows for that entity (the server's, merged with
 * its own unsent writes) and increments its own entry; the result is the operation's clock.
 *
 * ```ts
 * compare({ a: 2, b: 1 }, { a: 1, b: 1 }); // "after":  the first has seen everything the second has
 * compare({ a: 1 }, { b: 1 });             // "concurrent": neither has seen the other
 * merge({ a: 1 }, { b: 1 });               // { a: 1, b: 1 }
 * ```
 */
export type VectorClock = Record<string, number>;

export type ClockOrder = "before" | "after" | "equal" | "concurrent";

const entry = (clock: VectorClock, id: string): number => (Object.prototype.hasOwnProperty.call(clock, id) ? clock[id] : 0);

/** How `a` relates to `b`: `after` when `a` strictly descends from `b`, `before` when `b` descends from `a`. */
export function compare(a: VectorClock, b: VectorClock): ClockOrder {
  let aAhead = false;
  let bAhead = false;
  for (const id of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = entry(a, id);
    const y = entry(b, id);
    if (x > y) aAhead = true;
    else if (y > x) bAhead = true;
    if (aAhead && bAhead) return "concurrent";
  }
  if (aAhead) return "after";
  if (bAhead) return "before";
  return "equal";
}

/** `a` has seen everything `b` has (`a >= b` entry by entry; equal clocks descend from each other). */
export function descends(a: VectorClock, b: VectorClock): boolean {
  const order = compare(a, b);
  return order === "after" || order === "equal";
}

/** Neither clock has seen everything the other has. */
export function concurrent(a: VectorClock, b: VectorClock): boolean {
  return compare(a, b) === "concurrent";
}

/** The least clock that descends from both (entry-wise maximum); zero entries are dropped. */
export function merge(a: VectorClock, b: VectorClock): VectorClock {
  const out: VectorClock = {};
  for (const id of [...Object.keys(a), ...Object.keys(b)].sort()) {
    const value = Math.max(entry(a, id), entry(b, id));
    if (value > 0) out[id] = value;
  }
  return out;
}

/** `clock` with `id`'s entry one higher: the clock of `id`'s next event. */
export function increment(clock: VectorClock, id: string): VectorClock {
  return merge(clock, { [id]: entry(clock, id) + 1 });
}

/** Whether a clock has seen the event `counter` of `id` (a "dot"). */
export function hasSeen(clock: VectorClock, id: string, counter: number): boolean {
  return entry(clock, id) >= counter;
}

/** The counter of `id` in `clock` (0 when absent). */
export function counterOf(clock: VectorClock, id: string): number {
  return entry(clock, id);
}

/** Largest number of entries a clock may carry (one per client that ever wrote the entity). */
export const MAX_CLOCK_ENTRIES = 1000;

/**
 * Checks an untrusted value: a plain object of at most MAX_CLOCK_ENTRIES non-empty keys (at most
 * 128 characters) to non-negative safe integers. Returns the reason it is not, or undefined.
 */
export function clockProblem(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "must be an object of client ids to counters";
  const keys = Object.keys(value);
  if (keys.length > MAX_CLOCK_ENTRIES) return `has more than ${MAX_CLOCK_ENTRIES} entries`;
  for (const key of keys) {
    if (key.length === 0 || key.length > 128 || /[\u0000-\u001f\u007f]/.test(key)) return `has an invalid client id ${JSON.stringify(key.slice(0, 32))}`;
    const counter = (value as Record<string, unknown>)[key];
    if (typeof counter !== "number" || !Number.isSafeInteger(counter) || counter < 0) return `entry ${JSON.stringify(key.slice(0, 32))} must be a non-negative integer`;
  }
  return undefined;
}

/** A copy without zero entries, keys sorted (so equal clocks serialize identically). */
export function normalize(clock: VectorClock): VectorClock {
  return merge(clock, {});
}
