/**
 * Aggregation and output: medians over repetitions, product/baseline ratios, the markdown table
 * (stdout), and the SVG chart (no dependencies: the bench writes the markup itself).
 */

import type { BenchConfig } from "./config";

export type Samples = Record<string, Record<string, number[]>>; // variant → metric → one value per repetition

export interface Row {
  key: string;
  label: string;
  better: "higher" | "lower";
  /** Ratio targets product/baseline for the one-node and the NATS variant. */
  ratioTarget?: { single?: number; nats?: number };
  /** Absolute target for the product (e.g. KiB per connection). */
  absTarget?: number;
  chart?: boolean;
}

export function rowsFor({ fanoutRate, fanoutLowRate, fanoutClients, dmRate, durableRate, durableSubscribers, catchupEvents }: BenchConfig): Row[] {
  const fanoutLoad = `${fanoutRate} msg/s × ${fanoutClients}`;
  const lightLoad = `${fanoutLowRate} msg/s × ${fanoutClients}`;
  return [
    { key: "fanoutDeliveriesPerSec", label: "Fan-out deliveries/s (saturation)", better: "higher", ratioTarget: { single: 1.0, nats: 0.9 }, chart: true },
    { key: "fanoutServerCpuUsPerDelivery", label: "Fan-out server CPU µs/delivery", better: "lower", chart: true },
    { key: "fanoutP50Ms", label: `Fan-out p50 ms (${fanoutLoad})`, better: "lower", chart: true },
    { key: "fanoutP99Ms", label: `Fan-out p99 ms (${fanoutLoad})`, better: "lower", ratioTarget: { single: 1.1, nats: 1.1 }, chart: true },
    { key: "fanoutRateServerCores", label: `Fan-out server cores busy (${fanoutLoad})`, better: "lower" },
    { key: "fanoutLowP50Ms", label: `Fan-out p50 ms (${lightLoad})`, better: "lower", chart: true },
    { key: "fanoutLowP99Ms", label: `Fan-out p99 ms (${lightLoad})`, better: "lower", chart: true },
    { key: "dmRoundTripsPerSec", label: "DM message→ack round trips/s", better: "higher", ratioTarget: { single: 0.8, nats: 0.6 }, chart: true },
    { key: "dmServerCpuUsPerRoundTrip", label: "DM server CPU µs/round trip", better: "lower", chart: true },
    { key: "dmRttP50Ms", label: "DM ack round trip p50 ms (closed loop)", better: "lower" },
    { key: "dmDeliveryP50Ms", label: `DM delivery p50 ms (${dmRate} msg/s)`, better: "lower", chart: true },
    { key: "dmDeliveryP99Ms", label: `DM delivery p99 ms (${dmRate} msg/s)`, better: "lower", chart: true },
    { key: "connectionsPerSec", label: "Connection set-ups/s", better: "higher", ratioTarget: { single: 0.9, nats: 0.9 }, chart: true },
    { key: "connectP99Ms", label: "Handshake p99 ms", better: "lower" },
    { key: "serverCpuUsPerConnection", label: "Server CPU µs/connection set-up", better: "lower", chart: true },
    { key: "servicesCpuUsPerConnection", label: "… of which the services node", better: "lower" },
    { key: "rssKiBPerConnection", label: "Gateway RSS KiB/connection", better: "lower", absTarget: 16 },
    { key: "heapKiBPerConnection", label: "Gateway JS heap KiB/connection", better: "lower", chart: true },
    { key: "servicesRssKiBPerConnection", label: "Services node RSS KiB/connection", better: "lower" },
    { key: "servicesHeapKiBPerConnection", label: "Services node JS heap KiB/connection", better: "lower" },
    { key: "unreachedConnections", label: "Connections a direct message did not reach", better: "lower" },
    { key: "durablePublishesPerSec", label: "Durable publishes/s (REST, closed loop)", better: "higher", chart: true },
    { key: "durableServerCpuUsPerPublish", label: "Durable publish server CPU µs/publish", better: "lower", chart: true },
    { key: "durableAckP50Ms", label: "Durable publish → answer p50 ms (closed loop)", better: "lower" },
    { key: "durableDeliveryP50Ms", label: `Durable publish → event p50 ms (${durableRate}/s × ${durableSubscribers})`, better: "lower", chart: true },
    { key: "durableDeliveryP99Ms", label: `Durable publish → event p99 ms (${durableRate}/s × ${durableSubscribers})`, better: "lower", chart: true },
    { key: "durableUndelivered", label: "Acknowledged events a subscriber did not get", better: "lower" },
    { key: "catchupEventsPerSec", label: `Catch-up events/s (resume ${catchupEvents} behind)`, better: "higher", chart: true },
    { key: "catchupServerCpuUsPerEvent", label: "Catch-up server CPU µs/event", better: "lower", chart: true },
    { key: "catchupOutOfOrder", label: "Catch-up events out of order", better: "lower" }
  ];
}

