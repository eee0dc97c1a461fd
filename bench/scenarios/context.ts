import type { BenchConfig } from "../lib/config";
import type { RunningTarget } from "../lib/servers";
import type { LoadWorker } from "../lib/workers";
import { cpuOf, machineBusyMs } from "../lib/proc";
import { now } from "../lib/clock";

/** What a scenario gets: the running target, the load-generator pool, the configuration. */
export interface ScenarioContext {
  config: BenchConfig;
  target: RunningTarget;
  workers: LoadWorker[];
  log(line: string): void;
}

/** Metrics of one scenario run (numbers go to the table; details only to the JSON). */
export interface ScenarioResult {
  metrics: Record<string, number>;
  details: Record<string, unknown>;
}

export const TENANT = "bench-tenant";

/** CPU time of the target's processes and of the load generators, at one instant. */
export interface CpuMark {
  at: number;
  server: number;
  clients: number;
  /** Everything else the machine ran: other tests, NATS, the orchestrator, the kernel's softirqs. */
  others: number;
}

export function cpuMark(ctx: ScenarioContext, workers: LoadWorker[] = ctx.workers): CpuMark {
  const server = cpuOf(ctx.target.pids());
  const clients = cpuOf(workers.map(w => w.pid));
  return { at: now(), server, clients, others: machineBusyMs() - server - clients };
}

/** Cores used between two marks (1.0 = one core busy the whole time). */
export function cores(a: CpuMark, b: CpuMark): { server: number; clients: number; others: number } {
  const wall = b.at - a.at;
  return { server: (b.server - a.server) / wall, clients: (b.clients - a.clients) / wall, others: (b.others - a.others) / wall };
}

export const round = (x: number, digits = 2): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

export function addErrors(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}
