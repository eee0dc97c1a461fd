import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { uniqueSchema } from "../helpers/postgres";
import { spawnNode, type ProcessNode } from "../helpers/process-node";
import { dropPrefix, REDIS_URL, uniquePrefix } from "../helpers/redis";

/**
 * The embedded default (`npm start`: no REDIS_URL, no DATABASE_URL) never loads the Redis and
 * PostgreSQL client libraries: they cost every start ~4 MiB of heap and ~10 MiB of RSS for
 * nothing. A node configured for them loads them.
 */
const PRELOAD = `
process.on("SIGUSR2", () => {
  const packages = new Set();
  for (const file of Object.keys(require.cache)) {
    const match = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(file);
    if (match) packages.add(match[1]);
  }
  process.stdout.write("LOADED_PACKAGES " + JSON.stringify([...packages]) + "\\n");
});
`;

describe("embedded default footprint", () => {
  let dir: string;
  let preload: string;
  const nodes: ProcessNode[] = [];

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "pf2-footprint-"));
    preload = path.join(dir, "report-packages.js");
    writeFileSync(preload, PRELOAD);
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map(node => node.kill()));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function loadedPackages(env: Record<string, string>): Promise<string[]> {
    const node = await spawnNode(env, 20_000, ["-r", preload]);
    nodes.push(node);
    node.child.kill("SIGUSR2");
    const deadline = Date.now() + 10_000;
    for (;;) {
      const line = /LOADED_PACKAGES (\[.*\])/.exec(node.output());
      if (line) return JSON.parse(line[1]) as string[];
      if (Date.now() > deadline) throw new Error(`no package list:\n${node.output()}`);
      await new Promise(r => setTimeout(r, 50));
    }
  }

  it("serves without loading ioredis or pg", async () => {
    const packages = await loadedPackages({});
    expect(packages).toEqual(expect.arrayContaining(["moleculer", "socket.io"]));
    expect(packages).not.toContain("ioredis");
    expect(packages).not.toContain("pg");
  });

  it("loads ioredis with REDIS_URL and pg with DATABASE_URL", async () => {
    const prefix = uniquePrefix("footprint");
    const schema = await uniqueSchema("footprint");
    try {
      const packages = await loadedPackages({ REDIS_URL, REDIS_KEY_PREFIX: prefix, DATABASE_URL: schema.url });
      expect(packages).toEqual(expect.arrayContaining(["ioredis", "pg"]));
    } finally {
      await Promise.all(nodes.splice(0).map(node => node.kill()));
      await dropPrefix(prefix);
      await schema.drop();
    }
  });
});
