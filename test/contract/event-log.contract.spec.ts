import type Redis from "ioredis";
import { createEventLog } from "../../stores/event-log";
import {
  comparePositions,
  formatPosition,
  parsePosition,
  type BusEvent,
  type EventLog,
  ID_INDEX_FACTOR,
  type EventLogLimits,
  type StoredEvent
} from "../../stores/event-log/event-log";
import { MemoryEventLog } from "../../stores/event-log/event-log.memory";
import { RedisEventLog } from "../../stores/event-log/event-log.redis";
import { releaseRedis } from "../../stores/redis-connection";
import { dropPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis";
import { backends, keysUnder, requireRedis, type Backend } from "./backends";

/*
 * The memory log trims by the `now` it is given; the Redis log ignores `now` and trims by Redis'
 * clock. Every test therefore passes an explicit `now` and keeps the default retention long, so
 * nothing expires unless a test means it to.
 */
const T0 = 1_700_000_000_000;
const WEEK = 7 * 24 * 60 * 60 * 1000;
const DEFAULT_LIMITS: EventLogLimits = { retentionMs: WEEK, maxEventsPerTenant: 100_000 };

const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms));

function ev(tenantId: string, eventId: string, extra: Partial<BusEvent> = {}): BusEvent {
  return {
    eventId,
    eventType: "test.happened",
    tenantId,
    timestamp: new Date(T0).toISOString(),
    payload: { eventId, nested: { list: [1, "two", null], flag: true } },
    metadata: { source: "contract" },
    schemaVersion: "1.0",
    ...extra
  };
}

const ids = (events: StoredEvent[]) => events.map(e => e.eventId);
const positions = (events: StoredEvent[]) => events.map(e => e.position);

/** Appends `count` events e<from>..e<from+count-1> one after the other; returns the stored events. */
async function appendMany(log: EventLog, tenantId: string, count: number, from = 1, now = T0): Promise<StoredEvent[]> {
  const stored: StoredEvent[] = [];
  for (let i = from; i < from + count; i++) {
    const result = await log.append(tenantId, ev(tenantId, `e${i}`), now);
    expect(result.duplicate).toBe(false);
    stored.push(result.event);
  }
  return stored;
}

/** Every retained event of a tenant, by paging through read(). */
async function readAll(log: EventLog, tenantId: string, pageSize = 1000): Promise<StoredEvent[]> {
  const all: StoredEvent[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await log.read(tenantId, cursor, pageSize);
    expect(page.lost).toBe(false);
    all.push(...page.events);
    if (!page.hasMore) return all;
    cursor = page.next ?? undefined;
  }
}

function expectStrictlyIncreasing(list: string[]) {
  for (let i = 1; i < list.length; i++) {
    const order = comparePositions(list[i - 1], list[i]);
    if (order !== -1) throw new Error(`positions not strictly increasing at ${i}: ${list[i - 1]} then ${list[i]} (compare = ${order})`);
  }
}

/** The same position with another epoch. */
function withEpoch(position: string, epoch: string): string {
  const parsed = parsePosition(position);
  if (!parsed) throw new Error(`not a position: ${position}`);
  return formatPosition(epoch, parsed.offset.join("-"));
}

/** A position of the same epoch well beyond `position`. */
function beyond(position: string): string {
  const parsed = parsePosition(position);
  if (!parsed) throw new Error(`not a position: ${position}`);
  const offset = [parsed.offset[0] + 1_000_000, ...parsed.offset.slice(1)];
  return formatPosition(parsed.epoch, offset.join("-"));
}

interface Harness {
  /** A new log through the resolver (a restart, when called twice); closed after the test. */
  open(limits?: Partial<EventLogLimits>): EventLog;
  /** The Redis key prefix of the current test. */
  prefix(): string;
  /** The shared raw Redis client (Redis backend only). */
  redis(): Redis;
}

/**
 * Like `useStore`, but a test may open several logs (other limits, or a restart): each test gets
 * a unique key prefix (dropped after the file), every log opened is closed after the test, and the
 * Redis backend fails (never skips) when Redis is unreachable.
 */
