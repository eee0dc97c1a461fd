import { mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import path from "node:path";

/**
 * A node's durable buffer for audit records the audit service could not take (unreachable,
 * timed out): JSON lines under `<DATA_DIR>/audit-spool`, fsync'd before `write` resolves, sent
 * again by `drain` in order. Records carry their id, so a record sent twice (a crash between
 * sending and forgetting it) is stored once by the audit service.
 *
 * Files are named `<node>.<pid>.pending.jsonl` (being written) and `<node>.<pid>.<n>.draining.jsonl`
 * (being sent). A process drains its own files and those of processes that are gone (their pid
 * no longer runs on this host), so records spooled before a crash are sent after the restart.
 */
export interface SpooledRecord {
  id: string;
  [field: string]: unknown;
}

const FILE = /^(.+)\.(\d+)\.(?:(\d+)\.)?(pending|draining)\.jsonl$/;

export class AuditSpool {
  private readonly tag: string;
  private writes: Promise<unknown> = Promise.resolve();
  private draining = false;
  private counter = 0;

  constructor(
    private readonly dir: string,
    nodeID: string,
    private readonly pid: number = process.pid
  ) {
    this.tag = nodeID.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 100) || "node";
  }

  private get pendingFile(): string {
    return path.join(this.dir, `${this.tag}.${this.pid}.pending.jsonl`);
  }

  /** Appends records to this process's spool; resolves once they are on disk. */
  write(records: SpooledRecord[]): Promise<void> {
    return this.serialised(async () => {
      await mkdir(this.dir, { recursive: true });
      const handle = await open(this.pendingFile, "a");
      try {
        await handle.write(records.map(r => `${JSON.stringify(r)}\n`).join(""));
        await handle.datasync();
      } finally {
        await handle.close();
      }
    });
  }

  /** Whether any file this process would drain exists. */
  async hasWork(): Promise<boolean> {
    return (await this.candidates()).length > 0;
  }

  /**
   * Sends every spooled record (this process's and those of dead processes), oldest file first,
   * in order. Stops at the first record `send` rejects; it and the rest stay spooled.
   */
  async drain(send: (record: SpooledRecord) => Promise<void>): Promise<{ sent: number; left: boolean }> {
    if (this.draining) return { sent: 0, left: true };
    this.draining = true;
    let sent = 0;
    try {
      for (const name of await this.candidates()) {
        const file = await this.claim(name);
        if (!file) continue;
        const lines = (await readFile(file, "utf8")).split("\n").filter(line => line.length > 0);
        for (let i = 0; i < lines.length; i++) {
          let record: SpooledRecord;
          try {
            record = JSON.parse(lines[i]) as SpooledRecord;
          } catch {
            continue; // a torn last line of a crashed writer: never acknowledged
          }
          try {
            await send(record);
            sent += 1;
          } catch {
            if (i > 0) await this.rewrite(file, lines.slice(i));
            return { sent, left: true };
          }
        }
        await unlink(file);
      }
      return { sent, left: false };
    } finally {
      this.draining = false;
    }
  }

  /** Files to drain: this process's draining files, its pending file, and any file of a dead process. */
  private async candidates(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const mine: string[] = [];
    const orphans: string[] = [];
    for (const name of names) {
      const match = FILE.exec(name);
      if (!match) continue;
      const [, tag, pid] = match;
      if (Number(pid) === this.pid) {
        if (tag === this.tag) mine.push(name);
      } else if (!isAlive(Number(pid))) {
        orphans.push(name);
      }
    }
    const order = (a: string, b: string) => (a.endsWith(".draining.jsonl") === b.endsWith(".draining.jsonl") ? a.localeCompare(b) : a.endsWith(".draining.jsonl") ? -1 : 1);
    return [...orphans.sort(order), ...mine.sort(order)];
  }

  /** Moves a file to a draining name of this process (atomic, so two processes never both take one). */
  private async claim(name: string): Promise<string | undefined> {
    const match = FILE.exec(name);
    if (match && Number(match[2]) === this.pid && match[1] === this.tag && match[4] === "draining") return path.join(this.dir, name);
    const target = path.join(this.dir, `${this.tag}.${this.pid}.${Date.now()}${String(this.counter++).padStart(4, "0")}.draining.jsonl`);
    const move = () => rename(path.join(this.dir, name), target);
    try {
      // This process's pending file is renamed between two writes, never in the middle of one.
      if (name === path.basename(this.pendingFile)) await this.serialised(move);
      else await move();
      return target;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  private async rewrite(file: string, lines: string[]): Promise<void> {
    const tmp = `${file}.tmp`;
    const handle = await open(tmp, "w");
    try {
      await handle.write(lines.map(line => `${line}\n`).join(""));
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.writes.then(work, work);
    this.writes = run.catch(() => undefined);
    return run;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
