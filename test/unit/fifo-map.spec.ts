import { FifoMap } from "../../lib/fifo-map";

describe("FifoMap", () => {
  it("keeps the newest maxSize entries, dropping the oldest first", () => {
    const map = new FifoMap<string, number>(3);
    for (let i = 1; i <= 5; i++) map.set(`k${i}`, i);
    expect(map.size).toBe(3);
    expect([map.has("k1"), map.has("k2")]).toEqual([false, false]);
    expect([map.get("k3"), map.get("k4"), map.get("k5")]).toEqual([3, 4, 5]);
    expect(map.oldest()).toBe(3);
  });

  it("replaces the value of a present key without making it younger", () => {
    const map = new FifoMap<string, string>(2);
    map.set("a", "first");
    map.set("b", "b");
    map.set("a", "second");
    expect(map.size).toBe(2);
    expect(map.get("a")).toBe("second");
    map.set("c", "c"); // "a" is still the oldest
    expect(map.has("a")).toBe(false);
    expect([map.get("b"), map.get("c")]).toEqual(["b", "c"]);
  });

  it("drops the oldest on demand until empty, and can be cleared and reused", () => {
    const map = new FifoMap<number, string>(10);
    for (let i = 0; i < 4; i++) map.set(i, `v${i}`);
    const dropped: Array<string | undefined> = [];
    while (map.size > 0) {
      dropped.push(map.oldest());
      map.dropOldest();
    }
    expect(dropped).toEqual(["v0", "v1", "v2", "v3"]);
    expect(map.oldest()).toBeUndefined();
    map.dropOldest(); // nothing to drop: no error
    map.set(7, "x");
    map.clear();
    expect(map.size).toBe(0);
    map.set(8, "y");
    expect([map.size, map.oldest(), map.has(7)]).toEqual([1, "y", false]);
  });

  it("stays consistent through many times its size of traffic (the queue compacts)", () => {
    const map = new FifoMap<number, number>(1000);
    for (let i = 0; i < 50_000; i++) map.set(i, i);
    expect(map.size).toBe(1000);
    expect(map.oldest()).toBe(49_000);
    expect(map.has(48_999)).toBe(false);
    expect(map.get(49_999)).toBe(49_999);
  });

  it("is bounded only by what its owner drops when no size is given", () => {
    const map = new FifoMap<number, { at: number }>();
    for (let i = 0; i < 5000; i++) map.set(i, { at: i });
    expect(map.size).toBe(5000);
    // Dropping by age, as the stores do: everything older than 4990.
    map.dropOldestWhile(entry => entry.at < 4990);
    expect([map.size, map.oldest()?.at, map.has(4989)]).toEqual([10, 4990, false]);
  });

  it("refuses a size below 1", () => {
    expect(() => new FifoMap(0)).toThrow(RangeError);
  });
});
