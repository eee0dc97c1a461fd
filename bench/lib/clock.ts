import { performance } from "node:perf_hooks";

/**
 * Wall-clock milliseconds with sub-millisecond resolution, comparable between processes of one
 * machine: every process derives it from the same system clock at start (`timeOrigin`) plus its
 * monotonic clock. Publishers stamp messages with it and receivers in other processes subtract.
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));
