import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, stat, truncate, unlink } from "node:fs/promises";
import path from "node:path";
import { FifoMap } from "../../lib/fifo-map";
import { canonicalJson } from "../../lib/canonical-json";
import { GENESIS_ANCHOR, sealNext, type AuditRecord, type ChainAnchor, type ScannedEntry } from "../../lib/audit-chain";
import { DAY_MS, RECENT_IDS_PER_CHAIN, type AuditEntry, type AuditPage, type AuditQuery, type AuditStore } from "./audit-store";

/**
 * The embedded default: one append-only JSON-lines file per tenant under `<DATA_DIR>/audit`,
 * named by the SHA-256 of the tenant id. Each line is one record in canonical JSON; a retention
 * purge rewrites a file to start with an anchor line `{"anchor":{tenantId, seq, hash, purgedAt}}`.
 *
 * An append resolves after write + fdatasync. Appends to one chain are serialised by an
 * in-process queue (concurrent appends share one write and one sync), so ONE process may write a
 * data directory: run a single audit node with this backend (PostgreSQL for more).
 *
 * On load, a last line without its newline is a write that was cut off before it was acknowledged:
 * it is truncated away. Any other line that does not parse is kept and reported by `verify`.
 * Only a byte offset and a time per record are kept in memory; queries read the file.
 */
export interface FileAuditStoreOptions {
  /** Told about repairs made on load (a torn last line removed). */
  onWarning?: (message: string, details: Record<string, unknown>) => void;
}

interface Chain {
  tenantId: string;
  file: string;
  /** Bytes of acknowledged content; everything after is not part of the chain. */
  size: number;
  anchor: ChainAnchor;
  /** Byte length of the anchor line (0 when the file starts at seq 1). */
  anchorBytes: number;
  /** Start offset and `at` (ms; NaN when unreadable) of each record line, in file order. */
  offsets: number[];
  ats: number[];
  /** The last readable record (or the anchor), which the next append chains to. */
  head: { seq: number; hash: string; atMs: number };
  /** Recently appended ids → line index, to answer retried appends. */
  recent: FifoMap<string, number>;
  pending: Array<{ entry: AuditEntry; now: number; resolve: (r: { record: AuditRecord; duplicate: boolean }) => void; reject: (err: unknown) => void }>;
  flushScheduled: boolean;
  /** Tail of the chain's mutex: every write and every purge runs after the previous one. */
  lock: Promise<unknown>;
}

export class FileAuditStore implements AuditStore {
  readonly backend = "file" as const;
  private readonly dir: string;
  private readonly chains = new Map<string, Promise<Chain>>();
  private closed = false;

  constructor(
    dataDir: string,
    private readonly options: FileAuditStoreOptions = {}
  ) {
    this.dir = path.resolve(dataDir, "audit");
  }

  append(tenantId: string, entry: AuditEntry, now: number): Promise<{ record: AuditRecord; duplicate: boolean }> {
    if (this.closed) return Promise.reject(new Error("Audit store is closed"));
    return this.chain(tenantId).then(
      chain =>
        new Promise((resolve, reject) => {
          chain.pending.push({ entry, now, resolve, reject });
          if (!chain.flushScheduled) {
            chain.flushScheduled = true;
            void this.exclusive(chain, () => this.flush(chain)).catch(() => undefined);
          }
        })
    );
  }

  async query(tenantId: string, query: AuditQuery): Promise<AuditPage> {
    const chain = await this.chain(tenantId);
    const count = chain.offsets.length;
    let start = query.afterSeq !== undefined ? Math.max(0, Math.min(count, query.afterSeq - chain.anchor.seq)) : 0;
    if (query.from !== undefined) start = Math.max(start, lowerBound(chain.ats, query.from));
    const records: AuditRecord[] = [];
    if (start >= count) return { records, hasMore: false };
    const end = chain.size;
    for await (const line of readLines(chain.file, chain.offsets[start], end)) {
      const record = parseRecord(line.text);
      if (!record) continue;
      if (query.afterSeq !== undefined && record.seq <= query.afterSeq) continue;
      const at = Date.parse(record.at);
      if (query.to !== undefined && at >= query.to) break;
      if (query.from !== undefined && at < query.from) continue;
      if (query.action !== undefined && record.action !== query.action) continue;
      if (records.length === query.limit) return { records, hasMore: true };
      records.push(record);
    }
    return { records, hasMore: false };
  }

