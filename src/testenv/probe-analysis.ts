// Figures from the probe's records, per phase of a plan: failed requests per client kind (defects apart from
// failures that are the point of the phase), the longest outage per Service and client kind, DNS windows with
// and without CoreDNS's cache, and how long a ClusterIP that a Service kept had no kube-proxy rule.
//
// Whether a failure is "by design" is decided from the Service's families at the phase's start and end, as
// the probe's own watch saw them: a client kind keeps a Service through a phase when the family it needs is
// there before and after (either family for happy eyeballs). A failure of a kind that keeps the Service is a
// defect, whatever the instant in between looked like; an A-only client losing an IPv6-only Service is not.
import { CLIENT_KINDS, type ClientKind, type DnsServerName, type RequestRecord } from "./probe-protocol.js";
import type { ProbeRecords, ServiceChange } from "./probe.js";

export interface PhaseWindow {
  name: string;
  start: number;
  end: number;
  /** Batch starts the plan's status reported during the phase. */
  batches: { number: number; t: number }[];
}

export interface KindFigures {
  requests: number;
  failed: number;
  /** Failures of a kind that does not keep the Service through the phase: the point of the phase. */
  failedByDesign: number;
  /** Failures of a kind that keeps the Service: what the migration must bring to zero. */
  failedDefect: number;
  causes: Record<string, number>;
}

export interface Outage {
  service: string;
  kind: ClientKind;
  byDesign: boolean;
  /** From the first failed request to the next one that succeeded (or the last failure's end). */
  ms: number;
  failures: number;
  at: number;
  causes: string[];
}

export interface DnsWindow {
  server: DnsServerName;
  /** The longest a name answered neither its answer at the phase's start nor at its end (ms). */
  longestOtherMs: number;
  otherService?: string;
  otherAnswer?: string;
  /** The longest a name answered the cutover's CNAME (ms). */
  longestCnameMs: number;
  cnameService?: string;
  /** Answer changes of that server during the phase. */
  changes: number;
}

export interface RuleWindow {
  ip: string;
  service: string;
  /** The longest the ClusterIP, kept by its Service through the phase, had no entry in kube-proxy's map (ms). */
  longestAbsentMs: number;
}

export interface PhaseFigures {
  name: string;
  durationMs: number;
  batches: number;
  kinds: Record<ClientKind, KindFigures>;
  /** The longest outage of every (Service, kind) that had one. */
  outages: Outage[];
  dns: DnsWindow[];
  rules: RuleWindow[];
  /** Long-lived connections: opened and broken per family, and the causes. */
  longLived: Record<"v4" | "v6", { opened: number; broken: number; causes: Record<string, number> }>;
}

type Family = "IPv4" | "IPv6";
const NEEDS: Record<ClientKind, Family[]> = {
  "name-a": ["IPv4"],
  "name-aaaa": ["IPv6"],
  "name-he": ["IPv4", "IPv6"],
  "ip-v4": ["IPv4"],
  "ip-v6": ["IPv6"],
};

/** The Service as the probe last saw it at time t. */
export function serviceAt(changes: ServiceChange[], service: string, t: number): ServiceChange | undefined {
  let last: ServiceChange | undefined;
  for (const c of changes) {
    if (c.s !== service) continue;
    if (c.t > t) break;
    last = c;
  }
  return last;
}

/** Does `kind` reach `service` both at the phase's start and at its end? */
export function keeps(changes: ServiceChange[], service: string, kind: ClientKind, phase: PhaseWindow): boolean {
  const before = serviceAt(changes, service, phase.start)?.families ?? [];
  const after = serviceAt(changes, service, phase.end)?.families ?? [];
  return NEEDS[kind].some((family) => before.includes(family) && after.includes(family));
}

function longestStreaks(requests: RequestRecord[], phase: PhaseWindow, changes: ServiceChange[]): Outage[] {
  const byPair = new Map<string, RequestRecord[]>();
  for (const r of requests) {
    const key = `${r.s}\u0000${r.k}`;
    const list = byPair.get(key) ?? [];
    list.push(r);
    byPair.set(key, list);
  }
  const out: Outage[] = [];
  for (const [key, list] of byPair) {
    const [service = "", kind = "name-a"] = key.split("\u0000") as [string, ClientKind];
    let best: Outage | undefined;
    let streak: RequestRecord[] = [];
    const close = (until: number) => {
      if (streak.length === 0) return;
      const first = streak[0];
      const ms = until - first.t;
      if (!best || ms > best.ms) {
        best = {
          service,
          kind,
          byDesign: !keeps(changes, service, kind, phase),
          ms: Math.round(ms),
          failures: streak.length,
          at: first.t,
          causes: [...new Set(streak.map((r) => r.c ?? ""))],
        };
      }
      streak = [];
    };
    for (const r of list) {
      if (r.c) streak.push(r);
      else close(r.t);
    }
    const last = streak.at(-1);
    if (last) close(last.t + last.ms);
    if (best) out.push(best);
  }
  return out.sort((a, b) => b.ms - a.ms);
}

