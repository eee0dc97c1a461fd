/**
 * An upper bound on the UTF-8 size of `JSON.stringify(value)`, found without building the string:
 * a size limit is checked on every inbound socket message, and serialising it only to measure it
 * cost more than the rest of its validation. Returns `Infinity` once the bound passes `budget`, or
 * for anything that is not plain JSON data (a Buffer, a class instance, nesting deeper than 64):
 * the caller then measures exactly.
 *
 * Per value: a string is at most 6 bytes per UTF-16 unit (`\u001f`; a non-ASCII unit is at most 3
 * bytes) plus its quotes; a finite number at most 24 characters (`-1.2345678901234567e-308`).
 */
export function jsonSizeBound(value: unknown, budget: number): number {
  return boundOf(value, budget, 0);
}

const MAX_DEPTH = 64;

function boundOf(value: unknown, budget: number, depth: number): number {
  switch (typeof value) {
    case "string":
      return 2 + 6 * value.length;
    case "number":
      return 24;
    case "boolean":
      return 5;
    case "undefined":
      return 4;
    case "object":
      break;
    default:
      return Number.POSITIVE_INFINITY;
  }
  if (value === null) return 4;
  if (depth >= MAX_DEPTH) return Number.POSITIVE_INFINITY;
  let size = 2;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      size += boundOf(value[i], budget - size, depth + 1) + 1;
      if (size > budget) return Number.POSITIVE_INFINITY;
    }
    return size;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return Number.POSITIVE_INFINITY;
  for (const key in value) {
    if (!Object.prototype.hasOwnProperty.call(value, key)) continue;
    size += 2 + 6 * key.length + 1 + boundOf((value as Record<string, unknown>)[key], budget - size, depth + 1) + 1;
    if (size > budget) return Number.POSITIVE_INFINITY;
  }
  return size;
}
