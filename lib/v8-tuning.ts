import { setFlagsFromString } from "node:v8";

/**
 * Turns off V8's allocation-site pretenuring in every product process (unless
 * V8_ALLOCATION_SITE_PRETENURING=true).
 *
 * Pretenuring watches, per allocation site, how many of its objects survive the young
 * generation; past a threshold the site allocates straight into the old generation. A realtime
 * node defeats that heuristic: every WebSocket connection allocates long-lived objects from
 * sites that the short-lived work shares (EventEmitter and stream state, Node's HTTP objects,
 * Moleculer's contexts), so after a few hundred connections those sites flip to "tenure" and
 * every REST request, publish and message afterwards is born old. Dead old objects still count
 * as roots for the young generation's collections, so the young objects they point to survive,
 * get copied, and are promoted in turn. Measured (`npm run bench:history`): a process that had
 * merely opened and closed 400 connections spent 763 against 285 ms in minor GCs, 1 120 against
 * 350 ms on V8's helper threads, and 393 against 299 µs of CPU per durable publish, compared with
 * a fresh one; with pretenuring off both measured the same (304 and 297 µs). In the full bench
 * (an A/B in one run) it raised fan-out, DM, connection set-up and durable publish throughput by
 * 7-25 % (docs/benchmarks.md, Fixed item 16). Long-lived objects now start young and are copied
 * once or twice before they reach the old generation; those figures include that.
 *
 * Set from the broker configuration (not on the command line) so that every way of starting a
 * node gets it: `npm start`, the Docker image, Kubernetes, tests and benchmarks. Changing a
 * V8 flag after start-up applies to the collections that follow, which is all this one needs.
 */
export function tuneV8(env: NodeJS.ProcessEnv = process.env): void {
  if (env.V8_ALLOCATION_SITE_PRETENURING !== "true") setFlagsFromString("--no-allocation-site-pretenuring");
}
