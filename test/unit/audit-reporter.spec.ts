import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ServiceBroker, type Context } from "moleculer";
import { AuditAggregator } from "../../lib/audit-aggregator";
import { AuditSpool } from "../../lib/audit-spool";
import { AuditReporter, type AuditInput } from "../../lib/audit-trail";

const T0 = 1_700_000_000_000;

function input(overrides: Partial<AuditInput> = {}): AuditInput {
  return {
    tenantId: "_system",
    actor: { userId: "anonymous", role: "anonymous" },
    action: "security.auth_failed",
    target: "rest:/api/presence/u1",
    outcome: "denied",
    details: { via: "rest", reason: "invalid", source: "10.0.0.1" },
    ...overrides
  };
}

describe("AuditAggregator", () => {
  it("records the first occurrence at once and the repeats of a window as one record with their count", () => {
    const emitted: AuditInput[] = [];
    const aggregator = new AuditAggregator(60_000, i => emitted.push(i), "_system");
    for (let i = 0; i < 1000; i++) aggregator.hit(input(), { key: "k" }, T0 + i);
    expect(emitted).toHaveLength(1);
    expect(emitted[0].details).toEqual({ via: "rest", reason: "invalid", source: "10.0.0.1", count: 1 });
    aggregator.sweep(T0 + 59_999);
    expect(emitted).toHaveLength(1);
    aggregator.sweep(T0 + 60_000);
    expect(emitted).toHaveLength(2);
    expect(emitted[1].details).toEqual({
      via: "rest",
      reason: "invalid",
      source: "10.0.0.1",
      count: 999,
      firstAt: new Date(T0 + 1).toISOString(),
      lastAt: new Date(T0 + 999).toISOString(),
      windowMs: 60_000,
      aggregated: true
    });
    const counted = emitted.reduce((sum, e) => sum + (e.details?.count as number), 0);
    expect(counted).toBe(1000);
  });

  it("starts a new window after one ends (the next occurrence is recorded at once again)", () => {
    const emitted: AuditInput[] = [];
    const aggregator = new AuditAggregator(1000, i => emitted.push(i), "_system");
    aggregator.hit(input(), { key: "k" }, T0);
    aggregator.hit(input(), { key: "k" }, T0 + 10);
    aggregator.hit(input(), { key: "k" }, T0 + 1500);
    expect(emitted.map(e => e.details?.count)).toEqual([1, 1, 1]);
    expect(emitted[1].details?.aggregated).toBe(true);
    expect(emitted[2].details?.aggregated).toBeUndefined();
  });

  it("keeps keys apart and leaves no record for a window without repeats", () => {
    const emitted: AuditInput[] = [];
    const aggregator = new AuditAggregator(1000, i => emitted.push(i), "_system");
    aggregator.hit(input(), { key: "a" }, T0);
    aggregator.hit(input({ details: { source: "10.0.0.2" } }), { key: "b" }, T0);
    aggregator.sweep(T0 + 5000);
    expect(emitted).toHaveLength(2);
    expect(aggregator.openKeys).toBe(0);
  });

  it("lists the varying field's values in the aggregated record", () => {
    const emitted: AuditInput[] = [];
    const aggregator = new AuditAggregator(1000, i => emitted.push(i), "_system");
    for (const t of ["t2", "t3", "t3", "t4"]) aggregator.hit(input({ details: { requestedTenantId: t, via: "rest" } }), { key: "u1", sampleField: "requestedTenantId" }, T0);
    aggregator.flush();
    expect(emitted[0].details).toEqual({ requestedTenantId: "t2", via: "rest", count: 1 });
    expect(emitted[1].details).toMatchObject({ via: "rest", requestedTenantIdSamples: ["t3", "t4"], count: 3, aggregated: true });
    expect(emitted[1].details).not.toHaveProperty("requestedTenantId");
  });

  it("bounds the records an attacker can cause by varying the key: beyond maxKeys everything shares one overflow record per action", () => {
    const emitted: AuditInput[] = [];
    const aggregator = new AuditAggregator(60_000, i => emitted.push(i), "_system", 100);
    for (let i = 0; i < 10_000; i++) aggregator.hit(input({ details: { source: `10.0.${i >> 8}.${i & 255}` } }), { key: `src${i}` }, T0);
    expect(emitted).toHaveLength(101);
    expect(emitted[100]).toMatchObject({ tenantId: "_system", target: "*", action: "security.auth_failed", details: { overflow: true, count: 1 } });
    aggregator.flush();
    expect(emitted).toHaveLength(102);
    expect(emitted[101].details).toMatchObject({ overflow: true, count: 10_000 - 101, aggregated: true });
    expect(emitted.reduce((sum, e) => sum + (e.details?.count as number), 0)).toBe(10_000);
  });
});

