/**
 * Every knob of `npm run bench`, from the environment. Defaults keep the whole run under five
 * minutes on a 2-core machine; the big connection runs are opt-in.
 */
function int(name: string, fallback: number, min = 0): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
  return value;
}

export type TargetId = "product" | "product-nats" | "baseline" | "product-alt";
/** The default targets; `product-alt` (one node on the build at BENCH_ALT_DIST) is opt-in, for A/B runs of a change. */
export const ALL_TARGETS: TargetId[] = ["product", "product-nats", "baseline"];
export type ScenarioId = "connections" | "fanout" | "direct" | "durable";
export const ALL_SCENARIOS: ScenarioId[] = ["connections", "fanout", "direct", "durable"];
const CLASSES = ["CLASS_A", "CLASS_B", "CLASS_C"];

function list<T extends string>(name: string, all: T[], fallback: T[] = all): T[] {
  const raw = process.env[name];
  if (!raw || raw.trim() === "") return fallback;
  const picked = raw.split(",").map(s => s.trim()).filter(Boolean);
  for (const p of picked) if (!all.includes(p as T)) throw new Error(`${name}: unknown "${p}" (known: ${all.join(", ")})`);
  return picked as T[];
}

export interface BenchConfig {
  /** Repetitions; each starts fresh server processes for every target. */
  reps: number;
  /**
   * An unrecorded repetition against the baseline first (BENCH_WARMUP=0: none), and one before the
   * cluster repetitions: the load generators live for the whole run, and fresh ones spend more CPU
   * per connection and message, which made whichever target was measured first look slower.
   */
  warmup: boolean;
  /** Trials per target and repetition inside the fan-out and direct scenarios, alternating targets. */
  trials: number;
  targets: TargetId[];
  scenarios: ScenarioId[];
  natsUrl: string;
  /** SERVICES of the non-gateway node of product-nats; undefined = every service but the gateway. */
  natsServices: string | undefined;
  /** Gateways of the product-nats target (the set-up: 1; with 2, messages cross NATS). */
  natsGateways: number;
  secret: string;
  /** Extra environment of every product process (BENCH_PRODUCT_ENV="REDIS_URL=redis://127.0.0.1:6379,LOG_FORMAT=text"). */
  productEnv: Record<string, string>;
  /** Extra environment of the `product-alt` target only, after BENCH_PRODUCT_ENV (A/B runs of a setting: BENCH_ALT_ENV="NODE_OPTIONS=--max-semi-space-size=64"). */
  altEnv: Record<string, string>;
  /** `interactionClass` the bench clients send (undefined: the product's default). */
  messageClass: string | undefined;
  /** Source addresses 127.0.0.2 .. 127.0.0.(1+n) the clients bind to, round-robin. */
  sourceAddresses: string[];
  socketsPerWorker: number;
  connections: number;
  connectConcurrency: number;
  settleMs: number;
  clusterConnections: number;
  clusterGateways: number;
  clusterReps: number;
  fanoutClients: number;
  fanoutSaturateMs: number;
  fanoutWindow: number;
  fanoutRate: number;
  fanoutRateMs: number;
  fanoutLowRate: number;
  fanoutLowRateMs: number;
  dmPairs: number;
  dmWindow: number;
  dmSaturateMs: number;
  dmRate: number;
  dmRateMs: number;
  /** Durable publish: sockets of the tenant that receive every published event. */
  durableSubscribers: number;
  /** HTTP publishes in flight (closed loop), over all load generators. */
  durableConcurrency: number;
  durableSaturateMs: number;
  /** Unmeasured closed-loop publishing before the trials, so no target is measured with a cold JIT. */
  durableWarmupMs: number;
  /** Publishes/s of the latency trial. */
  durableRate: number;
  durableRateMs: number;
  /** Events a resuming client catches up on. */
  catchupEvents: number;
  cpuProf: boolean;
  writeDocs: boolean;
  maxMinutes: number;
}

