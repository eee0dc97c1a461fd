import { jsonSizeBound } from "../../lib/json-size";

const exact = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

/** A deterministic pseudo-random generator, so a failure can be replayed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const NASTY = ["", "a", "\u0000", "\u001f", '"', "\\", "\n", "é", "€", "😀", "\ud800", "\udfff", "\u2028", "</script>"];
const NUMBERS = [0, -0, 1, -1, 0.1, 1e21, -1.2345678901234567e-308, -Number.MAX_VALUE, Number.MIN_VALUE, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity];

function randomValue(next: () => number, depth: number): unknown {
  const pick = next();
  if (depth > 4 || pick < 0.3) {
    const kind = Math.floor(next() * 4);
    if (kind === 0) return Array.from({ length: Math.floor(next() * 4) }, () => NASTY[Math.floor(next() * NASTY.length)]).join("");
    if (kind === 1) return NUMBERS[Math.floor(next() * NUMBERS.length)];
    if (kind === 2) return next() < 0.5;
    return null;
  }
  if (pick < 0.6) return Array.from({ length: Math.floor(next() * 5) }, () => randomValue(next, depth + 1));
  const object: Record<string, unknown> = {};
  const keys = Math.floor(next() * 5);
  for (let i = 0; i < keys; i++) object[`${NASTY[Math.floor(next() * NASTY.length)]}k${i}`] = randomValue(next, depth + 1);
  return object;
}

describe("jsonSizeBound", () => {
  it("is never below the exact UTF-8 size of the JSON, over 5 000 random values with escapes, surrogates and extreme numbers", () => {
    const next = rng(7);
    for (let i = 0; i < 5000; i++) {
      const value = randomValue(next, 0);
      expect(jsonSizeBound(value, Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(exact(value));
    }
  });

  it("bounds each kind of value, undefined array items (serialised as null) and omitted undefined properties included", () => {
    for (const value of [...NUMBERS, ...NASTY, true, false, null, [undefined], { a: undefined, b: [undefined, 1] }]) {
      expect(jsonSizeBound(value, Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(exact(value));
    }
  });

  it("stays close for a typical message, so the exact check is rarely needed", () => {
    const message = { type: "chat.message", recipientId: "user-17", payload: { text: "hello there", n: 3 } };
    expect(jsonSizeBound(message, 64 * 1024)).toBeLessThan(8 * exact(message));
  });

  it("gives up (Infinity) once over the budget, for a long string or many small items", () => {
    expect(jsonSizeBound({ text: "x".repeat(1000) }, 1000)).toBe(Number.POSITIVE_INFINITY);
    expect(jsonSizeBound(Array.from({ length: 1000 }, () => 1), 1000)).toBe(Number.POSITIVE_INFINITY);
    expect(jsonSizeBound({ text: "x".repeat(100) }, 1000)).toBeLessThanOrEqual(1000);
  });

  it("leaves anything that is not plain JSON data to the exact check", () => {
    expect(jsonSizeBound({ file: Buffer.from("abc") }, 1e9)).toBe(Number.POSITIVE_INFINITY);
    expect(jsonSizeBound({ when: new Date() }, 1e9)).toBe(Number.POSITIVE_INFINITY);
    expect(jsonSizeBound({ n: BigInt(1) }, 1e9)).toBe(Number.POSITIVE_INFINITY);
    expect(jsonSizeBound({ f: () => 1 }, 1e9)).toBe(Number.POSITIVE_INFINITY);
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(jsonSizeBound(deep, 1e9)).toBe(Number.POSITIVE_INFINITY);
  });

  it("treats an object without a prototype as plain data", () => {
    const bare = Object.assign(Object.create(null) as object, { a: "b" });
    expect(jsonSizeBound(bare, 1e9)).toBeGreaterThanOrEqual(exact(bare));
  });
});