export function clusterRows(): Row[] {
  return [
    { key: "connectionsPerSec", label: "Connection set-ups/s", better: "higher", ratioTarget: { nats: 0.9 } },
    { key: "connectP99Ms", label: "Handshake p99 ms", better: "lower" },
    { key: "serverCpuUsPerConnection", label: "Server CPU µs/connection set-up (all processes)", better: "lower" },
    { key: "servicesCpuUsPerConnection", label: "… of which the services node", better: "lower" },
    { key: "rssKiBPerConnection", label: "Gateway RSS KiB/connection", better: "lower", absTarget: 16 },
    { key: "heapKiBPerConnection", label: "Gateway JS heap KiB/connection", better: "lower" },
    { key: "servicesRssKiBPerConnection", label: "Services node RSS KiB/connection", better: "lower" },
    { key: "servicesHeapKiBPerConnection", label: "Services node JS heap KiB/connection", better: "lower" },
    { key: "failedConnections", label: "Failed connections", better: "lower" },
    { key: "unreachedConnections", label: "Connections a direct message did not reach", better: "lower" }
  ];
}

/** An absolute target written "~N" is met within 10 %. */
const APPROX = 1.1;

export function median(xs: number[]): number {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export interface Cell {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function cell(xs: number[] | undefined): Cell {
  const v = (xs ?? []).filter(Number.isFinite);
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
}

export interface RatioCell {
  /** Ratio of the medians. */
  ratio: number;
  /** Range of the per-repetition ratios (repetitions are interleaved, so each pair shares conditions). */
  min: number;
  max: number;
  verdict?: "met" | "missed";
}

export function ratioOf(product: number[] | undefined, baseline: number[] | undefined, row: Row, target: number | undefined): RatioCell | undefined {
  if (!product?.length || !baseline?.length) return undefined;
  const ratio = median(product) / median(baseline);
  if (!Number.isFinite(ratio)) return undefined;
  const perRep: number[] = [];
  for (let i = 0; i < Math.min(product.length, baseline.length); i++) {
    const r = product[i] / baseline[i];
    if (Number.isFinite(r)) perRep.push(r);
  }
  const result: RatioCell = { ratio, min: Math.min(...perRep), max: Math.max(...perRep) };
  if (target !== undefined) result.verdict = (row.better === "higher" ? ratio >= target : ratio <= target) ? "met" : "missed";
  return result;
}

function fmt(x: number): string {
  if (!Number.isFinite(x)) return "–";
  const abs = Math.abs(x);
  if (abs >= 1000) return Math.round(x).toLocaleString("en-US");
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function fmtRatio(r: RatioCell | undefined): string {
  if (!r) return "–";
  const range = Number.isFinite(r.min) && r.min !== r.max ? ` (${r.min.toFixed(2)}–${r.max.toFixed(2)})` : "";
  return `${r.ratio.toFixed(2)}×${range}`;
}

export interface Column {
  variant: string;
  title: string;
}

export interface TableSpec {
  rows: Row[];
  samples: Samples;
  columns: Column[];
  baseline: string;
  /** Ratio columns: variant, title, which target applies. */
  ratios: Array<{ variant: string; title: string; target: "single" | "nats" }>;
}

export interface TableResult {
  markdown: string;
  data: Array<Record<string, unknown>>;
}

export function table(spec: TableSpec): TableResult {
  const header = ["Metric", ...spec.columns.map(c => c.title), ...spec.ratios.map(r => r.title), "Target"];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map((_, i) => (i === 0 || i === header.length - 1 ? "---" : "---:")).join("|")}|`];
  const data: Array<Record<string, unknown>> = [];
  for (const row of spec.rows) {
    const cells = spec.columns.map(c => cell(spec.samples[c.variant]?.[row.key]));
    if (cells.every(c => c.n === 0)) continue;
    const ratios = spec.ratios.map(r => ratioOf(spec.samples[r.variant]?.[row.key], spec.samples[spec.baseline]?.[row.key], row, row.ratioTarget?.[r.target]));
    const targets: string[] = [];
    spec.ratios.forEach((r, i) => {
      const t = row.ratioTarget?.[r.target];
      if (t === undefined) return;
      const sign = row.better === "higher" ? "≥" : "≤";
      targets.push(`${r.target === "single" ? "1 node" : "NATS"} ${sign}${t}×: ${ratios[i]?.verdict ?? "n/a"}`);
    });
    if (row.absTarget !== undefined) {
      const verdicts = spec.columns
        .filter(c => c.variant !== spec.baseline)
        .map(c => cell(spec.samples[c.variant]?.[row.key]))
        .filter(c => c.n > 0)
        .map(c => (c.median <= row.absTarget! * APPROX ? "met" : "missed"));
      targets.push(`~${row.absTarget} (±10 %): ${verdicts.join(" / ") || "n/a"}`);
    }
    lines.push(`| ${[row.label, ...cells.map(c => fmt(c.median)), ...ratios.map(fmtRatio), targets.join("; ")].join(" | ")} |`);
    data.push({
      metric: row.key,
      label: row.label,
      better: row.better,
      values: Object.fromEntries(spec.columns.map((c, i) => [c.variant, cells[i]])),
      ratios: Object.fromEntries(spec.ratios.map((r, i) => [r.variant, ratios[i] ?? null])),
      ratioTarget: row.ratioTarget ?? null,
      absTarget: row.absTarget ?? null
    });
  }
  return { markdown: lines.join("\n"), data };
}

const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * Horizontal bars: the product relative to the baseline for each charted metric, oriented so
 * that right of 1.0 is better (baseline/product for latency, CPU and memory). Target markers
 * are drawn where the issue sets one.
 */
export function svgChart(spec: TableSpec, title: string, subtitle: string): string {
  const rows = spec.rows.filter(r => r.chart);
  const series = spec.ratios;
  const colors = ["#2b6cb0", "#dd6b20", "#38a169"];
  type Bar = { value: number; raw: number; target?: number };
  const entries: Array<{ row: Row; bars: Array<Bar | undefined> }> = [];
  for (const row of rows) {
    const bars = series.map(s => {
      const r = ratioOf(spec.samples[s.variant]?.[row.key], spec.samples[spec.baseline]?.[row.key], row, undefined);
      if (!r || r.ratio <= 0) return undefined;
      const t = row.ratioTarget?.[s.target];
      return { raw: r.ratio, value: row.better === "higher" ? r.ratio : 1 / r.ratio, target: t === undefined ? undefined : row.better === "higher" ? t : 1 / t };
    });
    if (bars.some(Boolean)) entries.push({ row, bars });
  }
  const labelW = 330;
  const plotW = 480;
  const barH = 12;
  const rowH = series.length * (barH + 3) + 12;
  const top = 70;
  const height = top + entries.length * rowH + 40;
  const width = labelW + plotW + 90;
  const maxValue = Math.min(3, Math.max(1.5, ...entries.flatMap(e => e.bars.map(b => (b ? b.value * 1.05 : 0)))));
  const x = (v: number) => labelW + (Math.min(v, maxValue) / maxValue) * plotW;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="12" y="22" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  out.push(`<text x="12" y="40" fill="#555">${escapeXml(subtitle)}</text>`);
  series.forEach((s, i) => {
    const lx = labelW + i * 190;
    out.push(`<rect x="${lx}" y="50" width="12" height="12" fill="${colors[i % colors.length]}"/><text x="${lx + 16}" y="60">${escapeXml(s.title)}</text>`);
  });
  for (let t = 0; t <= maxValue + 1e-9; t += 0.5) {
    const gx = x(t);
    out.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${height - 32}" stroke="${t === 1 ? "#333" : "#ddd"}" stroke-width="${t === 1 ? 1.5 : 1}"/>`);
    out.push(`<text x="${gx}" y="${height - 18}" text-anchor="middle" fill="#555">${t.toFixed(1)}×</text>`);
  }
  out.push(`<text x="${x(1) + 4}" y="${height - 4}" fill="#333">= baseline (right is better)</text>`);
  entries.forEach((entry, i) => {
    const y0 = top + i * rowH;
    out.push(`<text x="${labelW - 8}" y="${y0 + rowH / 2}" text-anchor="end" dominant-baseline="middle">${escapeXml(entry.row.label)}</text>`);
    entry.bars.forEach((bar, j) => {
      const y = y0 + 4 + j * (barH + 3);
      if (!bar) return;
      out.push(`<rect x="${labelW}" y="${y}" width="${Math.max(1, x(bar.value) - labelW)}" height="${barH}" fill="${colors[j % colors.length]}"/>`);
      const text = `${bar.value.toFixed(2)}×${entry.row.better === "lower" ? ` (raw ${bar.raw.toFixed(2)}×)` : ""}${bar.value > maxValue ? " →" : ""}`;
      out.push(`<text x="${x(bar.value) + 4}" y="${y + barH - 2}" font-size="10" fill="#333">${escapeXml(text)}</text>`);
      if (bar.target !== undefined) {
        const tx = x(bar.target);
        out.push(`<line x1="${tx}" y1="${y - 1}" x2="${tx}" y2="${y + barH + 1}" stroke="#c53030" stroke-width="2"/>`);
      }
    });
  });
  out.push(`<text x="12" y="${height - 4}" font-size="10" fill="#c53030">red tick = target</text>`);
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
