import { canonicalJson, canonicalSha256 } from "../../lib/canonical-json";

describe("canonicalJson (RFC 8785)", () => {
  it("sorts members by UTF-16 code units and drops whitespace", () => {
    // RFC 8785 §3.2.3's sorting example: code-unit order, not code-point or locale order.
    const input = { "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis" };
    const keys = Object.keys(JSON.parse(canonicalJson(input)) as object);
    expect(canonicalJson(input).startsWith('{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":')).toBe(true);
    expect(keys).toHaveLength(7);
    expect(canonicalJson(input).indexOf("\ud83d\ude00")).toBeLessThan(canonicalJson(input).indexOf("\ufb33"));
  });

  it("encodes numbers as ECMAScript does (RFC 8785 §3.2.2.3 examples)", () => {
    expect(canonicalJson([333333333.33333329, 1e30, 4.50, 2e-3, 0.000001, 1e-7, -0, 1e21])).toBe("[333333333.3333333,1e+30,4.5,0.002,0.000001,1e-7,0,1e+21]");
  });

  it("escapes strings minimally and refuses lone surrogates and non-JSON values", () => {
    expect(canonicalJson({ s: "\u0000\b\t\n\f\r\"\\/\u001f\u007f" })).toBe('{"s":"\\u0000\\b\\t\\n\\f\\r\\"\\\\/\\u001f\u007f"}');
    expect(() => canonicalJson("\ud800")).toThrow(TypeError);
    expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(TypeError);
  });

  it("nests, omits undefined members and hashes the canonical bytes", () => {
    expect(canonicalJson({ b: [true, null, { d: 1, c: undefined }], a: "x" })).toBe('{"a":"x","b":[true,null,{"d":1}]}');
    expect(canonicalSha256({ b: 1, a: 2 })).toBe(canonicalSha256({ a: 2, b: 1 }));
    expect(canonicalSha256({})).toBe("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  });
});