function useEventLogs(backend: Backend): Harness {
  let client: Redis | undefined;
  let prefix: string | undefined;
  let opened: EventLog[] = [];
  const prefixes: string[] = [];

  beforeAll(async () => {
    if (backend.usesRedis) client = await requireRedis();
  });

  beforeEach(() => {
    if (backend.usesRedis && client?.status !== "ready") throw new Error(`Redis at ${REDIS_URL} is not ready`);
    prefix = uniquePrefix("eventlog");
    prefixes.push(prefix);
  });

  afterEach(async () => {
    const logs = opened;
    opened = [];
    prefix = undefined;
    await Promise.all(logs.map(log => log.close()));
  });

  afterAll(async () => {
    if (!backend.usesRedis) return;
    try {
      if (client) await Promise.all(prefixes.map(p => dropPrefix(p)));
    } finally {
      if (client) await releaseRedis(REDIS_URL);
      client = undefined;
    }
  });

  return {
    open(limits = {}) {
      if (!prefix) throw new Error("log opened outside of a test");
      const log = createEventLog({
        redisUrl: backend.usesRedis ? REDIS_URL : undefined,
        redisKeyPrefix: prefix,
        eventBusRetentionMs: limits.retentionMs ?? DEFAULT_LIMITS.retentionMs,
        eventBusMaxEventsPerTenant: limits.maxEventsPerTenant ?? DEFAULT_LIMITS.maxEventsPerTenant
      });
      opened.push(log);
      return log;
    },
    prefix() {
      if (!prefix) throw new Error("prefix used outside of a test");
      return prefix;
    },
    redis() {
      if (!client) throw new Error("raw Redis client used outside of a Redis test");
      return client;
    }
  };
}