describe("AuditSpool", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "pf2-spool-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps records on disk and sends them in order; stops at the first refusal and keeps the rest", async () => {
    const spool = new AuditSpool(dir, "node-1");
    await spool.write([{ id: "a" }, { id: "b" }]);
    await spool.write([{ id: "c" }]);
    expect(await spool.hasWork()).toBe(true);
    const sent: string[] = [];
    let refuse = "b";
    const send = async (r: { id: string }) => {
      if (r.id === refuse) throw new Error("down");
      sent.push(r.id);
    };
    expect(await spool.drain(send)).toEqual({ sent: 1, left: true });
    await spool.write([{ id: "d" }]);
    refuse = "";
    expect(await spool.drain(send)).toEqual({ sent: 3, left: false });
    expect(sent).toEqual(["a", "b", "c", "d"]);
    expect(await spool.hasWork()).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("drains the files of a process that is gone, but not those of a live one", async () => {
    const deadPid = 2 ** 22 + 12345; // above Linux's pid_max: never a running process
    writeFileSync(path.join(dir, `old-node.${deadPid}.pending.jsonl`), `${JSON.stringify({ id: "orphan" })}\n{"id":"tor`);
    writeFileSync(path.join(dir, `other.${process.ppid}.pending.jsonl`), `${JSON.stringify({ id: "live" })}\n`);
    const spool = new AuditSpool(dir, "node-1");
    const sent: string[] = [];
    expect(await spool.drain(async r => void sent.push(r.id))).toEqual({ sent: 1, left: false });
    expect(sent).toEqual(["orphan"]);
    expect(readdirSync(dir)).toEqual([`other.${process.ppid}.pending.jsonl`]);
  });
});

describe("AuditReporter", () => {
  let dir: string;
  let broker: ServiceBroker;
  let appended: AuditInput[];
  let down: boolean;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "pf2-reporter-"));
    appended = [];
    down = false;
    broker = new ServiceBroker({ logger: false, nodeID: "reporter-test" });
    broker.createService({
      name: "audit",
      actions: {
        append(ctx: Context<AuditInput>) {
          if (down) throw new Error("audit store down");
          appended.push(ctx.params);
          return { id: ctx.params.id, seq: appended.length, at: "", hash: "", duplicate: false };
        }
      }
    });
    await broker.start();
  });
  afterEach(async () => {
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends each record with an id and the node, aggregating when asked", async () => {
    const reporter = new AuditReporter(broker, { windowMs: 60_000, spoolDir: dir });
    for (let i = 0; i < 50; i++) reporter.record(input(), { key: "flood" });
    reporter.record(input({ action: "admin.kick", outcome: "success", tenantId: "t1" }));
    await reporter.idle();
    expect(appended).toHaveLength(2);
    expect(appended[0]).toMatchObject({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), actor: { nodeID: "reporter-test" }, details: { count: 1 } });
    await reporter.stop();
    expect(appended).toHaveLength(3);
    expect(appended[2].details).toMatchObject({ count: 49, aggregated: true });
  });

  it("spools what the audit service does not take and sends it, with the same id, once it does", async () => {
    const reporter = new AuditReporter(broker, { windowMs: 0, spoolDir: dir, retryMs: 60_000 });
    down = true;
    reporter.record(input({ target: "first" }));
    reporter.record(input({ target: "second" }));
    await reporter.idle();
    expect(appended).toEqual([]);
    const spooled = readdirSync(dir).flatMap(name => readFileSync(path.join(dir, name), "utf8").trim().split("\n")).map(l => JSON.parse(l) as AuditInput & { id: string });
    expect(spooled.map(r => r.target)).toEqual(["first", "second"]);
    down = false;
    expect(await reporter.drain()).toBe(true);
    expect(appended.map(r => [r.id, r.target])).toEqual(spooled.map(r => [r.id, r.target]));
    expect(readdirSync(dir)).toEqual([]);
    await reporter.stop();
  });

  it("a new process drains what a crashed one spooled", async () => {
    const deadPid = 2 ** 22 + 999;
    writeFileSync(path.join(dir, `crashed.${deadPid}.pending.jsonl`), `${JSON.stringify({ ...input({ target: "from-before-the-crash" }), id: "11111111-2222-3333-4444-555555555555" })}\n`);
    const reporter = new AuditReporter(broker, { windowMs: 0, spoolDir: dir, retryMs: 60_000 });
    reporter.start();
    const deadline = Date.now() + 3000;
    while (appended.length === 0 && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
    expect(appended).toMatchObject([{ id: "11111111-2222-3333-4444-555555555555", target: "from-before-the-crash" }]);
    await reporter.stop();
  });
});
