import { readFileSync } from "node:fs";

/** Linux /proc readers for the processes the bench started (CPU time and resident memory). */

const TICK_MS = 10; // CLK_TCK is 100 on Linux x86-64 and arm64

/** User + system CPU time of a process in ms, or NaN when it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is the state (field 3 of the man page): utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size of a process in KiB, or NaN when it is gone. */
export function rssKiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (ms) all CPUs of the machine spent busy since boot (/proc/stat, every process). */
export function machineBusyMs(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return (user + nice + system + irq + softirq + (steal || 0)) * TICK_MS;
  } catch {
    return Number.NaN;
  }
}

export const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

/** CPU ms of several processes, summed. */
export function cpuOf(pids: number[]): number {
  return sum(pids.map(cpuMs));
}

export function rssOf(pids: number[]): number {
  return sum(pids.map(rssKiB));
}
