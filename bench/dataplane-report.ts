// bench/dataplane.json → the data-plane section of bench/README.md and docs/reliability.md (between markers,
// so the rest of each file is left as its own writer made it) and bench/dataplane-timeline.svg.
import { readFileSync, writeFileSync } from "node:fs";
import type { PhaseFigures } from "../src/testenv/probe-analysis.js";
import type { PacingVariant } from "./cutover-pacing.js";
import { CLIENT_KINDS, CLIENT_KIND_TITLES, type ClientKind } from "../src/testenv/probe-protocol.js";

export const DATAPLANE_START = "<!-- dataplane:start (written by `make bench-dataplane`; do not edit by hand) -->";
export const DATAPLANE_END = "<!-- dataplane:end -->";

export interface Timeline {
  binMs: number;
  start: number;
  ok: Record<ClientKind, number[]>;
  /** Failures that are defects (the kind keeps the Service through the phase). */
  failed: Record<ClientKind, number[]>;
  /** Failures that are the point of the phase. */
  byDesign: Record<ClientKind, number[]>;
  phases: { name: string; t: number }[];
  batches: number[];
}

export interface DataplaneRun {
  label: string;
  kubeProxyArgs: string[];
  phases: PhaseFigures[];
  timeline: Timeline;
}

export interface PacingResults {
  services: number;
  rounds: number;
  idleMs: number;
  leadMs: number;
  variants: PacingVariant[];
}

export interface DataplaneResults {
  generatedAt: string;
  durationS: number;
  machine: { cpus: number; kernel: string; kubernetes: string; coredns: string; node: string };
  config: {
    services: number;
    shapes: string[];
    rate: number;
    timeoutMs: number;
    dnsWatchMs: number;
    nftPollMs: number;
    batchSize: number | string;
    pauseBetweenBatches: string;
    settleMs: number;
  };
  runs: DataplaneRun[];
  pacing?: PacingResults;
}

/** Replaces the marked block of `text` with `block`, or appends it. */
export function replaceMarked(text: string, block: string): string {
  const marked = `${DATAPLANE_START}\n${block.trimEnd()}\n${DATAPLANE_END}`;
  const from = text.indexOf(DATAPLANE_START);
  const to = text.indexOf(DATAPLANE_END);
  if (from < 0 || to < 0) return `${text.trimEnd()}\n\n${marked}\n`;
  return text.slice(0, from) + marked + text.slice(to + DATAPLANE_END.length);
}

/** The marked block of a file as it is, for a writer that rewrites the rest (bench/run.ts). */
export function keepMarked(fresh: string, file: string): string {
  let current: string;
  try {
    current = readFileSync(file, "utf8");
  } catch {
    return fresh;
  }
  const from = current.indexOf(DATAPLANE_START);
  const to = current.indexOf(DATAPLANE_END);
  if (from < 0 || to < 0) return fresh;
  return replaceMarked(fresh, current.slice(from + DATAPLANE_START.length, to).trim());
}

const ms = (v: number) => (v === 0 ? "0" : `${Math.round(v)} ms`);

function kindTable(run: DataplaneRun): string[] {
  const lines = [
    `| phase | ${CLIENT_KINDS.map((k) => `\`${k}\``).join(" | ")} |`,
    `| --- | ${CLIENT_KINDS.map(() => "---").join(" | ")} |`,
  ];
  for (const f of run.phases) {
    const cells = CLIENT_KINDS.map((k) => {
      const c = f.kinds[k];
      if (c.requests === 0) return "—";
      const defect = c.failedDefect ? `**${c.failedDefect} defect**` : "0 defect";
      return `${defect}, ${c.failedByDesign} by design / ${c.requests}`;
    });
    lines.push(`| ${f.name} | ${cells.join(" | ")} |`);
  }
  return lines;
}

function outageTable(run: DataplaneRun): string[] {
  const lines = [
    "| phase | defects: longest outage (Service, client kind, causes) | by design: longest outage |",
    "| --- | --- | --- |",
  ];
  for (const f of run.phases) {
    const describe = (defect: boolean) => {
      const list = f.outages.filter((o) => o.byDesign !== defect);
      const top = list[0];
      if (!top) return "none";
      const others = list.length > 1 ? `; ${list.length - 1} more pairs` : "";
      return `${ms(top.ms)} (${top.service}, \`${top.kind}\`, ${top.failures} requests: ${top.causes.join(", ")})${others}`;
    };
    lines.push(`| ${f.name} | ${describe(true)} | ${describe(false)} |`);
  }
  return lines;
}

