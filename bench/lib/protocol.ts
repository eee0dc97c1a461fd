import type { HistogramData } from "./histogram";

/** Messages between the bench orchestrator and its load-generator processes (child_process IPC). */

export interface ConnectCommand {
  cmd: "connect";
  group: string;
  urls: string[];
  secret: string;
  tenantId: string;
  userPrefix: string;
  /** Global index of the first client; user ids are `${userPrefix}${index}`. */
  from: number;
  count: number;
  /** Client i connects to urls[(i + urlOffset) % urls.length]. */
  urlOffset?: number;
  localAddresses: string[];
  concurrency: number;
  /** Joins this room once connected (join_room → room_joined). */
  room?: string;
  timeoutMs: number;
}

export interface ConnectResult {
  connected: number;
  failed: number;
  errors: Record<string, number>;
  /** Shared-clock ms of the first attempt and of the last `connected` (or `room_joined`). */
  firstStart: number;
  lastDone: number;
  /** Handshake latency: socket created → `connected` received. */
  latency: HistogramData;
}

/** Start counting `message` deliveries on a group (room fan-out or direct-message recipients). */
export interface ArmCommand {
  cmd: "arm";
  group: string;
  /** Posts `progress` (minimum deliveries over the group's sockets) every few ms. */
  progress: boolean;
  /** The event counted: `message` (default) or `event` (published bus events). */
  eventName?: "message" | "event";
}

export interface SnapshotCommand {
  cmd: "snapshot";
  group: string;
}

export interface SnapshotResult {
  at: number;
  received: number;
}

/** Latency recording on/off; resets the histogram when turned on. */
export interface RecordCommand {
  cmd: "record";
  group: string;
  on: boolean;
}

export interface StatsCommand {
  cmd: "stats";
  group: string;
}

export interface StatsResult {
  received: number;
  minReceived: number;
  latency: HistogramData;
  errors: Record<string, number>;
  disconnects: number;
}

/** Room publisher: `credit` mode sends while seq < credit (raised by `credit` messages), `rate` mode on a schedule. */
export interface PublishCommand {
  cmd: "publish";
  group: string;
  roomId: string;
  mode: "credit" | "rate";
  rate: number;
  durationMs: number;
  initialCredit: number;
  interactionClass?: string;
}

export interface PublishResult {
  sent: number;
  startedAt: number;
  endedAt: number;
  errors: Record<string, number>;
}

export interface CreditMessage {
  cmd: "credit";
  upTo: number;
}

/** Direct-message senders: the client at index i sends to `${recipientPrefix}${i}`. */
export interface DirectCommand {
  cmd: "direct";
  group: string;
  recipientPrefix: string;
  mode: "closed" | "rate";
  /** Closed loop: messages in flight per sender. Rate mode: messages/s for the whole group. */
  window: number;
  rate: number;
  durationMs: number;
  warmupMs: number;
  interactionClass?: string;
}

export interface DirectResult {
  /** Acks received inside the measurement window. */
  acks: number;
  windowMs: number;
  sent: number;
  rtt: HistogramData;
  errors: Record<string, number>;
}

/**
 * HTTP publishers: `POST /api/events/publish` with a `service` token of the tenant, over keep-alive
 * connections. Closed loop: `concurrency` requests in flight, the next sent on each answer, until
 * `durationMs` or `maxPublishes` answers; rate mode: `rate` publishes/s.
 */
export interface HttpPublishCommand {
  cmd: "http-publish";
  url: string;
  secret: string;
  tenantId: string;
  mode: "closed" | "rate";
  concurrency: number;
  rate: number;
  durationMs: number;
  warmupMs: number;
  /** 0 = no limit. */
  maxPublishes: number;
}

export interface HttpPublishResult {
  /** Acknowledged (200) inside the measurement window. */
  acks: number;
  windowMs: number;
  /** Acknowledged in all. */
  acked: number;
  sent: number;
  /** Publish → answer latency of the acknowledged ones. */
  rtt: HistogramData;
  errors: Record<string, number>;
  /** Position of the last acknowledged publish (the log's cursor). */
  lastPosition?: string;
}

/**
 * Catch-up: one new client of the tenant connects with `auth.lastEventId` and counts the `event`s
 * replayed to it until `expect` arrived.
 */
export interface CatchupCommand {
  cmd: "catchup";
  url: string;
  secret: string;
  tenantId: string;
  userId: string;
  lastEventId: string;
  expect: number;
  timeoutMs: number;
  localAddress: string;
}

export interface CatchupResult {
  received: number;
  recovered: boolean;
  /** Socket created → `connected`, and → the `expect`-th event. */
  connectedMs: number;
  doneMs: number;
  /** Replayed events out of log order (0 expected). */
  outOfOrder: number;
}

export interface CloseCommand {
  cmd: "close";
  group: string;
}

/**
 * Reachability of every held connection: `arm` starts counting `bench.reach` messages per client,
 * `send` has every client send one direct message to user `recipientPrefix` + ((index + offset) mod
 * total) and waits for the acks, `count` answers how many clients got at least one.
 */
export interface ReachCommand {
  cmd: "reach";
  group: string;
  phase: "arm" | "send" | "count";
  recipientPrefix?: string;
  offset?: number;
  total?: number;
  timeoutMs?: number;
  /** Messages in flight per worker while sending. */
  concurrency?: number;
}

export interface ReachResult {
  clients: number;
  sent: number;
  acked: number;
  reached: number;
  errors: Record<string, number>;
}

export type Command = ConnectCommand | ArmCommand | SnapshotCommand | RecordCommand | StatsCommand | PublishCommand | DirectCommand | ReachCommand | HttpPublishCommand | CatchupCommand | CloseCommand;
export type CommandMessage = Command & { id: number };

export interface ReplyMessage {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/** Fan-out flow control: the lowest "seen up to" publisher sequence over the group's sockets. */
export interface ProgressMessage {
  event: "progress";
  group: string;
  min: number;
}
