import "moleculer";

/**
 * Moleculer 0.14's typings omit `ServiceRegistry.getNodeList`, which the runtime has and the
 * REPL's `nodes` command uses; declared here once instead of casting at each use.
 */
declare module "moleculer" {
  interface NodeListItem {
    id: string;
    available: boolean;
    local: boolean;
    hostname?: string;
  }
  interface ServiceRegistry {
    getNodeList(opts: { onlyAvailable?: boolean; withServices?: boolean }): NodeListItem[];
  }
}