  async *scan(tenantId: string): AsyncIterable<ScannedEntry> {
    const chain = await this.chain(tenantId);
    if (chain.offsets.length === 0) return;
    for await (const line of readLines(chain.file, chain.anchorBytes, chain.size)) {
      const record = parseRecord(line.text);
      yield record ? { record } : { unreadable: line.text };
    }
  }

  async chainInfo(tenantId: string): Promise<{ anchor: ChainAnchor }> {
    const chain = await this.chain(tenantId);
    return { anchor: { ...chain.anchor } };
  }

  async tenants(): Promise<string[]> {
    const tenants = new Set<string>();
    for (const name of await this.files()) {
      for await (const line of readLines(path.join(this.dir, name), 0, Number.MAX_SAFE_INTEGER)) {
        const parsed = parseJson(line.text) as { tenantId?: unknown; anchor?: { tenantId?: unknown } } | undefined;
        const tenantId = parsed?.anchor?.tenantId ?? parsed?.tenantId;
        if (typeof tenantId === "string" && fileNameOf(tenantId) === name) tenants.add(tenantId);
        break;
      }
    }
    return [...tenants].sort();
  }

  async purge(retentionDays: number, now: number): Promise<Record<string, number>> {
    const horizon = now - retentionDays * DAY_MS;
    const removed: Record<string, number> = {};
    for (const tenantId of await this.tenants()) {
      const chain = await this.chain(tenantId);
      const count = await this.exclusive(chain, () => this.purgeChain(chain, horizon, now));
      if (count > 0) removed[tenantId] = count;
    }
    return removed;
  }

  async close(): Promise<void> {
    this.closed = true;
    const chains = await Promise.all([...this.chains.values()].map(p => p.catch(() => undefined)));
    await Promise.all(chains.map(chain => chain?.lock.catch(() => undefined)));
  }

  /* ---------------------------------------------------------------------------------------- */

  private chain(tenantId: string): Promise<Chain> {
    let loading = this.chains.get(tenantId);
    if (!loading) {
      loading = this.load(tenantId);
      this.chains.set(tenantId, loading);
      loading.catch(() => this.chains.delete(tenantId));
    }
    return loading;
  }

  private async load(tenantId: string): Promise<Chain> {
    await mkdir(this.dir, { recursive: true });
    const file = path.join(this.dir, fileNameOf(tenantId));
    const chain: Chain = {
      tenantId,
      file,
      size: 0,
      anchor: { ...GENESIS_ANCHOR },
      anchorBytes: 0,
      offsets: [],
      ats: [],
      head: { seq: 0, hash: GENESIS_ANCHOR.hash, atMs: 0 },
      recent: new FifoMap(RECENT_IDS_PER_CHAIN),
      pending: [],
      flushScheduled: false,
      lock: Promise.resolve()
    };
    const size = await stat(file).then(
      s => s.size,
      (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return -1;
        throw err;
      }
    );
    if (size < 0) return chain;
    await this.index(chain, size);
    return chain;
  }

