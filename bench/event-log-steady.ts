/**
 * The in-process event log (the embedded default) once it is full, against itself while it fills
 * and against a floor, in the same run:
 *
 * - filling: the first EVENT_BUS_MAX_EVENTS_PER_TENANT appends of a tenant (nothing is dropped);
 * - steady: the appends after 2 × ID_INDEX_FACTOR × that, when every append also drops the oldest
 *   event and the oldest remembered eventId (the state of every busy long-running deployment);
 * - floor: a bare array push and Map set per event, the least an idempotent in-memory log can do.
 *
 * steady / filling should stay near 1: dropping the oldest must be O(1). (It was 40–130 µs per
 * append, ~50× filling, while the id index was a plain Map emptied from its front.)
 *
 *   npm run bench:log       (BENCH_LOG_CAP = events per tenant, default 100000; BENCH_ROUNDS, default 3)
 */
import { ID_INDEX_FACTOR, type BusEvent } from "../stores/event-log/event-log";
import { MemoryEventLog } from "../stores/event-log/event-log.memory";

const CAP = Number(process.env.BENCH_LOG_CAP ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WEEK = 7 * 24 * 3600_000;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const event = (i: number): BusEvent => ({
  eventId: `evt-${i}`,
  eventType: "chat.message",
  tenantId: "acme",
  timestamp: "2026-12-03T00:00:00.000Z",
  payload: { text: "hello", i },
  metadata: {},
  schemaVersion: "1.0"
});

/** µs per append for appends [from, to) of one log, after appending everything before `from`. */
async function timeAppends(log: MemoryEventLog, from: number, to: number, now: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = from; i < to; i++) await log.append("acme", event(i), now);
  return Number(process.hrtime.bigint() - start) / 1000 / (to - from);
}

function floor(count: number): number {
  const events: unknown[] = [];
  const ids = new Map<string, number>();
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const e = event(i);
    if (ids.has(e.eventId)) continue;
    events.push({ ...e, position: `m.${i}` });
    ids.set(e.eventId, i);
  }
  return Number(process.hrtime.bigint() - start) / 1000 / count;
}

async function main() {
  const rows: Array<{ filling: number; steady: number; floor: number }> = [];
  const full = CAP * ID_INDEX_FACTOR * 2;
  for (let round = 0; round < ROUNDS; round++) {
    const now = Date.now();
    const log = new MemoryEventLog({ retentionMs: WEEK, maxEventsPerTenant: CAP });
    const filling = await timeAppends(log, 0, CAP, now);
    await timeAppends(log, CAP, full, now);
    const steady = await timeAppends(log, full, full + CAP, now);
    await log.close();
    rows.push({ filling, steady, floor: floor(CAP) });
    console.log(`round ${round + 1}: filling ${filling.toFixed(2)} µs/append, steady ${steady.toFixed(2)}, floor ${rows[round].floor.toFixed(2)}`);
  }
  const filling = median(rows.map(r => r.filling));
  const steady = median(rows.map(r => r.steady));
  const base = median(rows.map(r => r.floor));
  console.log(`\nMemory event log, cap ${CAP} events per tenant, medians of ${ROUNDS} rounds (µs per append):`);
  console.log("| filling | steady (full, dropping) | floor (array + Map) | steady / filling | steady / floor |");
  console.log("|---:|---:|---:|---:|---:|");
  console.log(`| ${filling.toFixed(2)} | ${steady.toFixed(2)} | ${base.toFixed(2)} | ${(steady / filling).toFixed(2)}× | ${(steady / base).toFixed(2)}× |`);
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
