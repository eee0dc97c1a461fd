import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

// The broker configuration every product process loads (npm start, Docker, Kubernetes, tests, bench).
const CONFIG = path.resolve(__dirname, "../../dist/moleculer.config.js");

/**
 * A process that keeps every object of one allocation site: with V8's defaults the site is
 * switched to old-generation allocation ("=> tenure" in V8's pretenuring trace); after tuneV8()
 * no site ever is, and loading the broker configuration is what calls it.
 */
function tenureDecisions(env: Record<string, string>): number {
  const workload = `
    require(${JSON.stringify(CONFIG)});
    const kept = [];
    const make = i => ({ id: i, payload: { text: "m" + i } });
    for (let round = 0; round < 40; round++) for (let i = 0; i < 50000; i++) kept.push(make(i));
  `;
  const run = spawnSync(process.execPath, ["--trace-pretenuring-statistics", "-e", workload], { env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  expect(run.status).toBe(0);
  return (run.stdout.match(/=> tenure/g) ?? []).length;
}

describe("tuneV8 (lib/v8-tuning.ts) in moleculer.config", () => {
  beforeAll(() => {
    if (!existsSync(CONFIG)) throw new Error("dist/ is missing: run `npm run build` before this test");
  });

  it("keeps V8 from switching allocation sites to old-generation allocation", () => {
    expect(tenureDecisions({})).toBe(0);
  });

  it("leaves V8's default with V8_ALLOCATION_SITE_PRETENURING=true", () => {
    expect(tenureDecisions({ V8_ALLOCATION_SITE_PRETENURING: "true" })).toBeGreaterThan(0);
  });
});
