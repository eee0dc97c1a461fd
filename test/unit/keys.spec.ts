import fc from "fast-check";
import { connectionChannel, conversationChannel, globalKey, roomChannel, tenantChannel, tenantKey, userChannel } from "../../lib/keys";

describe("tenantKey", () => {
  it("puts the tenant first, then the kind and the parts", () => {
    expect(tenantKey("t1", "room", "r1")).toBe("t:t1:room:r1");
    expect(tenantKey("t1", "presence", "u1", "conns")).toBe("t:t1:presence:u1:conns");
    expect(tenantKey("t1", "all")).toBe("t:t1:all");
  });

  it("percent-encodes every part exactly as encodeURIComponent does, whatever the characters", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.array(fc.string({ unit: "grapheme" }), { maxLength: 3 }), (tenantId, parts) => {
        let wellFormed = true;
        try {
          [tenantId, ...parts].forEach(p => encodeURIComponent(p));
        } catch {
          wellFormed = false; // lone surrogates: encodeURIComponent throws, and so does the key
        }
        fc.pre(wellFormed);
        expect(tenantKey(tenantId, "room", ...parts)).toBe(["t", encodeURIComponent(tenantId), "room", ...parts.map(encodeURIComponent)].join(":"));
      }),
      { numRuns: 2000 }
    );
  });

  it("encodes the separator inside identifiers so they cannot collide", () => {
    const pairs: Array<[string[], string[]]> = [
      [["a", "room", "b:c"], ["a:b", "room", "c"]],
      [["a", "room", "b", "c"], ["a", "room", "b:c"]],
      [["a", "presence", "u:conns"], ["a", "presence", "u", "conns"]],
      [["t", "room", "x:t:other:room:y"], ["other", "room", "y"]]
    ];
    for (const [left, right] of pairs) {
      const [lt, lk, ...lp] = left;
      const [rt, rk, ...rp] = right;
      expect(tenantKey(lt, lk, ...lp)).not.toBe(tenantKey(rt, rk, ...rp));
    }
  });

  it("keeps a crafted roomId inside its own tenant's namespace", () => {
    const key = tenantKey("t1", "room", "x:t:t2:room:secret");
    expect(key.startsWith("t:t1:room:")).toBe(true);
    expect(key.split(":")).toHaveLength(4);
    expect(key).not.toContain("t:t2:");
  });

  it("encodes reversibly, including '%', '/', spaces and unicode", () => {
    const ids = ["a:b", "50%", "a/b", "with space", "テナント😀", "%3A"];
    for (const id of ids) {
      const key = tenantKey(id, "user", id);
      const [scope, tenant, kind, user, ...rest] = key.split(":");
      expect([scope, kind, rest]).toEqual(["t", "user", []]);
      expect(decodeURIComponent(tenant)).toBe(id);
      expect(decodeURIComponent(user)).toBe(id);
    }
    // An already-encoded identifier is not confused with its decoded form.
    expect(tenantKey("a%3Ab", "all")).not.toBe(tenantKey("a:b", "all"));
  });
});

describe("globalKey", () => {
  it("builds cluster-wide names that never look like a tenant's", () => {
    expect(globalKey("presence", "beats")).toBe("g:presence:beats");
    expect(globalKey("rooms", "node", "node:1")).toBe("g:rooms:node:node%3A1");
    expect(globalKey("presence", "node", "t")).not.toBe(tenantKey("presence", "node", "t"));
    expect(globalKey("x").startsWith("g:")).toBe(true);
  });
});

describe("channels", () => {
  it("are tenant-scoped and distinct per kind for the same identifier", () => {
    const names = [userChannel("t1", "x"), roomChannel("t1", "x"), connectionChannel("t1", "x"), tenantChannel("t1"), conversationChannel("t1", "x")];
    expect(names).toEqual(["t:t1:user:x", "t:t1:room:x", "t:t1:conn:x", "t:t1:all", "t:t1:conversation:x"]);
    expect(new Set(names).size).toBe(5);
    expect(conversationChannel("a", "b:conversation:c")).not.toBe(conversationChannel("a:b", "conversation:c"));
  });

  it("never let one tenant's identifiers reach another tenant's channel", () => {
    expect(roomChannel("a", "b:room:c")).not.toBe(roomChannel("a:b", "room:c"));
    expect(userChannel("a", "b:user:c")).not.toBe(userChannel("a:b:user", "c"));
    expect(roomChannel("t1", "all")).not.toBe(tenantChannel("t1"));
    expect(tenantChannel("t1:room:x")).not.toBe(roomChannel("t1", "x"));
  });
});