  /** Builds the in-memory index of a chain file; cuts off a torn last line. */
  private async index(chain: Chain, size: number): Promise<void> {
    chain.offsets = [];
    chain.ats = [];
    chain.recent.clear();
    chain.anchor = { ...GENESIS_ANCHOR };
    chain.anchorBytes = 0;
    chain.head = { seq: 0, hash: GENESIS_ANCHOR.hash, atMs: 0 };
    let end = 0;
    let first = true;
    for await (const line of readLines(chain.file, 0, size)) {
      if (!line.complete) {
        this.options.onWarning?.("Audit file ended with a torn line (an unacknowledged write); removed it", { file: chain.file, offset: line.offset, bytes: size - line.offset });
        await truncate(chain.file, line.offset);
        break;
      }
      end = line.offset + line.bytes;
      const parsed = parseJson(line.text) as { anchor?: { seq?: unknown; hash?: unknown } } | undefined;
      if (first && parsed?.anchor && typeof parsed.anchor.seq === "number" && typeof parsed.anchor.hash === "string") {
        chain.anchor = { seq: parsed.anchor.seq, hash: parsed.anchor.hash };
        chain.anchorBytes = line.bytes;
        chain.head = { seq: chain.anchor.seq, hash: chain.anchor.hash, atMs: 0 };
        first = false;
        continue;
      }
      first = false;
      const record = parseRecord(line.text);
      chain.offsets.push(line.offset);
      chain.ats.push(record ? Date.parse(record.at) : Number.NaN);
      if (record) {
        chain.head = { seq: record.seq, hash: record.hash, atMs: Date.parse(record.at) };
        chain.recent.set(record.id, chain.offsets.length - 1);
      }
    }
    chain.size = end;
  }

  /** Writes every pending append of the chain with one write and one sync. Runs under the chain's lock. */
  private async flush(chain: Chain): Promise<void> {
    chain.flushScheduled = false;
    const batch = chain.pending.splice(0);
    if (batch.length === 0) return;
    const lines: string[] = [];
    const appended: AuditRecord[] = [];
    const results: Array<{ record: AuditRecord; duplicate: boolean } | Promise<{ record: AuditRecord; duplicate: boolean }>> = [];
    let head = { ...chain.head };
    const batchIds = new Map<string, AuditRecord>();
    for (const { entry, now } of batch) {
      const known = batchIds.get(entry.id);
      if (known) {
        results.push({ record: known, duplicate: true });
        continue;
      }
      const index = chain.recent.get(entry.id);
      if (index !== undefined) {
        results.push(this.readLine(chain, index).then(record => ({ record: record as AuditRecord, duplicate: true })));
        continue;
      }
      const record = sealNext(chain.tenantId, entry, head, now);
      head = { seq: record.seq, hash: record.hash, atMs: Date.parse(record.at) };
      batchIds.set(record.id, record);
      lines.push(`${canonicalJson(record)}\n`);
      appended.push(record);
      results.push({ record, duplicate: false });
    }
    try {
      if (lines.length > 0) {
        const created = chain.size === 0 && chain.offsets.length === 0 && chain.anchorBytes === 0;
        const handle = await open(chain.file, "a");
        try {
          const buffer = Buffer.from(lines.join(""), "utf8");
          let written = 0;
          while (written < buffer.length) written += (await handle.write(buffer, written)).bytesWritten;
          await handle.datasync();
        } finally {
          await handle.close();
        }
        if (created) await syncDir(this.dir);
        let offset = chain.size;
        for (let i = 0; i < appended.length; i++) {
          chain.offsets.push(offset);
          chain.ats.push(Date.parse(appended[i].at));
          chain.recent.set(appended[i].id, chain.offsets.length - 1);
          offset += Buffer.byteLength(lines[i], "utf8");
        }
        chain.size = offset;
        chain.head = head;
      }
    } catch (err) {
      // Nothing of this batch is acknowledged; cut off whatever part of it reached the file.
      await truncate(chain.file, chain.size).catch(() => undefined);
      for (const { reject } of batch) reject(err);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      Promise.resolve(results[i]).then(batch[i].resolve, batch[i].reject);
    }
  }

