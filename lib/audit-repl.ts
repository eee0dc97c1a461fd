import type { ServiceBroker } from "moleculer";
import { describeReport } from "./audit-ops";
import type { VerifyReport } from "./audit-chain";

/**
 * The Moleculer REPL command `audit` (registered in moleculer.config.ts `replCommands`), through
 * the cluster's audit service:
 *
 *   mol $ audit verify t1        recompute tenant t1's chain, print the first broken link if any
 *   mol $ audit verify --all     every chain
 *   mol $ audit tenants          tenants that have a chain
 */
export const auditReplCommand = {
  command: "audit <subcommand> [tenantId]",
  description: "Audit trail: `audit verify <tenantId>`, `audit verify --all`, `audit tenants`",
  options: [{ option: "-a, --all", description: "verify every tenant's chain" }],
  async action(broker: ServiceBroker, args: { subcommand?: string; tenantId?: string; options?: { all?: boolean } }) {
    const print = (line: string) => console.log(line);
    try {
      if (args.subcommand === "tenants") {
        const { tenants } = await broker.call<{ tenants: string[] }>("audit.tenants");
        tenants.forEach(print);
        return;
      }
      if (args.subcommand === "verify") {
        const tenants = args.options?.all ? (await broker.call<{ tenants: string[] }>("audit.tenants")).tenants : args.tenantId ? [args.tenantId] : [];
        if (tenants.length === 0) return print("usage: audit verify <tenantId> | audit verify --all");
        for (const tenantId of tenants) print(describeReport(await broker.call<VerifyReport, { tenantId: string }>("audit.verify", { tenantId })));
        return;
      }
      print("usage: audit verify <tenantId> | audit verify --all | audit tenants");
    } catch (err) {
      print(`audit: ${(err as Error).message}`);
    }
  }
};