function dnsRulesTable(run: DataplaneRun): string[] {
  const lines = [
    "| phase | DNS with `cache 30`: other answer / CNAME | DNS without cache: other answer / CNAME | kube-proxy: longest a kept ClusterIP had no rule | long-lived TCP broken (IPv4 / IPv6) |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const f of run.phases) {
    const dns = (server: "cache" | "nocache") => {
      const d = f.dns.find((x) => x.server === server);
      if (!d) return "—";
      return `${ms(d.longestOtherMs)}${d.otherAnswer ? ` (${d.otherAnswer})` : ""} / ${ms(d.longestCnameMs)}`;
    };
    const rule = f.rules[0];
    const rules = rule && rule.longestAbsentMs > 0 ? `${ms(rule.longestAbsentMs)} (${rule.ip}, ${rule.service})` : "0";
    const ll = `${f.longLived.v4.broken} / ${f.longLived.v6.broken}`;
    lines.push(`| ${f.name} | ${dns("cache")} | ${dns("nocache")} | ${rules} | ${ll} |`);
  }
  return lines;
}

export function renderSection(r: DataplaneResults, heading = "##"): string {
  const c = r.config;
  const out: string[] = [];
  out.push(`${heading} Traffic through a plan, on a real data plane (\`make bench-dataplane\`)`);
  out.push("");
  out.push(
    `${c.services} Services (${c.shapes.join(", ")}), each with its own pod, in a network namespace holding kube-proxy`,
    `${r.machine.kubernetes} (nftables mode) and CoreDNS ${r.machine.coredns} (\`src/testenv/dataplane.ts\`); the real operator drives a`,
    `plan Audit → DualStack → IPv6Only → DualStack → Audit (batches of ${c.batchSize}, ${c.pauseBetweenBatches} apart, ${c.settleMs / 1000} s of traffic after each`,
    `phase is Ready) while the probe sends ${c.rate} requests/s as five kinds of client (${CLIENT_KINDS.map((k) => `\`${k}\`: ${CLIENT_KIND_TITLES[k]}`).join("; ")}).`,
    `Timeouts ${c.timeoutMs} ms; DNS answers are sampled every ${c.dnsWatchMs} ms per name on both servers and kube-proxy's maps every`,
    `${c.nftPollMs} ms, so shorter windows can be missed. A failure is *by design* when the client's family is missing from the`,
    "Service at the phase's start or end (an A-only client of an IPv6-only Service); any other is a *defect*.",
    `Last run: ${r.generatedAt}, ${Math.round(r.durationS)} s, ${r.machine.cpus} CPUs, ${r.machine.kernel}.`,
  );
  for (const run of r.runs) {
    out.push("", `${heading}# ${run.label}`, "");
    out.push(`kube-proxy flags: \`${run.kubeProxyArgs.join(" ") || "(defaults)"}\``, "");
    out.push("Failed requests per client kind (defects, by design / requests):", "");
    out.push(...kindTable(run), "");
    out.push("Longest outage per Service and client kind (the longest of any pair is shown):", "");
    out.push(...outageTable(run), "");
    out.push(...dnsRulesTable(run));
  }
  const p = r.pacing;
  if (p) {
    out.push("", `${heading}# The cutover's gap and a pacer write (\`bench/cutover-pacing.ts\`)`, "");
    out.push(
      `The operator's own cutover code (\`decide()\` + \`ServiceWriter.cutover\`) on ${p.services} dual-stack ClusterIP Services, one`,
      `cutover at a time (forward to IPv6-only and back, alternately), each ${p.idleMs / 1000} s after the last so that kube-proxy is idle;`,
      `"paced" cutovers start ${p.leadMs} ms after a change to a Service of no one's (\`${"pacing-system/kube-proxy-pacer"}\`: no selector, its port`,
      "toggled), which makes kube-proxy sync at once and then wait its min-sync-period, inside which the cutover's two writes",
      "are coalesced. IPv6 clients (`name-aaaa`, `name-he`, `ip-v6`) keep the Service in both directions.",
      "",
      "| variant | cutovers | with the kept IPv6 ClusterIP missing from kube-proxy's map | longest | failed IPv6 requests | median ms between the two writes |",
      "| --- | --- | --- | --- | --- | --- |",
    );
    for (const v of p.variants) {
      out.push(
        `| ${v.variant} | ${v.cutovers} | ${v.withRuleGap} | ${ms(v.longestRuleGapMs)} | ${v.ipv6Failed} / ${v.ipv6Requests} | ${v.medianWritesApartMs} |`,
      );
    }
  }
  return out.join("\n") + "\n";
}