  private async purgeChain(chain: Chain, horizon: number, now: number): Promise<number> {
    let count = 0;
    while (count < chain.ats.length && chain.ats[count] < horizon) count++;
    if (count === 0) return 0;
    const last = await this.readLine(chain, count - 1);
    if (!last) throw new Error(`Audit chain of ${chain.tenantId} has an unreadable record at line ${count}; not purging past it`);
    const tmp = `${chain.file}.purge-${process.pid}`;
    const anchorLine = `${canonicalJson({ anchor: { tenantId: chain.tenantId, seq: last.seq, hash: last.hash, purgedAt: new Date(now).toISOString() } })}\n`;
    const handle = await open(tmp, "w");
    try {
      await handle.write(anchorLine);
      const keepFrom = count < chain.offsets.length ? chain.offsets[count] : chain.size;
      if (keepFrom < chain.size) {
        for await (const chunk of createReadStream(chain.file, { start: keepFrom, end: chain.size - 1 })) await handle.write(chunk as Buffer);
      }
      await handle.datasync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await handle.close();
    await rename(tmp, chain.file);
    await syncDir(this.dir);
    await this.index(chain, (await stat(chain.file)).size);
    return count;
  }

  private async readLine(chain: Chain, index: number): Promise<AuditRecord | undefined> {
    const start = chain.offsets[index];
    const end = index + 1 < chain.offsets.length ? chain.offsets[index + 1] : chain.size;
    for await (const line of readLines(chain.file, start, end)) return parseRecord(line.text);
    return undefined;
  }

  private exclusive<T>(chain: Chain, work: () => Promise<T>): Promise<T> {
    const run = chain.lock.then(work, work);
    chain.lock = run.catch(() => undefined);
    return run;
  }

  private async files(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter(name => /^[0-9a-f]{40}\.jsonl$/.test(name)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
  }
}

function fileNameOf(tenantId: string): string {
  return `${createHash("sha256").update(tenantId, "utf8").digest("hex").slice(0, 40)}.jsonl`;
}

/** First index whose value is >= target in a (non-decreasing) list; unreadable (NaN) entries never end the search early. */
function lowerBound(values: number[], target: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (values[mid] < target || Number.isNaN(values[mid])) lo = mid + 1;
    else hi = mid;
  }
  // Step back over unreadable entries so none of the records just before are skipped.
  while (lo > 0 && Number.isNaN(values[lo - 1])) lo--;
  return lo;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parseRecord(text: string): AuditRecord | undefined {
  const value = parseJson(text) as Partial<AuditRecord> | undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  if (typeof value.seq !== "number" || typeof value.hash !== "string" || typeof value.at !== "string" || typeof value.id !== "string") return undefined;
  return value as AuditRecord;
}

interface Line {
  offset: number;
  bytes: number;
  text: string;
  /** Ends with a newline (a complete write). */
  complete: boolean;
}

/** The lines of `file` between byte offsets [start, end), with their offsets; splits on "\n" bytes. */
async function* readLines(file: string, start: number, end: number): AsyncGenerator<Line> {
  if (end <= start) return;
  let carry: Buffer = Buffer.alloc(0);
  let offset = start;
  const stream = createReadStream(file, { start, end: end - 1, highWaterMark: 256 * 1024 });
  try {
    for await (const chunk of stream) {
      let buffer = carry.length > 0 ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
      let from = 0;
      for (let nl = buffer.indexOf(10, from); nl !== -1; nl = buffer.indexOf(10, from)) {
        const bytes = nl - from + 1;
        yield { offset, bytes, text: buffer.toString("utf8", from, nl), complete: true };
        offset += bytes;
        from = nl + 1;
      }
      buffer = buffer.subarray(from);
      carry = Buffer.from(buffer);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  } finally {
    stream.destroy();
  }
  if (carry.length > 0) yield { offset, bytes: carry.length, text: carry.toString("utf8"), complete: false };
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the file itself is synced.
  } finally {
    await handle.close();
  }
}
