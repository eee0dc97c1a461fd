import { createHash } from "node:crypto";

/**
 * The JSON Canonicalization Scheme (RFC 8785): the one byte-exact encoding of a JSON value, so a
 * checksum or a hash chain computed here can be recomputed by any client in any language.
 *
 * - object members sorted by their names' UTF-16 code units (what `Array.prototype.sort` does);
 * - numbers as ECMAScript `Number.prototype.toString` (what `JSON.stringify` emits), finite only;
 * - strings escaped as `JSON.stringify` does (RFC 8785 §3.2.2.2 uses the same rules);
 * - no whitespace. `undefined` members are omitted, as JSON has no such value.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("JSON has no encoding for NaN or Infinity");
      return JSON.stringify(value);
    case "string":
      if (/\p{Cs}/u.test(value)) throw new TypeError("Strings with lone surrogates cannot be canonicalized (RFC 8785 §3.2.2.2)");
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map(item => (item === undefined ? "null" : canonicalJson(item))).join(",")}]`;
      const toJSON = (value as { toJSON?: () => unknown }).toJSON;
      if (typeof toJSON === "function") return canonicalJson(toJSON.call(value));
      const entries = Object.keys(value)
        .filter(key => (value as Record<string, unknown>)[key] !== undefined)
        .sort()
        .map(key => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
      return `{${entries.join(",")}}`;
    }
    default:
      throw new TypeError(`JSON has no encoding for ${typeof value}`);
  }
}

/** Hex SHA-256 of the canonical UTF-8 encoding of a JSON value. */
export function canonicalSha256(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value), "utf8").digest("hex");
}
