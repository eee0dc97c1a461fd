import type { ServiceSchema } from "moleculer";

/**
 * A schema typed with its own `this` (ServiceSchema<Settings, This>) is what makes handlers and
 * lifecycle hooks type-check, but `broker.createService` only accepts `ServiceSchema<_, Service>`.
 * The runtime object is the same; this is the one place the two typings meet.
 */
export function asServiceSchema<S, T>(schema: ServiceSchema<S, T>): ServiceSchema {
  return schema as unknown as ServiceSchema;
}