export function loadBenchConfig(): BenchConfig {
  const sources = int("BENCH_SOURCE_ADDRESSES", 16, 1);
  const messageClass = process.env.BENCH_MESSAGE_CLASS?.trim() || undefined;
  if (messageClass !== undefined && !CLASSES.includes(messageClass)) throw new Error(`BENCH_MESSAGE_CLASS must be one of ${CLASSES.join(", ")}`);
  return {
    reps: int("BENCH_REPS", 3, 0),
    warmup: process.env.BENCH_WARMUP !== "0",
    trials: int("BENCH_TRIALS", 3, 1),
    targets: list<TargetId>("BENCH_TARGETS", [...ALL_TARGETS, "product-alt"], ALL_TARGETS),
    scenarios: list("BENCH_SCENARIOS", ALL_SCENARIOS),
    natsUrl: process.env.BENCH_NATS_URL ?? "nats://127.0.0.1:4222",
    natsServices: process.env.BENCH_NATS_SERVICES?.trim() || undefined,
    natsGateways: int("BENCH_NATS_GATEWAYS", 1, 1),
    secret: "bench-secret-pf2-0123456789abcdef",
    messageClass,
    productEnv: envList("BENCH_PRODUCT_ENV"),
    altEnv: envList("BENCH_ALT_ENV"),
    sourceAddresses: Array.from({ length: Math.min(sources, 250) }, (_, i) => `127.0.0.${i + 2}`),
    socketsPerWorker: int("BENCH_SOCKETS_PER_WORKER", 6000, 100),
    connections: int("BENCH_CONNECTIONS", 2000, 1),
    connectConcurrency: int("BENCH_CONNECT_CONCURRENCY", 50, 1),
    settleMs: int("BENCH_SETTLE_MS", 1000, 0),
    clusterConnections: int("BENCH_CLUSTER_CONNECTIONS", 0, 0),
    clusterGateways: int("BENCH_CLUSTER_GATEWAYS", 3, 1),
    clusterReps: int("BENCH_CLUSTER_REPS", 2, 1),
    fanoutClients: int("BENCH_FANOUT_CLIENTS", 1000, 1),
    fanoutSaturateMs: int("BENCH_FANOUT_SATURATE_MS", 1200, 300),
    fanoutWindow: int("BENCH_FANOUT_WINDOW", 20, 1),
    fanoutRate: int("BENCH_FANOUT_RATE", 100, 1),
    fanoutRateMs: int("BENCH_FANOUT_RATE_MS", 1000, 200),
    fanoutLowRate: int("BENCH_FANOUT_LOW_RATE", 20, 1),
    fanoutLowRateMs: int("BENCH_FANOUT_LOW_RATE_MS", 1000, 200),
    dmPairs: int("BENCH_DM_PAIRS", 200, 1),
    dmWindow: int("BENCH_DM_WINDOW", 1, 1),
    dmSaturateMs: int("BENCH_DM_SATURATE_MS", 1200, 300),
    dmRate: int("BENCH_DM_RATE", 2000, 1),
    dmRateMs: int("BENCH_DM_RATE_MS", 1000, 200),
    durableSubscribers: int("BENCH_DURABLE_SUBSCRIBERS", 10, 1),
    durableConcurrency: int("BENCH_DURABLE_CONCURRENCY", 32, 1),
    durableSaturateMs: int("BENCH_DURABLE_SATURATE_MS", 2000, 300),
    durableWarmupMs: int("BENCH_DURABLE_WARMUP_MS", 1500, 0),
    durableRate: int("BENCH_DURABLE_RATE", 1000, 1),
    durableRateMs: int("BENCH_DURABLE_RATE_MS", 1000, 200),
    catchupEvents: int("BENCH_CATCHUP_EVENTS", 10_000, 1),
    cpuProf: process.env.BENCH_CPU_PROF === "1",
    writeDocs: process.env.BENCH_DOCS === "1",
    maxMinutes: int("BENCH_MAX_MINUTES", 15, 1)
  };
}

/** `NAME=value,NAME=value` from an environment variable. */
function envList(name: string): Record<string, string> {
  return Object.fromEntries(
    (process.env[name] ?? "")
      .split(",")
      .map(kv => kv.trim())
      .filter(Boolean)
      .map(kv => {
        const at = kv.indexOf("=");
        if (at <= 0) throw new Error(`${name}: expected NAME=value, got "${kv}"`);
        return [kv.slice(0, at), kv.slice(at + 1)];
      })
  );
}
