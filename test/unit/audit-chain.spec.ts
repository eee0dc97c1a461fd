import { createHash } from "node:crypto";
import { GENESIS_HASH, recordHash, seal, verifyChain, type AuditRecord, type ScannedEntry } from "../../lib/audit-chain";
import { createTokenVerifier } from "../../lib/auth";
import { tokenFor, TEST_SECRET } from "../helpers/tokens";

async function* entries(list: ScannedEntry[]): AsyncIterable<ScannedEntry> {
  for (const e of list) yield e;
}

function chain(tenantId: string, count: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  let prevHash = GENESIS_HASH;
  for (let seq = 1; seq <= count; seq++) {
    const record = seal({ id: `r${seq}`, seq, at: "2026-01-30T12:00:00.000Z", tenantId, actor: { userId: "u", role: "user" }, action: "a.b", target: "x", outcome: "denied", details: { seq }, prevHash });
    records.push(record);
    prevHash = record.hash;
  }
  return records;
}

describe("audit chain", () => {
  it("hashes the RFC 8785 encoding of every field but the hash (reproducible outside this code base)", () => {
    const record = seal({
      id: "r1",
      seq: 1,
      at: "2026-01-30T12:00:00.000Z",
      tenantId: "t1",
      actor: { userId: "u1", role: "user", nodeID: "n1" },
      action: "security.tenant_violation",
      target: "tenant:t2",
      outcome: "denied",
      details: { b: 1, a: [true, null, "é"] },
      prevHash: GENESIS_HASH
    });
    // Members sorted by name, no whitespace, justification absent: written out by hand.
    const canonical =
      '{"action":"security.tenant_violation","actor":{"nodeID":"n1","role":"user","userId":"u1"},"at":"2026-01-30T12:00:00.000Z",' +
      `"details":{"a":[true,null,"é"],"b":1},"id":"r1","outcome":"denied","prevHash":"${GENESIS_HASH}","seq":1,"target":"tenant:t2","tenantId":"t1"}`;
    expect(record.hash).toBe(createHash("sha256").update(canonical, "utf8").digest("hex"));
    expect(recordHash({ ...record, justification: "why" })).not.toBe(record.hash);
  });

  it("verifies an intact chain and stops at the first broken link", async () => {
    const records = chain("t1", 4);
    expect(await verifyChain("t1", entries(records.map(record => ({ record }))))).toMatchObject({ ok: true, checked: 4, lastSeq: 4, lastHash: records[3].hash });
    const foreign = { ...records[2], tenantId: "t2" };
    expect(await verifyChain("t1", entries([records[0], records[1], foreign, records[3]].map(record => ({ record }))))).toMatchObject({
      ok: false,
      checked: 2,
      broken: { seq: 3, reason: "tenant_mismatch", actual: "t2" }
    });
    expect(await verifyChain("t1", entries([{ record: records[0] }, { unreadable: "{garbage" }]))).toMatchObject({ ok: false, checked: 1, broken: { seq: 2, reason: "unreadable" } });
    expect(await verifyChain("t1", entries(records.slice(0, 3).map(record => ({ record }))), undefined, { seq: 4, hash: records[3].hash })).toMatchObject({
      ok: false,
      broken: { reason: "head_mismatch" }
    });
  });

  it("starts a purged chain at its anchor; without the anchor the missing prefix is a gap", async () => {
    const records = chain("t1", 5);
    const rest = records.slice(2).map(record => ({ record }));
    expect(await verifyChain("t1", entries(rest), { seq: 2, hash: records[1].hash })).toMatchObject({ ok: true, checked: 3 });
    expect(await verifyChain("t1", entries(rest))).toMatchObject({ ok: false, broken: { seq: 1, reason: "sequence_gap", actual: 3 } });
  });

  it("no token may claim the audit trail's own _system tenant", () => {
    const verifier = createTokenVerifier({ jwtSecret: TEST_SECRET, jwtPublicKey: undefined });
    expect(() => verifier.verify(tokenFor("_system", "u"))).toThrow(/reserved/);
    expect(verifier.verify(tokenFor("system", "u")).tenantId).toBe("system");
  });
});