for (const backend of backends) {
  describe(`EventLog contract (${backend.name})`, () => {
    const h = useEventLogs(backend);

    describe("append", () => {
      it("stores the event as given plus a position <epoch>.<offset>", async () => {
        const log = h.open();
        const input = ev("t1", "e1");
        const result = await log.append("t1", input, T0);
        expect(result.duplicate).toBe(false);
        expect(result.event).toEqual({ ...input, position: expect.any(String) });
        const parsed = parsePosition(result.event.position);
        expect(parsed).toBeDefined();
        expect(result.event.position).toMatch(/^[^.]+\.\d+(-\d+)?$/);
        expect(parsed?.epoch).not.toBe("");

        const read = await log.read("t1", undefined, 10);
        expect(read).toEqual({ events: [{ ...input, position: result.event.position }], hasMore: false, next: result.event.position, lost: false });
        // The input object is not mutated.
        expect(input).not.toHaveProperty("position");
      });

      it("gives strictly increasing positions in append order", async () => {
        const log = h.open();
        const stored = await appendMany(log, "t1", 30);
        expectStrictlyIncreasing(positions(stored));
        expect(new Set(stored.map(e => parsePosition(e.position)?.epoch)).size).toBe(1);
        expect(await readAll(log, "t1")).toEqual(stored);
      });

      it("preserves the audience, and its absence", async () => {
        const log = h.open();
        const toUser = ev("t1", "u", { audience: { userId: "user-1" } });
        const toRoom = ev("t1", "r", { audience: { roomId: "room:1" } });
        const toAll = ev("t1", "a");
        for (const input of [toUser, toRoom, toAll]) await log.append("t1", input, T0);

        const events = (await log.read("t1", undefined, 10)).events;
        expect(events.map(({ position: _position, ...rest }) => rest)).toEqual([toUser, toRoom, toAll]);
        expect(events[0].audience).toEqual({ userId: "user-1" });
        expect(events[1].audience).toEqual({ roomId: "room:1" });
        expect(events[2]).not.toHaveProperty("audience");
        expect(await log.tail("t1", 3)).toEqual(events);
      });
    });

    describe("idempotency by eventId", () => {
      it("answers a repeated eventId with the original event and position, writing nothing", async () => {
        const log = h.open();
        const original = await log.append("t1", ev("t1", "e1", { payload: { v: "original" } }), T0);
        const again = await log.append("t1", ev("t1", "e1", { payload: { v: "changed" }, eventType: "other.type" }), T0 + 1);
        expect(again.duplicate).toBe(true);
        expect(again.event).toEqual(original.event);
        expect(again.event.payload).toEqual({ v: "original" });
        expect(again.event.eventType).toBe("test.happened");

        const next = await log.append("t1", ev("t1", "e2"), T0 + 2);
        expect(next.duplicate).toBe(false);
        expect(comparePositions(original.event.position, next.event.position)).toBe(-1);

        const third = await log.append("t1", ev("t1", "e1", { payload: { v: "third" } }), T0 + 3);
        expect(third).toEqual({ event: original.event, duplicate: true });

        expect(ids(await readAll(log, "t1"))).toEqual(["e1", "e2"]);
        expect(await log.head("t1")).toBe(next.event.position);
      });

      it("returns one winner when the same eventId is appended 20 times concurrently", async () => {
        const log = h.open();
        await log.append("t1", ev("t1", "before"), T0);
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => log.append("t1", ev("t1", "same", { payload: { attempt: i } }), T0 + 1))
        );
        const written = results.filter(r => !r.duplicate);
        expect(written).toHaveLength(1);
        const winner = written[0].event;
        for (const result of results) expect(result.event).toEqual(winner);
        expect(new Set(results.map(r => r.event.position)).size).toBe(1);

        const all = await readAll(log, "t1");
        expect(ids(all)).toEqual(["before", "same"]);
        expect(all[1]).toEqual(winner);
      });
    });

    describe("idempotency index bound", () => {
      const cap = 5;
      const window = cap * ID_INDEX_FACTOR;

      it("remembers the newest ID_INDEX_FACTOR × cap eventIds, beyond the retained events, then forgets the oldest", async () => {
        const log = h.open({ maxEventsPerTenant: cap });
        const total = window + 3;
        const stored = await appendMany(log, "t1", total, 0); // e0..e12
        // Dropped from the log but still within the window: a retry is a duplicate at its first position.
        const oldestRemembered = total - window;
        const remembered = await log.append("t1", ev("t1", `e${oldestRemembered}`), T0 + 1);
        expect(remembered).toEqual({ duplicate: true, event: { ...ev("t1", `e${oldestRemembered}`), position: stored[oldestRemembered].position } });
        expect(ids(await readAll(log, "t1"))).toEqual(["e8", "e9", "e10", "e11", "e12"]);
        // Older than the window: forgotten, so it is appended again as a new event.
        const forgotten = await log.append("t1", ev("t1", "e0"), T0 + 2);
        expect(forgotten.duplicate).toBe(false);
        expect(comparePositions(stored[total - 1].position, forgotten.event.position)).toBe(-1);
        // Each tenant has its own window.
        expect((await log.append("t2", ev("t2", "e0"), T0 + 3)).duplicate).toBe(false);
      });

      it("treats eventIds with spaces and separators as opaque, remembering and forgetting them like any other", async () => {
        const log = h.open({ maxEventsPerTenant: 1 }); // a window of 2 ids
        const odd = "order 42: paid / shipped";
        const first = await log.append("t1", ev("t1", odd), T0);
        expect((await log.append("t1", ev("t1", odd), T0 + 1)).event.position).toBe(first.event.position);
        await log.append("t1", ev("t1", "next 1"), T0 + 2);
        expect((await log.append("t1", ev("t1", odd), T0 + 3)).duplicate).toBe(true);
        await log.append("t1", ev("t1", "next 2"), T0 + 4); // the window now holds "next 1", "next 2"
        expect((await log.append("t1", ev("t1", "next 1"), T0 + 5)).duplicate).toBe(true);
        const again = await log.append("t1", ev("t1", odd), T0 + 6);
        expect(again.duplicate).toBe(false);
        expect(comparePositions(first.event.position, again.event.position)).toBe(-1);
      });

      if (backend.usesRedis) {
        it("holds the index in Redis to the window under sustained traffic", async () => {
          const log = h.open({ maxEventsPerTenant: cap });
          await Promise.all(Array.from({ length: 300 }, (_, i) => log.append("t1", ev("t1", `s${i}`), T0)));
          const idsKey = `${h.prefix()}:t:t1:events:ids`;
          const orderKey = `${h.prefix()}:t:t1:events:idorder`;
          expect(await h.redis().hlen(idsKey)).toBe(window);
          expect(await h.redis().llen(orderKey)).toBe(window);
          // One key per tenant for the index, not one per eventId.
          expect(await keysUnder(h.redis(), h.prefix())).toEqual(
            ["events", "events:epoch", "events:idorder", "events:ids", "events:trimmed"].map(k => `${h.prefix()}:t:t1:${k}`).sort()
          );
        });

        it("forgets eventIds older than the retention period by Redis' clock, on append and on trim()", async () => {
          const log = h.open({ retentionMs: 1000 });
          const first = await appendMany(log, "t1", 3, 1);
          expect((await log.append("t1", ev("t1", "e1"), T0)).duplicate).toBe(true);
          await sleep(1100);
          expect(await log.trim("t1", 0)).toBe(3);
          expect(await h.redis().hlen(`${h.prefix()}:t:t1:events:ids`)).toBe(0);
          expect(await h.redis().llen(`${h.prefix()}:t:t1:events:idorder`)).toBe(0);
          const again = await log.append("t1", ev("t1", "e1"), T0);
          expect(again.duplicate).toBe(false);
          expect(again.event.position).not.toBe(first[0].position);
          // Expired but not yet trimmed: an append answers it as new, never with the stale position.
          await sleep(1100);
          const late = await log.append("t1", ev("t1", "e1"), T0);
          expect(late.duplicate).toBe(false);
          expect(comparePositions(again.event.position, late.event.position)).toBe(-1);
        });
      } else {
        it("forgets eventIds older than the retention period by the given clock", async () => {
          const R = 60_000;
          const log = h.open({ retentionMs: R });
          const first = await appendMany(log, "t1", 3, 1, T0);
          expect((await log.append("t1", ev("t1", "e1"), T0 + R)).duplicate).toBe(true);
          const again = await log.append("t1", ev("t1", "e1"), T0 + R + 1);
          expect(again.duplicate).toBe(false);
          expect(again.event.position).not.toBe(first[0].position);
        });

        it("expires remembered eventIds of events already dropped by the cap, and keeps those of retained events", async () => {
          const R = 60_000;
          const log = h.open({ retentionMs: R, maxEventsPerTenant: 2 });
          const stored: StoredEvent[] = [];
          for (let i = 0; i < 4; i++) stored.push((await log.append("t1", ev("t1", `e${i + 1}`), T0 + 10 * i)).event);
          // e1 and e2 are past the cap but still remembered.
          expect((await log.append("t1", ev("t1", "e1"), T0 + 30)).duplicate).toBe(true);
          // By T0 + R + 15, e1 (T0) and e2 (T0 + 10) are past retention; e3 and e4 are not.
          const now = T0 + R + 15;
          const retained = await log.append("t1", ev("t1", "e3"), now);
          expect(retained).toEqual({ event: stored[2], duplicate: true });
          const forgotten = await log.append("t1", ev("t1", "e2"), now);
          expect(forgotten.duplicate).toBe(false);
          expect(comparePositions(stored[3].position, forgotten.event.position)).toBe(-1);
          expect((await log.read("t1", undefined, 10)).events.map(e => e.eventId)).toEqual(["e4", "e2"]);
        });
      }
    });

    describe("read", () => {
      it("reads everything retained oldest first, then strictly after a cursor", async () => {
        const log = h.open();
        const stored = await appendMany(log, "t1", 5);

        expect(await log.read("t1", undefined, 100)).toEqual({ events: stored, hasMore: false, next: stored[4].position, lost: false });
        expect(await log.read("t1", stored[1].position, 100)).toEqual({ events: stored.slice(2), hasMore: false, next: stored[4].position, lost: false });
        expect(await log.read("t1", stored[3].position, 100)).toEqual({ events: [stored[4]], hasMore: false, next: stored[4].position, lost: false });
      });

      it("limits a page and reports hasMore, continuing from next", async () => {
        const log = h.open();
        const stored = await appendMany(log, "t1", 5);

        const first = await log.read("t1", undefined, 2);
        expect(first).toEqual({ events: stored.slice(0, 2), hasMore: true, next: stored[1].position, lost: false });
        const second = await log.read("t1", first.next ?? undefined, 2);
        expect(second).toEqual({ events: stored.slice(2, 4), hasMore: true, next: stored[3].position, lost: false });
        const third = await log.read("t1", second.next ?? undefined, 2);
        expect(third).toEqual({ events: [stored[4]], hasMore: false, next: stored[4].position, lost: false });

        // A page that ends exactly on the newest event has nothing more.
        expect(await log.read("t1", undefined, 5)).toEqual({ events: stored, hasMore: false, next: stored[4].position, lost: false });
        expect(await log.read("t1", stored[0].position, 4)).toEqual({ events: stored.slice(1), hasMore: false, next: stored[4].position, lost: false });
        expect((await log.read("t1", undefined, 4)).hasMore).toBe(true);
      });

      it("answers a caught-up cursor with no events and the cursor itself as next", async () => {
        const log = h.open();
        const stored = await appendMany(log, "t1", 3);
        const head = stored[2].position;
        expect(await log.read("t1", head, 10)).toEqual({ events: [], hasMore: false, next: head, lost: false });

        // The poller keeps its cursor and sees what comes next.
        const later = await log.append("t1", ev("t1", "e4"), T0 + 1);
        expect(await log.read("t1", head, 10)).toEqual({ events: [later.event], hasMore: false, next: later.event.position, lost: false });
      });

      it("pages through 250 events with limit 100, each exactly once and in order", async () => {
        const log = h.open();
        const stored = await appendMany(log, "t1", 250);

        const seen: StoredEvent[] = [];
        const pageSizes: number[] = [];
        let cursor: string | undefined;
        for (let guard = 0; guard < 10; guard++) {
          const page = await log.read("t1", cursor, 100);
          expect(page.lost).toBe(false);
          seen.push(...page.events);
          pageSizes.push(page.events.length);
          expect(page.next).toBe(page.events[page.events.length - 1].position);
          if (!page.hasMore) break;
          cursor = page.next ?? undefined;
        }
        expect(pageSizes).toEqual([100, 100, 50]);
        expect(seen).toEqual(stored);
        expect(new Set(positions(seen)).size).toBe(250);
        expectStrictlyIncreasing(positions(seen));

        const last = stored[249].position;
        expect(await log.read("t1", last, 100)).toEqual({ events: [], hasMore: false, next: last, lost: false });
      });
    });

    describe("an empty or never-used tenant", () => {
      it("has no events, no head and an empty tail, without reporting a loss", async () => {
        const log = h.open();
        await appendMany(log, "other", 2);
        expect(await log.read("ghost", undefined, 10)).toEqual({ events: [], hasMore: false, next: null, lost: false });
        expect(await log.head("ghost")).toBeNull();
        expect(await log.tail("ghost", 5)).toEqual([]);
        expect(await log.trim("ghost", T0)).toBe(0);
      });

      it("cannot serve a cursor: it belongs to no history of this tenant", async () => {
        const log = h.open();
        const [other] = await appendMany(log, "other", 1);
        expect(await log.read("ghost", other.position, 10)).toEqual({ events: [], hasMore: false, next: null, lost: true });
      });
    });

    describe("tenant isolation", () => {
      it("keeps two tenants with the same eventIds as independent logs", async () => {
        const log = h.open();
        const a = await appendMany(log, "A", 3);
        const b = await appendMany(log, "B", 5);
        // Same eventIds, other tenant: none of B's appends was a duplicate (checked by appendMany).
        expect(ids(a)).toEqual(["e1", "e2", "e3"]);
        expect(ids(b)).toEqual(["e1", "e2", "e3", "e4", "e5"]);

        expect(await readAll(log, "A")).toEqual(a);
        expect(await readAll(log, "B")).toEqual(b);
        expect((await readAll(log, "A")).every(e => e.tenantId === "A")).toBe(true);
        expect(await log.head("A")).toBe(a[2].position);
        expect(await log.head("B")).toBe(b[4].position);
        expect(await log.tail("A", 10)).toEqual(a);

        const dupInA = await log.append("A", ev("A", "e4"), T0 + 1);
        expect(dupInA.duplicate).toBe(false);
        expect(dupInA.event.tenantId).toBe("A");
        expect((await log.append("B", ev("B", "e4", { payload: "x" }), T0 + 1)).event).toEqual(b[3]);
      });

      it("never answers a cursor of tenant A with A's events on tenant B", async () => {
        const log = h.open();
        const a = await appendMany(log, "A", 3);
        const b = await appendMany(log, "B", 5);

        for (const cursor of positions(a)) {
          const read = await log.read("B", cursor, 100);
          expect(read.events.every(e => e.tenantId === "B")).toBe(true);
          if (read.lost) {
            expect(read).toEqual({ events: [], hasMore: false, next: b[4].position, lost: true });
          } else {
            // Only possible when both tenants share an epoch (one memory process): B's own events.
            expect(backend.usesRedis).toBe(false);
            for (const event of read.events) expect(b).toContainEqual(event);
          }
        }
        if (backend.usesRedis) {
          // Each Redis stream has its own epoch: another tenant's cursor is always "history lost".
          expect((await log.read("B", a[0].position, 100)).lost).toBe(true);
          expect(parsePosition(a[0].position)?.epoch).not.toBe(parsePosition(b[0].position)?.epoch);
        }
        // And B's cursor on A never yields B's events.
        const back = await log.read("A", b[0].position, 100);
        expect(back.events.every(e => e.tenantId === "A")).toBe(true);
      });
    });

    describe("size cap", () => {
      it("keeps only the newest maxEventsPerTenant events and reports cursors that lost history", async () => {
        const log = h.open({ maxEventsPerTenant: 5 });
        const stored = await appendMany(log, "t1", 8); // #1..#8 = stored[0..7]
        const retained = stored.slice(3);
        const head = stored[7].position;

        expect(await log.read("t1", undefined, 100)).toEqual({ events: retained, hasMore: false, next: head, lost: false });
        expect(await log.tail("t1", 100)).toEqual(retained);
        expect(await log.head("t1")).toBe(head);

        // #2's successor #3 was trimmed: history lost.
        expect(await log.read("t1", stored[1].position, 100)).toEqual({ events: [], hasMore: false, next: head, lost: true });
        expect(await log.read("t1", stored[0].position, 100)).toEqual({ events: [], hasMore: false, next: head, lost: true });
        // #3 was trimmed but its successor #4 is retained: nothing is missing.
        expect(await log.read("t1", stored[2].position, 100)).toEqual({ events: retained, hasMore: false, next: head, lost: false });
        expect(await log.read("t1", stored[2].position, 2)).toEqual({ events: retained.slice(0, 2), hasMore: true, next: stored[4].position, lost: false });

        // A later append trims one more, keeping five.
        const ninth = await log.append("t1", ev("t1", "e9"), T0 + 1);
        expect(ids(await readAll(log, "t1"))).toEqual(["e5", "e6", "e7", "e8", "e9"]);
        expect((await log.read("t1", stored[2].position, 100)).lost).toBe(true);
        expect(await log.read("t1", stored[3].position, 100)).toEqual({ events: [...stored.slice(4), ninth.event], hasMore: false, next: ninth.event.position, lost: false });
      });

      it("caps each tenant separately", async () => {
        const log = h.open({ maxEventsPerTenant: 3 });
        await appendMany(log, "A", 5);
        await appendMany(log, "B", 2);
        expect(ids(await readAll(log, "A"))).toEqual(["e3", "e4", "e5"]);
        expect(ids(await readAll(log, "B"))).toEqual(["e1", "e2"]);
      });
    });

    describe("epochs", () => {
      it("answers an unknown epoch, a garbage cursor and a future offset with lost and the head", async () => {
        const log = h.open();
        const stored = await appendMany(log, "t1", 3);
        const head = stored[2].position;
        const epoch = parsePosition(head)?.epoch ?? "";

        const lostCursors = [
          withEpoch(stored[0].position, `x${epoch}`),
          withEpoch(stored[0].position, "m000000000000"),
          withEpoch(stored[0].position, "r000000000000"),
          "garbage",
          "",
          ".",
          `${epoch}.`,
          `${epoch}.abc`,
          `${epoch}.1-2-3`,
          `${epoch}.-1`,
          `${epoch}.${"9".repeat(200)}`,
          "x".repeat(500),
          beyond(head)
        ];
        for (const cursor of lostCursors) {
          expect({ cursor, read: await log.read("t1", cursor, 10) }).toEqual({ cursor, read: { events: [], hasMore: false, next: head, lost: true } });
        }
        // Nothing of the above disturbed the log.
        expect(await readAll(log, "t1")).toEqual(stored);
      });

      it("answers the other backend's cursor format with lost", async () => {
        const log = h.open();
        const stored = await appendMany(log, "t1", 2);
        const parsed = parsePosition(stored[0].position);
        // A memory offset is one integer, a Redis offset two: the other shape is never served.
        const foreign = parsed?.offset.length === 1 ? formatPosition(parsed.epoch, `${parsed.offset[0]}-0`) : formatPosition(parsed?.epoch ?? "", "0");
        expect(await log.read("t1", foreign, 10)).toEqual({ events: [], hasMore: false, next: stored[1].position, lost: true });
      });

      if (!backend.usesRedis) {
        it("starts a new epoch on restart: a new instance answers the old cursors with lost", async () => {
          const before = h.open();
          const stored = await appendMany(before, "t1", 3);
          expect(before).toBeInstanceOf(MemoryEventLog);

          const after = h.open();
          expect(await after.read("t1", stored[1].position, 10)).toEqual({ events: [], hasMore: false, next: null, lost: true });
          expect(await after.read("t1", undefined, 10)).toEqual({ events: [], hasMore: false, next: null, lost: false });

          const fresh = await after.append("t1", ev("t1", "e1"), T0 + 1);
          expect(fresh.duplicate).toBe(false);
          expect(parsePosition(fresh.event.position)?.epoch).not.toBe(parsePosition(stored[0].position)?.epoch);
          expect(comparePositions(fresh.event.position, stored[0].position)).toBeUndefined();
          for (const old of positions(stored)) {
            expect(await after.read("t1", old, 10)).toEqual({ events: [], hasMore: false, next: fresh.event.position, lost: true });
          }
          // The old instance still serves its own cursors.
          expect((await before.read("t1", stored[0].position, 10)).events).toEqual(stored.slice(1));
        });
      } else {
        it("survives a restart: a new instance on the same Redis serves the old cursors", async () => {
          const before = h.open();
          const stored = await appendMany(before, "t1", 3);
          expect(before).toBeInstanceOf(RedisEventLog);

          const after = h.open();
          expect(await after.read("t1", stored[0].position, 10)).toEqual({ events: stored.slice(1), hasMore: false, next: stored[2].position, lost: false });
          expect((await after.append("t1", ev("t1", "e2", { payload: "retry" }), T0 + 1)).event).toEqual(stored[1]);
          const fourth = await after.append("t1", ev("t1", "e4"), T0 + 1);
          expect(comparePositions(stored[2].position, fourth.event.position)).toBe(-1);
        });

        it("starts a new epoch when the tenant's stream is deleted: old cursors are lost", async () => {
          const log = h.open();
          const stored = await appendMany(log, "t1", 3);
          const streamKey = `${h.prefix()}:t:t1:events`;
          expect(await h.redis().type(streamKey)).toBe("stream");
          expect(await h.redis().del(streamKey)).toBe(1);

          expect(await log.head("t1")).toBeNull();
          expect(await log.read("t1", stored[1].position, 10)).toEqual({ events: [], hasMore: false, next: null, lost: true });

          const fresh = await log.append("t1", ev("t1", "new-1"), T0 + 1);
          expect(fresh.duplicate).toBe(false);
          const oldEpoch = parsePosition(stored[0].position)?.epoch;
          const newEpoch = parsePosition(fresh.event.position)?.epoch;
          expect(newEpoch).toBeDefined();
          expect(newEpoch).not.toBe(oldEpoch);

          for (const old of positions(stored)) {
            expect(await log.read("t1", old, 10)).toEqual({ events: [], hasMore: false, next: fresh.event.position, lost: true });
          }
          expect(await log.read("t1", undefined, 10)).toEqual({ events: [fresh.event], hasMore: false, next: fresh.event.position, lost: false });
          expect(await log.read("t1", fresh.event.position, 10)).toEqual({ events: [], hasMore: false, next: fresh.event.position, lost: false });
          expect(await log.tail("t1", 10)).toEqual([fresh.event]);
        });
      }
    });

    describe("retention", () => {
      if (!backend.usesRedis) {
        it("drops events older than the retention period by the given clock", async () => {
          const R = 60_000;
          const log = h.open({ retentionMs: R });
          const old = await appendMany(log, "t1", 3, 1, T0);

          // Exactly at the boundary nothing is old enough yet.
          expect(await log.trim("t1", T0 + R)).toBe(0);
          expect(await readAll(log, "t1")).toEqual(old);

          const fresh = await log.append("t1", ev("t1", "e4"), T0 + R + 1);
          expect(fresh.duplicate).toBe(false);
          expect(await log.read("t1", undefined, 10)).toEqual({ events: [fresh.event], hasMore: false, next: fresh.event.position, lost: false });
          expect(await log.tail("t1", 10)).toEqual([fresh.event]);
          expect(await log.head("t1")).toBe(fresh.event.position);

          // #1 and #2 lost their successors; #3's successor #4 is still there.
          expect(await log.read("t1", old[0].position, 10)).toEqual({ events: [], hasMore: false, next: fresh.event.position, lost: true });
          expect(await log.read("t1", old[1].position, 10)).toEqual({ events: [], hasMore: false, next: fresh.event.position, lost: true });
          expect(await log.read("t1", old[2].position, 10)).toEqual({ events: [fresh.event], hasMore: false, next: fresh.event.position, lost: false });
        });

        it("trim() removes expired events and returns how many", async () => {
          const R = 60_000;
          const log = h.open({ retentionMs: R });
          const old = await appendMany(log, "t1", 2, 1, T0);
          const young = await appendMany(log, "t1", 2, 3, T0 + 1000);

          expect(await log.trim("t1", T0 + R + 1)).toBe(2);
          expect(await log.trim("t1", T0 + R + 1)).toBe(0);
          expect(await readAll(log, "t1")).toEqual(young);
          expect((await log.read("t1", old[0].position, 10)).lost).toBe(true);

          expect(await log.trim("t1", T0 + 1000 + R + 1)).toBe(2);
          expect(await log.read("t1", undefined, 10)).toEqual({ events: [], hasMore: false, next: null, lost: false });
          expect(await log.head("t1")).toBeNull();
          expect(await log.tail("t1", 10)).toEqual([]);
          expect((await log.read("t1", young[0].position, 10)).lost).toBe(true);
          // The newest trimmed event missed nothing: it is served, and nothing is new.
          expect(await log.read("t1", young[1].position, 10)).toEqual({ events: [], hasMore: false, next: young[1].position, lost: false });
          expect((await log.read("t1", beyond(young[1].position), 10)).lost).toBe(true);
        });
      } else {
        it("trims by Redis' clock, ignoring `now`", async () => {
          const log = h.open({ retentionMs: 1000 });
          // A `now` far in the future is ignored: nothing is trimmed on append or on trim().
          const old = await appendMany(log, "t1", 3, 1, T0 + 10 * WEEK);
          expect(await log.trim("t1", Date.now() + WEEK)).toBe(0);
          expect(await readAll(log, "t1")).toEqual(old);

          await sleep(1100);
          expect(await log.trim("t1", 0)).toBe(3);
          expect(await log.trim("t1", 0)).toBe(0);
          expect(await log.read("t1", undefined, 10)).toEqual({ events: [], hasMore: false, next: null, lost: false });
          expect(await log.head("t1")).toBeNull();
          expect(await log.tail("t1", 10)).toEqual([]);

          expect(await log.read("t1", old[0].position, 10)).toEqual({ events: [], hasMore: false, next: null, lost: true });
          expect(await log.read("t1", old[1].position, 10)).toEqual({ events: [], hasMore: false, next: null, lost: true });
          // The newest trimmed event missed nothing: it is served, and nothing is new.
          expect(await log.read("t1", old[2].position, 10)).toEqual({ events: [], hasMore: false, next: old[2].position, lost: false });
          // A cursor beyond anything this epoch ever wrote is not served, even with an empty stream.
          expect((await log.read("t1", beyond(old[2].position), 10)).lost).toBe(true);

          const fresh = await log.append("t1", ev("t1", "e4"), T0);
          expect(parsePosition(fresh.event.position)?.epoch).toBe(parsePosition(old[0].position)?.epoch);
          expect(await log.read("t1", undefined, 10)).toEqual({ events: [fresh.event], hasMore: false, next: fresh.event.position, lost: false });
          expect(await log.read("t1", old[2].position, 10)).toEqual({ events: [fresh.event], hasMore: false, next: fresh.event.position, lost: false });
          expect((await log.read("t1", old[0].position, 10)).lost).toBe(true);
        });
      }
    });

    describe("tail / head", () => {
      it("returns the last n events oldest first, and the newest position as head", async () => {
        const log = h.open();
        expect(await log.head("t1")).toBeNull();
        const stored = await appendMany(log, "t1", 6);

        expect(await log.tail("t1", 3)).toEqual(stored.slice(3));
        expect(await log.tail("t1", 1)).toEqual([stored[5]]);
        expect(await log.tail("t1", 6)).toEqual(stored);
        expect(await log.tail("t1", 100)).toEqual(stored);
        expect(await log.tail("t1", 0)).toEqual([]);
        expect(await log.head("t1")).toBe(stored[5].position);

        const seventh = await log.append("t1", ev("t1", "e7"), T0 + 1);
        expect(await log.head("t1")).toBe(seventh.event.position);
        expect(await log.tail("t1", 2)).toEqual([stored[5], seventh.event]);
        // A duplicate does not move the head.
        await log.append("t1", ev("t1", "e3"), T0 + 2);
        expect(await log.head("t1")).toBe(seventh.event.position);
      });
    });

    describe("concurrency", () => {
      it("orders 10 concurrent publishers × 20 appends consistently, each in its send order", async () => {
        const log = h.open();
        const publishers = 10;
        const perPublisher = 20;
        const results = await Promise.all(
          Array.from({ length: publishers }, async (_, p) => {
            const mine: StoredEvent[] = [];
            for (let i = 0; i < perPublisher; i++) {
              const result = await log.append("t1", ev("t1", `p${p}-${i}`, { payload: { p, i } }), T0 + i);
              expect(result.duplicate).toBe(false);
              mine.push(result.event);
            }
            return mine;
          })
        );

        const appended = results.flat();
        expect(appended).toHaveLength(200);
        expect(new Set(positions(appended)).size).toBe(200);

        const all = await readAll(log, "t1", 1000);
        expect(all).toHaveLength(200);
        expectStrictlyIncreasing(positions(all));
        const byId = new Map(appended.map(e => [e.eventId, e]));
        for (const event of all) expect(event).toEqual(byId.get(event.eventId));

        for (let p = 0; p < publishers; p++) {
          expect(ids(all.filter(e => e.eventId.startsWith(`p${p}-`)))).toEqual(Array.from({ length: perPublisher }, (_, i) => `p${p}-${i}`));
          expectStrictlyIncreasing(positions(results[p]));
        }
        expect(await log.head("t1")).toBe(all[199].position);
      });

      it("keeps a fire-and-forget burst from one publisher in send order", async () => {
        const log = h.open();
        const results = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append("t1", ev("t1", `b${i}`), T0)));
        expectStrictlyIncreasing(results.map(r => r.event.position));
        expect(ids(await readAll(log, "t1"))).toEqual(Array.from({ length: 50 }, (_, i) => `b${i}`));
      });
    });
  });
}

