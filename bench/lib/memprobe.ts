/**
 * Preloaded into every server process the bench starts (`node --expose-gc -r memprobe.js ...`);
 * it does not touch the server's code. On SIGUSR2 it runs a full garbage collection and prints
 * `BENCH_MEMORY {...process.memoryUsage()}` on stderr, so memory per connection is measured on
 * live objects rather than on whatever garbage the last GC left behind.
 */
let probe = 0;
process.on("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  probe += 1;
  process.stderr.write(`\nBENCH_MEMORY ${JSON.stringify({ probe, gc: gc !== undefined, ...process.memoryUsage() })}\n`);
});
