import type { ServiceBroker } from "moleculer";

/**
 * `broker.broadcast` to the given group on every node but this one. A gateway emits its own share
 * of a delivery directly to its sockets; going through Moleculer for the local share too would
 * cost a context and an event dispatch per message for nothing.
 *
 * Mirrors the remote half of ServiceBroker#broadcast (moleculer 0.14): one event packet per
 * remote endpoint of the event in that group. Resolves how many nodes it was sent to.
 */
export async function broadcastToRemote(broker: ServiceBroker, eventName: string, payload: unknown, group: string): Promise<number> {
  return broadcastToNodes(broker, eventName, payload, group, nodeID => nodeID !== broker.nodeID);
}

/**
 * `broker.broadcast` to the given group on the nodes `include` accepts only (this node included,
 * through a local broadcast). Resolves how many nodes it was sent to.
 */
export async function broadcastToNodes(broker: ServiceBroker, eventName: string, payload: unknown, group: string, include: (nodeID: string) => boolean): Promise<number> {
  const internals = broker as unknown as BrokerInternals;
  const endpoints = endpointsOf(broker, eventName, group).filter(ep => include(ep.id));
  const local = endpoints.some(ep => ep.id === broker.nodeID);
  if (local) await broker.broadcastLocal(eventName, payload, { groups: [group] });
  const transit = internals.transit;
  const remote = endpoints.filter(ep => ep.id !== broker.nodeID);
  if (!transit || remote.length === 0) return local ? 1 : 0;
  const ctx = internals.ContextFactory.create(broker, null, payload, { groups: [group] });
  ctx.eventName = eventName;
  ctx.eventType = "broadcast";
  ctx.eventGroups = [group];
  await Promise.all(remote.map(ep => transit.sendEvent(ctx.copy(ep))));
  return remote.length + (local ? 1 : 0);
}

/** The nodes (this one included) with a listener of the event in that group. */
export function nodesListening(broker: ServiceBroker, eventName: string, group: string): string[] {
  return endpointsOf(broker, eventName, group).map(ep => ep.id);
}

function endpointsOf(broker: ServiceBroker, eventName: string, group: string): Array<{ id: string }> {
  return (broker as unknown as BrokerInternals).registry.events.getAllEndpoints(eventName, [group]);
}

interface EventContext {
  eventName: string;
  eventType: string;
  eventGroups: string[];
  copy(endpoint: unknown): EventContext;
}

interface BrokerInternals {
  transit?: { sendEvent(ctx: EventContext): Promise<unknown> };
  registry: { events: { getAllEndpoints(eventName: string, groups: string[]): Array<{ id: string }> } };
  ContextFactory: { create(broker: ServiceBroker, endpoint: null, params: unknown, opts: object): EventContext };
}