describe("createEventLog resolver", () => {
  const limits = { eventBusRetentionMs: WEEK, eventBusMaxEventsPerTenant: 100 };

  it("returns the in-process log without REDIS_URL", async () => {
    const log = createEventLog({ redisUrl: undefined, redisKeyPrefix: "unused", ...limits });
    try {
      expect(log).toBeInstanceOf(MemoryEventLog);
    } finally {
      await log.close();
    }
  });

  it("returns a Redis log that writes under its key prefix", async () => {
    const client = await requireRedis();
    const prefix = uniquePrefix("eventlog-resolver");
    const log = createEventLog({ redisUrl: REDIS_URL, redisKeyPrefix: prefix, ...limits });
    try {
      expect(log).toBeInstanceOf(RedisEventLog);
      const { event } = await log.append("t:1", ev("t:1", "e/1"), T0);
      expect(await keysUnder(client, prefix)).toEqual([
        `${prefix}:t:t%3A1:events`,
        `${prefix}:t:t%3A1:events:epoch`,
        `${prefix}:t:t%3A1:events:idorder`,
        `${prefix}:t:t%3A1:events:ids`
      ]);
      expect(await client.xlen(`${prefix}:t:t%3A1:events`)).toBe(1);
      expect(await client.get(`${prefix}:t:t%3A1:events:epoch`)).toBe(parsePosition(event.position)?.epoch);
      // The eventId is a hash field, not part of a key: kept as sent.
      expect(await client.hgetall(`${prefix}:t:t%3A1:events:ids`)).toEqual({ "e/1": event.position });
      expect(await client.lrange(`${prefix}:t:t%3A1:events:idorder`, 0, -1)).toEqual([`${parsePosition(event.position)?.offset.join("-")} e/1`]);
    } finally {
      await log.close();
      await dropPrefix(prefix);
      await releaseRedis(REDIS_URL);
    }
  });

  it("rejects an append when Redis is unreachable (never a false success)", async () => {
    const url = "redis://127.0.0.1:1";
    const log = createEventLog({ redisUrl: url, redisKeyPrefix: uniquePrefix("eventlog-down"), ...limits });
    try {
      await expect(log.append("t1", ev("t1", "e1"), T0)).rejects.toThrow();
      await expect(log.read("t1", undefined, 10)).rejects.toThrow();
    } finally {
      await log.close();
    }
  });
});
