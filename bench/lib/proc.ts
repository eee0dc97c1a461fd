import { readdirSync, readFileSync } from "node:fs";

/** Linux /proc readers for the processes the bench started (CPU time and resident memory). */

const TICK_MS = 10; // CLK_TCK is 100 on Linux x86-64 and arm64

/** User + system CPU time in ms from a /proc `stat` file, or NaN when it is gone. */
function statCpuMs(statPath: string): number {
  try {
    const stat = readFileSync(statPath, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is the state (field 3 of the man page): utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return Number.NaN;
  }
}

/** User + system CPU time of a process in ms, or NaN when it is gone. */
export function cpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** CPU ms of a process's main thread and of all its other threads together (/proc/<pid>/task). */
export function threadCpuMs(pid: number): { main: number; others: number } {
  const cpu = { main: 0, others: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const ms = statCpuMs(`/proc/${pid}/task/${tid}/stat`);
    // NaN: a thread that ended between the listing and the read.
    if (Number.isNaN(ms)) continue;
    if (tid === String(pid)) cpu.main += ms;
    else cpu.others += ms;
  }
  return cpu;
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