function dnsWindows(records: ProbeRecords, phase: PhaseWindow): DnsWindow[] {
  const out: DnsWindow[] = [];
  for (const server of ["cache", "nocache"] as const) {
    const window: DnsWindow = { server, longestOtherMs: 0, longestCnameMs: 0, changes: 0 };
    const series = new Map<string, { t: number; ans: string }[]>();
    for (const d of records.dns) {
      if (d.srv !== server) continue;
      const key = `${d.s} ${d.q}`;
      const list = series.get(key) ?? [];
      list.push({ t: d.t, ans: d.ans });
      series.set(key, list);
    }
    for (const [key, list] of series) {
      const service = key.split(" ")[0] ?? "";
      const at = (t: number) => [...list].reverse().find((p) => p.t <= t)?.ans;
      const old = at(phase.start);
      const now = at(phase.end);
      // Segments of constant answer inside the phase.
      const points = [
        { t: phase.start, ans: old ?? "" },
        ...list.filter((p) => p.t > phase.start && p.t < phase.end),
        { t: phase.end, ans: "" },
      ];
      window.changes += points.length - 2;
      for (let i = 0; i < points.length - 1; i++) {
        const p = points[i];
        const ms = Math.round((points[i + 1] as { t: number }).t - p.t);
        if (p.ans !== old && p.ans !== now && ms > window.longestOtherMs) {
          window.longestOtherMs = ms;
          window.otherService = key;
          window.otherAnswer = p.ans;
        }
        if (p.ans.startsWith("CNAME") && ms > window.longestCnameMs) {
          window.longestCnameMs = ms;
          window.cnameService = service;
        }
      }
    }
    out.push(window);
  }
  return out;
}

function ruleWindows(records: ProbeRecords, phase: PhaseWindow): RuleWindow[] {
  const out: RuleWindow[] = [];
  const services = [...new Set(records.services.map((c) => c.s))];
  for (const service of services) {
    const before = serviceAt(records.services, service, phase.start)?.clusterIPs ?? [];
    const after = serviceAt(records.services, service, phase.end)?.clusterIPs ?? [];
    for (const ip of before.filter((a) => after.includes(a))) {
      const changes = records.rules.filter((r) => r.ip === ip);
      const presentAt = (t: number) => [...changes].reverse().find((r) => r.t <= t)?.present ?? false;
      let longest = 0;
      let absentSince = presentAt(phase.start) ? undefined : phase.start;
      for (const r of changes.filter((c) => c.t > phase.start && c.t < phase.end)) {
        if (!r.present && absentSince === undefined) absentSince = r.t;
        if (r.present && absentSince !== undefined) {
          longest = Math.max(longest, r.t - absentSince);
          absentSince = undefined;
        }
      }
      if (absentSince !== undefined) longest = Math.max(longest, phase.end - absentSince);
      out.push({ ip, service, longestAbsentMs: Math.round(longest) });
    }
  }
  return out.sort((a, b) => b.longestAbsentMs - a.longestAbsentMs);
}

export function phaseFigures(records: ProbeRecords, phase: PhaseWindow): PhaseFigures {
  const requests = records.requests.filter((r) => r.t >= phase.start && r.t < phase.end);
  const kinds = Object.fromEntries(
    CLIENT_KINDS.map((k) => [k, { requests: 0, failed: 0, failedByDesign: 0, failedDefect: 0, causes: {} }]),
  ) as Record<ClientKind, KindFigures>;
  const keepsCache = new Map<string, boolean>();
  for (const r of requests) {
    const figures = kinds[r.k];
    figures.requests++;
    if (!r.c) continue;
    figures.failed++;
    const key = `${r.s} ${r.k}`;
    let kept = keepsCache.get(key);
    if (kept === undefined) keepsCache.set(key, (kept = keeps(records.services, r.s, r.k, phase)));
    if (kept) figures.failedDefect++;
    else figures.failedByDesign++;
    figures.causes[r.c] = (figures.causes[r.c] ?? 0) + 1;
  }
  const longLived = {
    v4: { opened: 0, broken: 0, causes: {} as Record<string, number> },
    v6: { opened: 0, broken: 0, causes: {} as Record<string, number> },
  };
  for (const c of records.conns) {
    if (c.t < phase.start || c.t >= phase.end) continue;
    const f = longLived[c.fam];
    if (c.ev === "open") f.opened++;
    else {
      f.broken++;
      f.causes[c.c ?? "?"] = (f.causes[c.c ?? "?"] ?? 0) + 1;
    }
  }
  return {
    name: phase.name,
    durationMs: Math.round(phase.end - phase.start),
    batches: phase.batches.length,
    kinds,
    outages: longestStreaks(requests, phase, records.services),
    dns: dnsWindows(records, phase),
    rules: ruleWindows(records, phase),
    longLived,
  };
}

/** Failed requests of kinds that keep their Service, listed for an assertion message. */
export function defects(
  records: ProbeRecords,
  phase: PhaseWindow,
  kinds: readonly ClientKind[] = CLIENT_KINDS,
): RequestRecord[] {
  return records.requests.filter(
    (r) =>
      r.t >= phase.start && r.t < phase.end && r.c && kinds.includes(r.k) && keeps(records.services, r.s, r.k, phase),
  );
}
