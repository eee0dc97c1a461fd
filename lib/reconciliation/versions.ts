/**
 * Versions on the wire: `"<epoch>.<seq>"`. Versions of one epoch are ordered by `seq`; versions
 * of different epochs are not comparable (the store lost its history in between).
 */
export interface ParsedVersion {
  epoch: string;
  seq: number;
}

const EPOCH = /^[A-Za-z0-9_-]{1,64}$/;

export function formatVersion(epoch: string, seq: number): string {
  return `${epoch}.${seq}`;
}

/** The parsed version, or undefined for anything that is not one of ours (e.g. seed 000's "v1.0"). */
export function parseVersion(value: unknown): ParsedVersion | undefined {
  if (typeof value !== "string" || value.length > 100) return undefined;
  const dot = value.lastIndexOf(".");
  if (dot <= 0) return undefined;
  const epoch = value.slice(0, dot);
  const digits = value.slice(dot + 1);
  if (!EPOCH.test(epoch) || !/^(0|[1-9]\d{0,15})$/.test(digits)) return undefined;
  const seq = Number(digits);
  return Number.isSafeInteger(seq) ? { epoch, seq } : undefined;
}

/** Orders two versions; undefined when they belong to different epochs (or are not versions). */
export function compareVersions(a: string, b: string): number | undefined {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb || pa.epoch !== pb.epoch) return undefined;
  return Math.sign(pa.seq - pb.seq);
}
