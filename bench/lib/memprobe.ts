/**
 * Preloaded into every server process the bench starts (`node --expose-gc -r memprobe.js ...`);
 * it does not touch the server's code. On SIGUSR2 it runs a full garbage collection and prints
 * `BENCH_MEMORY {...process.memoryUsage()}` on stderr, so memory per connection is measured on
 * live objects rather than on whatever garbage the last GC left behind. With
 * BENCH_HEAP_SNAPSHOT_DIR set (`npm run bench:heap` sets it) it also writes a heap snapshot there
 * after the collection and names it in the line (`snapshot`).
 */
import path from "node:path";
import { writeHeapSnapshot } from "node:v8";

let probe = 0;
process.on("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  probe += 1;
  const dir = process.env.BENCH_HEAP_SNAPSHOT_DIR;
  const snapshot = dir ? writeHeapSnapshot(path.join(dir, `${process.pid}-${probe}.heapsnapshot`)) : undefined;
  process.stderr.write(`\nBENCH_MEMORY ${JSON.stringify({ probe, gc: gc !== undefined, ...(snapshot ? { snapshot } : {}), ...process.memoryUsage() })}\n`);
});
