import { fork, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { Command, CreditMessage, ProgressMessage, ReplyMessage } from "./protocol";

/** The orchestrator's handle on one load-generator process. */
export class LoadWorker {
  readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly exited: Promise<void>;
  onProgress: (message: ProgressMessage) => void = () => undefined;

  constructor(readonly index: number, heapMb: number) {
    this.child = fork(path.join(__dirname, "../load/worker.js"), [], {
      execArgv: [`--max-old-space-size=${heapMb}`],
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    });
    this.exited = new Promise(resolve => this.child.once("exit", () => resolve()));
    this.child.on("message", (message: ReplyMessage | ProgressMessage) => {
      if ("event" in message) return this.onProgress(message);
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      clearTimeout(waiter.timer);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`load worker ${this.index}: ${message.error}`));
    });
    this.child.once("exit", code => {
      for (const waiter of this.pending.values()) {
        clearTimeout(waiter.timer);
        waiter.reject(new Error(`load worker ${this.index} exited (${code})`));
      }
      this.pending.clear();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  request<T>(command: Command, timeoutMs: number): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`load worker ${this.index}: '${command.cmd}' timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ ...command, id });
    });
  }

  credit(upTo: number): void {
    const message: CreditMessage = { cmd: "credit", upTo };
    if (this.child.connected) this.child.send(message);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.child.disconnect();
    const done = await Promise.race([this.exited.then(() => true), new Promise<boolean>(r => setTimeout(() => r(false), 5000))]);
    if (!done) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }
}

/** Splits `total` items into `parts` contiguous ranges: [from, count][]. */
export function split(total: number, parts: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let from = 0;
  for (let i = 0; i < parts; i++) {
    const count = Math.floor(total / parts) + (i < total % parts ? 1 : 0);
    ranges.push([from, count]);
    from += count;
  }
  return ranges;
}
