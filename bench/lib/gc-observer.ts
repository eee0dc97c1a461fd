/**
 * Preloaded into a server by `npm run bench:history` (`NODE_OPTIONS=-r gc-observer.js`): prints
 * the running totals of the process's GC pauses after each one, `GC_TOTALS {"minor":{"count":n,"ms":t},...}` on stdout. Totals rather than one line per
 * pause, so that the reader needs only the last line before and after a phase.
 */
import { PerformanceObserver, constants, type PerformanceEntry } from "node:perf_hooks";

const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb"
};
const totals: Record<string, { count: number; ms: number }> = {};

new PerformanceObserver(list => {
  for (const entry of list.getEntries()) {
    const kind = KINDS[(entry as PerformanceEntry & { detail?: { kind: number } }).detail?.kind ?? -1] ?? "other";
    const total = (totals[kind] ??= { count: 0, ms: 0 });
    total.count += 1;
    total.ms += entry.duration;
  }
  process.stdout.write(`GC_TOTALS ${JSON.stringify(totals)}\n`);
}).observe({ entryTypes: ["gc"] });
