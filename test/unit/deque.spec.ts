import fc from "fast-check";
import { Deque } from "../../lib/deque";

describe("Deque", () => {
  it("behaves like an array pushed at the end and shifted at the front, across compactions", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant<"shift">("shift"), fc.integer({ min: 1, max: 2500 })), { maxLength: 12 }), ops => {
        const deque = new Deque<number>();
        const model: number[] = [];
        let next = 0;
        for (const op of ops) {
          if (op === "shift") {
            expect(deque.shift()).toBe(model.shift());
          } else {
            // A burst of pushes, then as many shifts minus one: drives the front past compaction.
            for (let i = 0; i < op; i++) {
              deque.push(next);
              model.push(next++);
            }
            for (let i = 0; i < op - 1; i++) expect(deque.shift()).toBe(model.shift());
          }
          expect(deque.length).toBe(model.length);
          expect(deque.at(0)).toBe(model[0]);
          expect(deque.at(model.length - 1)).toBe(model[model.length - 1]);
          expect(deque.at(model.length)).toBeUndefined();
          expect(deque.at(-1)).toBeUndefined();
          expect(deque.slice(1, 4)).toEqual(model.slice(1, 4));
          expect(deque.slice(Math.max(0, model.length - 2))).toEqual(model.slice(Math.max(0, model.length - 2)));
        }
      }),
      { numRuns: 30 }
    );
  });
});
