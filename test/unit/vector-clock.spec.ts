import fc from "fast-check";
import { clockProblem, compare, concurrent, descends, hasSeen, increment, merge, normalize, type VectorClock } from "../../lib/vector-clock";

describe("vector clocks", () => {
  describe("compare / descends / concurrent", () => {
    it.each<[VectorClock, VectorClock, string]>([
      [{}, {}, "equal"],
      [{ a: 1 }, {}, "after"],
      [{}, { a: 1 }, "before"],
      [{ a: 2, b: 1 }, { a: 1, b: 1 }, "after"],
      [{ a: 1, b: 1 }, { a: 2, b: 1 }, "before"],
      [{ a: 1 }, { b: 1 }, "concurrent"],
      [{ a: 2, b: 0 }, { a: 1, b: 1 }, "concurrent"],
      [{ a: 0 }, {}, "equal"],
      [{ a: 1, b: 2 }, { b: 2, a: 1 }, "equal"]
    ])("%j vs %j is %s", (a, b, expected) => {
      expect(compare(a, b)).toBe(expected);
    });

    it("descends is >= entry by entry (a clock descends from itself)", () => {
      expect(descends({ a: 2, b: 1 }, { a: 1 })).toBe(true);
      expect(descends({ a: 1 }, { a: 1 })).toBe(true);
      expect(descends({ a: 1 }, { a: 1, b: 1 })).toBe(false);
      expect(descends({ a: 1 }, { b: 1 })).toBe(false);
      expect(descends({ b: 1 }, { a: 1 })).toBe(false);
    });

    it("concurrent means neither descends", () => {
      expect(concurrent({ a: 1 }, { b: 1 })).toBe(true);
      expect(concurrent({ a: 1, b: 1 }, { b: 1 })).toBe(false);
      expect(concurrent({}, {})).toBe(false);
    });

    it("does not read inherited properties as entries", () => {
      expect(compare({ constructor: 1 }, {})).toBe("after");
      expect(compare({}, { toString: 1 })).toBe("before");
      expect(hasSeen({}, "constructor", 1)).toBe(false);
    });
  });

  describe("merge / increment", () => {
    it("merge takes the maximum of every entry and drops zeros", () => {
      expect(merge({ a: 3, b: 1 }, { b: 2, c: 1 })).toEqual({ a: 3, b: 2, c: 1 });
      expect(merge({ a: 0 }, {})).toEqual({});
      expect(normalize({ z: 1, a: 0, m: 2 })).toEqual({ m: 2, z: 1 });
      expect(Object.keys(normalize({ z: 1, m: 2 }))).toEqual(["m", "z"]);
    });

    it("increment advances one entry, so the result strictly descends", () => {
      expect(increment({}, "a")).toEqual({ a: 1 });
      expect(increment({ a: 1, b: 4 }, "b")).toEqual({ a: 1, b: 5 });
      expect(compare(increment({ a: 1 }, "c"), { a: 1 })).toBe("after");
    });

    const clock = fc.dictionary(fc.constantFrom("a", "b", "c", "d"), fc.nat({ max: 5 }));

    it("merge is a least upper bound: commutative, associative, idempotent, descends from both", () => {
      fc.assert(
        fc.property(clock, clock, clock, (x, y, z) => {
          expect(merge(x, y)).toEqual(merge(y, x));
          expect(merge(merge(x, y), z)).toEqual(merge(x, merge(y, z)));
          expect(merge(x, x)).toEqual(normalize(x));
          expect(descends(merge(x, y), x)).toBe(true);
          expect(descends(merge(x, y), y)).toBe(true);
          // least: any clock descending from both descends from the merge
          const upper = merge(merge(x, y), z);
          expect(descends(upper, merge(x, y))).toBe(true);
        })
      );
    });

    it("compare is antisymmetric and consistent with descends", () => {
      const flip: Record<string, string> = { before: "after", after: "before", equal: "equal", concurrent: "concurrent" };
      fc.assert(
        fc.property(clock, clock, (x, y) => {
          expect(compare(y, x)).toBe(flip[compare(x, y)]);
          expect(descends(x, y)).toBe(["after", "equal"].includes(compare(x, y)));
          expect(concurrent(x, y)).toBe(!descends(x, y) && !descends(y, x));
        })
      );
    });

    it("hasSeen is the dot test: a clock has seen (id, n) iff its entry is at least n", () => {
      expect(hasSeen({ a: 3 }, "a", 3)).toBe(true);
      expect(hasSeen({ a: 2 }, "a", 3)).toBe(false);
      expect(hasSeen({}, "a", 1)).toBe(false);
    });
  });

  describe("clockProblem (untrusted input)", () => {
    it.each<[unknown]>([[{}], [{ a: 0 }], [{ "client-1": 12, x: 1 }]])("accepts %j", value => {
      expect(clockProblem(value)).toBeUndefined();
    });

    it.each<[string, unknown]>([
      ["null", null],
      ["an array", [1, 2]],
      ["a string", "a:1"],
      ["a negative counter", { a: -1 }],
      ["a fraction", { a: 1.5 }],
      ["a string counter", { a: "1" }],
      ["an unsafe integer", { a: Number.MAX_SAFE_INTEGER + 1 }],
      ["an empty client id", { "": 1 }],
      ["a client id over 128 characters", { ["x".repeat(129)]: 1 }],
      ["a control character in a client id", { "a\nb": 1 }],
      ["1001 entries", Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`c${i}`, 1]))]
    ])("refuses %s", (_label, value) => {
      expect(typeof clockProblem(value)).toBe("string");
    });
  });
});
