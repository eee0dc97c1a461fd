import type { AuditInput } from "./audit-trail";

/**
 * Turns floods of one kind of security refusal into a bounded number of audit records.
 *
 * Occurrences are grouped by a key (e.g. reason + source address). Per key and window, the first
 * occurrence is recorded at once (`details.count: 1`), so the first sign of an attack is durable
 * immediately; the repeats that follow within the window become one record when the window ends
 * (`details: {count, firstAt, lastAt, windowMs, aggregated: true}`). The counts of all records add
 * up to the number of occurrences. At most `maxKeys` keys are open at once; beyond that,
 * occurrences are counted under one overflow key per action (tenant `_system`, target `*`), so
 * varying the source cannot multiply the records either.
 */
export interface Aggregation {
  /** Occurrences with the same key in one window share records. */
  key: string;
  /** A details field that varies within a key: the aggregated record lists up to 10 of its values as `<field>Samples`. */
  sampleField?: string;
}

interface Open {
  input: AuditInput;
  sampleField?: string;
  windowStart: number;
  repeats: number;
  firstAt: number;
  lastAt: number;
  samples: Set<string>;
}

const MAX_SAMPLES = 10;

export class AuditAggregator {
  private readonly open = new Map<string, Open>();

  constructor(
    private readonly windowMs: number,
    private readonly emit: (input: AuditInput) => void,
    private readonly overflowTenant: string,
    private readonly maxKeys = 10_000
  ) {}

  hit(input: AuditInput, aggregation: Aggregation, now: number = Date.now()): void {
    let key = aggregation.key;
    let entry = this.open.get(key);
    if (entry && now >= entry.windowStart + this.windowMs) {
      this.close(entry);
      this.open.delete(key);
      entry = undefined;
    }
    if (!entry && this.open.size >= this.maxKeys) {
      key = `\u0000overflow:${input.action}`;
      input = {
        tenantId: this.overflowTenant,
        actor: { userId: "*", role: "*", ...(input.actor.nodeID ? { nodeID: input.actor.nodeID } : {}) },
        action: input.action,
        target: "*",
        outcome: input.outcome,
        details: { overflow: true, note: `more than ${this.maxKeys} distinct sources in one window` }
      };
      aggregation = { key };
      entry = this.open.get(key);
    }
    if (!entry) {
      this.open.set(key, { input, sampleField: aggregation.sampleField, windowStart: now, repeats: 0, firstAt: 0, lastAt: 0, samples: new Set() });
      this.emit({ ...input, details: { ...input.details, count: 1 } });
      return;
    }
    entry.repeats += 1;
    if (entry.repeats === 1) entry.firstAt = now;
    entry.lastAt = now;
    const sample = entry.sampleField ? input.details?.[entry.sampleField] : undefined;
    if (sample !== undefined && entry.samples.size < MAX_SAMPLES) entry.samples.add(String(sample).slice(0, 128));
  }

  /** Records the repeats of every window that has ended. */
  sweep(now: number = Date.now()): void {
    for (const [key, entry] of this.open) {
      if (now < entry.windowStart + this.windowMs) continue;
      this.close(entry);
      this.open.delete(key);
    }
  }

  /** Records every pending repeat now (shutdown). */
  flush(): void {
    for (const entry of this.open.values()) this.close(entry);
    this.open.clear();
  }

  get openKeys(): number {
    return this.open.size;
  }

  private close(entry: Open): void {
    if (entry.repeats === 0) return;
    const details: Record<string, unknown> = { ...entry.input.details };
    if (entry.sampleField) {
      delete details[entry.sampleField];
      details[`${entry.sampleField}Samples`] = [...entry.samples];
    }
    this.emit({
      ...entry.input,
      details: {
        ...details,
        count: entry.repeats,
        firstAt: new Date(entry.firstAt).toISOString(),
        lastAt: new Date(entry.lastAt).toISOString(),
        windowMs: this.windowMs,
        aggregated: true
      }
    });
  }
}