export function renderTimeline(run: DataplaneRun, title: string): string {
  const t = run.timeline;
  const bins = Math.max(...CLIENT_KINDS.map((k) => t.ok[k].length));
  const W = 1000;
  const left = 250;
  const right = 20;
  const top = 64;
  const rowH = 80;
  const H = top + rowH * CLIENT_KINDS.length + 50;
  const plotW = W - left - right;
  const bw = plotW / Math.max(1, bins);
  const max = Math.max(
    1,
    ...CLIENT_KINDS.flatMap((k) => t.ok[k].map((v, i) => v + (t.failed[k][i] ?? 0) + (t.byDesign[k][i] ?? 0))),
  );
  const x = (ms: number) => left + ((ms - t.start) / t.binMs) * bw;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left}" y="18" font-size="14" font-weight="bold">${title}</text>`,
    `<text x="${left}" y="34" fill="#555">requests/s: ok (green), failed by design (orange), failed as a defect (red, at least 3 px); lines: phases, dashed: batches</text>`,
  );
  CLIENT_KINDS.forEach((kind, row) => {
    const y0 = top + row * rowH;
    const base = y0 + rowH - 12;
    const scale = (rowH - 20) / max;
    out.push(`<text x="${left - 8}" y="${y0 + rowH / 2 - 6}" text-anchor="end" font-weight="bold">${kind}</text>`);
    out.push(
      `<text x="${left - 8}" y="${y0 + rowH / 2 + 8}" text-anchor="end" fill="#555">${CLIENT_KIND_TITLES[kind]}</text>`,
    );
    out.push(`<line x1="${left}" x2="${W - right}" y1="${base}" y2="${base}" stroke="#999"/>`);
    for (let i = 0; i < bins; i++) {
      const ok = t.ok[kind][i] ?? 0;
      const failed = t.failed[kind][i] ?? 0;
      const bx = (left + i * bw).toFixed(1);
      const w = Math.max(0.5, bw - 0.5).toFixed(1);
      if (ok > 0)
        out.push(
          `<rect x="${bx}" y="${(base - ok * scale).toFixed(1)}" width="${w}" height="${(ok * scale).toFixed(1)}" fill="#8fd19e"/>`,
        );
      const designed = t.byDesign[kind][i] ?? 0;
      let y = base - ok * scale;
      if (designed > 0) {
        y -= designed * scale;
        out.push(
          `<rect x="${bx}" y="${y.toFixed(1)}" width="${w}" height="${(designed * scale).toFixed(1)}" fill="#f4b183"/>`,
        );
      }
      if (failed > 0) {
        const h = Math.max(3, failed * scale);
        out.push(`<rect x="${bx}" y="${(y - h).toFixed(1)}" width="${w}" height="${h.toFixed(1)}" fill="#d62728"/>`);
      }
    }
  });
  const bottom = top + rowH * CLIENT_KINDS.length;
  for (const b of t.batches) {
    out.push(
      `<line x1="${x(b).toFixed(1)}" x2="${x(b).toFixed(1)}" y1="${top}" y2="${bottom}" stroke="#888" stroke-dasharray="3 3"/>`,
    );
  }
  t.phases.forEach((p, i) => {
    const px = x(p.t).toFixed(1);
    out.push(`<line x1="${px}" x2="${px}" y1="${top - 4}" y2="${bottom}" stroke="#333"/>`);
    out.push(
      `<text x="${(x(p.t) + 3).toFixed(1)}" y="${top - 6 - (i % 2) * 12}" font-weight="bold">${p.name.replace(/^.*→ /, "→ ")}</text>`,
    );
  });
  const seconds = (bins * t.binMs) / 1000;
  const step = seconds > 120 ? 30 : 10;
  for (let s = 0; s <= seconds; s += step) {
    const px = (left + ((s * 1000) / t.binMs) * bw).toFixed(1);
    out.push(`<text x="${px}" y="${bottom + 16}" text-anchor="middle">${s} s</text>`);
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}

export function writeReports(
  r: DataplaneResults,
  files: { readme: string; reliability: string; svg: (i: number) => string },
): void {
  const section = renderSection(r);
  writeFileSync(files.readme, replaceMarked(readFileSync(files.readme, "utf8"), section));
  writeFileSync(files.reliability, replaceMarked(readFileSync(files.reliability, "utf8"), renderSection(r, "###")));
  r.runs.forEach((run, i) => writeFileSync(files.svg(i), renderTimeline(run, run.label)));
}
