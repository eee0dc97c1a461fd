/**
 * A log-bucketed latency histogram (1 % relative precision, 1 µs .. ~20 min), cheap to record
 * into from hot event handlers and to ship between processes (sparse [bucket, count] pairs).
 */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = 2200;

export type HistogramData = Array<[number, number]>;

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;

  /** Records one value in microseconds. */
  record(us: number): void {
    const index = us < 1 ? 0 : Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(us) / LOG_GROWTH));
    this.counts[index] += 1;
    this.count += 1;
    if (us > this.max) this.max = us;
  }

  merge(data: HistogramData): void {
    for (const [index, n] of data) {
      this.counts[index] += n;
      this.count += n;
      const upper = bucketValue(index);
      if (upper > this.max) this.max = upper;
    }
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
  }

  /** Value (µs) at quantile q in [0, 1]; NaN when empty. */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return bucketValue(i);
    }
    return this.max;
  }

  toData(): HistogramData {
    const data: HistogramData = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] > 0) data.push([i, this.counts[i]]);
    return data;
  }

  static from(parts: HistogramData[]): Histogram {
    const h = new Histogram();
    for (const part of parts) h.merge(part);
    return h;
  }
}

/** Geometric middle of a bucket, in µs. */
function bucketValue(index: number): number {
  if (index === 0) return 0.5;
  return Math.pow(GROWTH, index - 1 + 0.5);
}
