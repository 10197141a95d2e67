// What the traffic probe's two halves say to each other: the host side (src/testenv/probe.ts) sends targets on
// the agent's stdin, the agent (src/testenv/probe-agent.ts, inside the data plane's network namespace) answers
// with one JSON record per line on stdout. Times are epoch milliseconds with fractions, from both processes'
// clocks (one machine), so they line up with the control plane's events.

/** The four kinds of client, the literal one split by family. */
export const CLIENT_KINDS = ["name-a", "name-aaaa", "name-he", "ip-v4", "ip-v6"] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

export const CLIENT_KIND_TITLES: Record<ClientKind, string> = {
  "name-a": "by name, A only (IPv4 resolver)",
  "name-aaaa": "by name, AAAA only (IPv6 resolver)",
  "name-he": "by name, happy eyeballs (A + AAAA)",
  "ip-v4": "by IPv4 ClusterIP literal",
  "ip-v6": "by IPv6 ClusterIP literal",
};

export type DnsServerName = "cache" | "nocache";

export interface ProbeTarget {
  /** namespace/name */
  key: string;
  fqdn: string;
  /** The backend's name, which its HTTP server answers: a reply from anyone else is a failure. */
  backend: string;
  port: number;
  /** The pods' port: a headless Service's name resolves to the pods, which a client reaches on it. */
  podPort: number;
  /** The echo port, for the long-lived connections. */
  echoPort: number;
  /** The last IPv4 and IPv6 ClusterIP the Service had: a literal client keeps using what it was given. */
  v4?: string;
  v6?: string;
  headless: boolean;
}

export interface ProbeConfig {
  /** Requests per second over all targets and client kinds. */
  rate: number;
  dns: Record<DnsServerName, { server: string; port: number }>;
  /** Which DNS server the clients use (the other is only watched). */
  clientDns: DnsServerName;
  timeoutMs: number;
  /** How often each name's A and AAAA answers are asked of both servers, to record every change. */
  dnsWatchMs: number;
  /** How often kube-proxy's nftables maps are read. */
  nftPollMs: number;
  /** Keep one TCP connection per Service and family open, and say when one breaks. */
  longLived: boolean;
}

export type HostMessage = { op: "targets"; targets: ProbeTarget[] } | { op: "stop" };

export type FailureCause =
  | "dns-nxdomain"
  | "dns-nodata"
  | "dns-cname"
  | "dns-servfail"
  | "dns-refused"
  | "dns-timeout"
  | "no-address"
  | "connect-refused"
  | "connect-timeout"
  | "connect-unreachable"
  | "reset"
  | "response-timeout"
  | "wrong-backend"
  | "bad-response";

/** One request; `c` is set when it failed. */
export interface RequestRecord {
  e: "req";
  t: number;
  s: string;
  k: ClientKind;
  ms: number;
  c?: FailureCause;
  /** The address a name client connected to, or tried. */
  a?: string;
}

/** A DNS answer that differs from the previous one for the same server, name and type. */
export interface DnsRecord {
  e: "dns";
  t: number;
  s: string;
  srv: DnsServerName;
  q: "A" | "AAAA";
  /** Sorted addresses, "CNAME <target>", "NXDOMAIN", "NODATA", "SERVFAIL", "REFUSED" or "TIMEOUT". */
  ans: string;
}

/** kube-proxy's map of Service IPs gained or lost an address. */
export interface RuleRecord {
  e: "rule";
  t: number;
  ip: string;
  present: boolean;
}

/** A long-lived connection opened, or broke (`c` says how). */
export interface ConnRecord {
  e: "conn";
  t: number;
  s: string;
  fam: "v4" | "v6";
  ev: "open" | "broken";
  c?: string;
}

export interface ReadyRecord {
  e: "ready";
  t: number;
}

export type AgentRecord = RequestRecord | DnsRecord | RuleRecord | ConnRecord | ReadyRecord;
