// The traffic probe's client side, run inside the data plane's network namespace (src/testenv/dataplane.ts
// starts it there), so that every connection goes through kube-proxy's nftables rules and every name through
// CoreDNS, as a pod's would. It reads its targets on stdin and writes one record per line on stdout
// (src/testenv/probe-protocol.ts); it keeps no state worth keeping: the host side analyses the records.
//   node probe-agent.js '<ProbeConfig as JSON>'
import { execFile } from "node:child_process";
import net from "node:net";
import readline from "node:readline";
import { promisify } from "node:util";
import { DnsClient, DnsTimeout, RCODE, type DnsAnswer, type QueryType } from "./dns.js";
import {
  CLIENT_KINDS,
  type AgentRecord,
  type ClientKind,
  type DnsServerName,
  type FailureCause,
  type HostMessage,
  type ProbeConfig,
  type ProbeTarget,
} from "./probe-protocol.js";

const config = JSON.parse(process.argv[2] ?? "{}") as ProbeConfig;
/** RFC 8305's Connection Attempt Delay, which Node (autoSelectFamilyAttemptTimeout) and Go use too. */
const HAPPY_EYEBALLS_DELAY_MS = 250;
const ECHO_INTERVAL_MS = 250;
const now = () => performance.timeOrigin + performance.now();

let out: string[] = [];
function emit(record: AgentRecord): void {
  out.push(JSON.stringify(record));
}
const flusher = setInterval(() => {
  if (out.length === 0) return;
  process.stdout.write(out.join("\n") + "\n");
  out = [];
}, 50);

const resolvers: Record<DnsServerName, DnsClient> = {
  cache: new DnsClient(config.dns.cache.server, config.dns.cache.port),
  nocache: new DnsClient(config.dns.nocache.server, config.dns.nocache.port),
};

class Failure extends Error {
  constructor(
    readonly reason: FailureCause,
    readonly address?: string,
  ) {
    super(reason);
  }
}

function dnsCause(answer: DnsAnswer): FailureCause {
  if (answer.cnames.length > 0) return "dns-cname";
  if (answer.rcode === RCODE.NXDOMAIN) return "dns-nxdomain";
  if (answer.rcode === RCODE.SERVFAIL) return "dns-servfail";
  if (answer.rcode === RCODE.REFUSED) return "dns-refused";
  return "dns-nodata";
}

async function resolve(target: ProbeTarget, type: QueryType): Promise<string[]> {
  let answer: DnsAnswer;
  try {
    answer = await resolvers[config.clientDns].query(target.fqdn, type, config.timeoutMs);
  } catch (err) {
    throw new Failure(err instanceof DnsTimeout ? "dns-timeout" : "dns-servfail");
  }
  if (answer.addresses.length === 0) throw new Failure(dnsCause(answer));
  return answer.addresses;
}

const pick = <T>(items: T[]): T => items[Math.floor(Math.random() * items.length)];

function connectCause(err: NodeJS.ErrnoException): FailureCause {
  switch (err.code) {
    case "ECONNREFUSED":
      return "connect-refused";
    case "ENETUNREACH":
    case "EHOSTUNREACH":
    case "EADDRNOTAVAIL":
      return "connect-unreachable";
    default:
      return "reset";
  }
}

/** A TCP connection to address:port, or a Failure; `abort` cancels a happy-eyeballs loser. */
function connect(address: string, port: number, signal?: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Failure("connect-timeout", address));
    }, config.timeoutMs);
    const abort = () => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Failure("connect-timeout", address));
    };
    signal?.addEventListener("abort", abort, { once: true });
    socket.once("connect", () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      resolve(socket);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      reject(new Failure(connectCause(err), address));
    });
  });
}

/** RFC 8305 in short: IPv6 first, IPv4 after the attempt delay or as soon as IPv6 fails; the first to connect wins. */
async function happyEyeballs(v6: string[], v4: string[], port: number): Promise<net.Socket> {
  const candidates = [...(v6.length ? [pick(v6)] : []), ...(v4.length ? [pick(v4)] : [])];
  if (candidates.length === 1) return connect(candidates[0], port);
  const controller = new AbortController();
  const errors: Failure[] = [];
  return new Promise((resolve, reject) => {
    let started = 0;
    let settled = false;
    const attempt = (address: string) => {
      started++;
      connect(address, port, controller.signal).then(
        (socket) => {
          if (settled) {
            socket.destroy();
            return;
          }
          settled = true;
          clearTimeout(fallback);
          controller.abort();
          resolve(socket);
        },
        (err: unknown) => {
          if (settled) return;
          errors.push(err instanceof Failure ? err : new Failure("reset", address));
          if (started < candidates.length) {
            clearTimeout(fallback);
            attempt(candidates[started]);
          } else if (errors.length === candidates.length) {
            settled = true;
            // The last family's cause: the fallback's failure is what the client finally saw.
            reject(errors[errors.length - 1]);
          }
        },
      );
    };
    const fallback = setTimeout(() => {
      if (!settled && started < candidates.length) attempt(candidates[started]);
    }, HAPPY_EYEBALLS_DELAY_MS);
    attempt(candidates[0]);
  });
}

/** GET / over a connected socket; the backend answers its own name. */
function exchange(socket: net.Socket, target: ProbeTarget): Promise<void> {
  const address = socket.remoteAddress;
  return new Promise((resolve, reject) => {
    let data = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Failure("response-timeout", address));
    }, config.timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (data += chunk));
    socket.once("error", () => {
      clearTimeout(timer);
      reject(new Failure("reset", address));
    });
    socket.once("close", () => {
      clearTimeout(timer);
      if (!data.startsWith("HTTP/1.1 200")) return reject(new Failure("bad-response", address));
      const body = data.slice(data.indexOf("\r\n\r\n") + 4).trim();
      if (body !== target.backend) return reject(new Failure("wrong-backend", address));
      resolve();
    });
    socket.end(`GET / HTTP/1.1\r\nHost: ${target.fqdn}\r\nConnection: close\r\n\r\n`);
  });
}

async function request(target: ProbeTarget, kind: ClientKind): Promise<string> {
  let socket: net.Socket;
  const port = target.headless ? target.podPort : target.port;
  switch (kind) {
    case "name-a":
      socket = await connect(pick(await resolve(target, "A")), port);
      break;
    case "name-aaaa":
      socket = await connect(pick(await resolve(target, "AAAA")), port);
      break;
    case "name-he": {
      const [v6, v4] = await Promise.allSettled([resolve(target, "AAAA"), resolve(target, "A")]);
      const six = v6.status === "fulfilled" ? v6.value : [];
      const four = v4.status === "fulfilled" ? v4.value : [];
      if (six.length === 0 && four.length === 0) {
        const causes = [v6, v4].map((r) =>
          r.status === "rejected" && r.reason instanceof Failure ? r.reason.reason : "dns-nodata",
        );
        // A timeout or a CNAME says more than the other family's NODATA.
        throw new Failure(causes.find((c) => c !== "dns-nodata") ?? "dns-nodata");
      }
      socket = await happyEyeballs(six, four, port);
      break;
    }
    case "ip-v4":
    case "ip-v6": {
      const address = kind === "ip-v4" ? target.v4 : target.v6;
      if (!address) throw new Failure("no-address");
      socket = await connect(address, target.port);
      break;
    }
  }
  const address = socket.remoteAddress ?? "";
  await exchange(socket, target);
  return address;
}

let targets: ProbeTarget[] = [];
const nextAt = new Map<string, number>();
let stopping = false;
let inFlight = 0;

/** Each (Service, kind) pair gets rate / pairs requests per second, at a random phase so they don't bunch. */
function schedule(): void {
  if (stopping || targets.length === 0) return;
  const intervalMs = (targets.length * CLIENT_KINDS.length * 1000) / config.rate;
  const t = now();
  for (const target of targets) {
    for (const kind of CLIENT_KINDS) {
      if (target.headless && kind.startsWith("ip-")) continue;
      // A literal client starts once it has been given an address, as a configured one would.
      if ((kind === "ip-v4" && !target.v4) || (kind === "ip-v6" && !target.v6)) continue;
      const key = `${target.key} ${kind}`;
      const due = nextAt.get(key) ?? t + Math.random() * intervalMs;
      if (due > t) {
        nextAt.set(key, due);
        continue;
      }
      nextAt.set(key, due + intervalMs < t ? t + intervalMs : due + intervalMs);
      const started = now();
      inFlight++;
      request(target, kind)
        .then(
          (address) => emit({ e: "req", t: started, s: target.key, k: kind, ms: now() - started, a: address }),
          (err: unknown) => {
            const failure = err instanceof Failure ? err : new Failure("reset");
            emit({
              e: "req",
              t: started,
              s: target.key,
              k: kind,
              ms: now() - started,
              c: failure.reason,
              ...(failure.address ? { a: failure.address } : {}),
            });
          },
        )
        .finally(() => inFlight--);
    }
  }
}
const scheduler = setInterval(schedule, 5);

/** Every change of each name's answers, on both DNS servers (with and without cache). */
const lastAnswer = new Map<string, string>();
async function watchDns(target: ProbeTarget, srv: DnsServerName, q: QueryType): Promise<void> {
  let ans: string;
  try {
    const answer = await resolvers[srv].query(target.fqdn, q, config.timeoutMs);
    if (answer.cnames.length > 0) ans = `CNAME ${answer.cnames.join(",")}`;
    else if (answer.addresses.length > 0) ans = [...answer.addresses].sort().join(",");
    else if (answer.rcode === RCODE.NXDOMAIN) ans = "NXDOMAIN";
    else if (answer.rcode === RCODE.SERVFAIL) ans = "SERVFAIL";
    else if (answer.rcode === RCODE.REFUSED) ans = "REFUSED";
    else ans = "NODATA";
  } catch {
    ans = "TIMEOUT";
  }
  const key = `${target.key} ${srv} ${q}`;
  if (lastAnswer.get(key) === ans) return;
  lastAnswer.set(key, ans);
  emit({ e: "dns", t: now(), s: target.key, srv, q, ans });
}
let dnsWatchBusy = false;
async function dnsRound(): Promise<void> {
  if (dnsWatchBusy || stopping) return;
  dnsWatchBusy = true;
  const queries = targets.flatMap((target) =>
    (["cache", "nocache"] as const).flatMap((srv) => (["A", "AAAA"] as const).map((q) => watchDns(target, srv, q))),
  );
  await Promise.allSettled(queries);
  dnsWatchBusy = false;
}
const dnsWatcher = setInterval(() => void dnsRound(), config.dnsWatchMs);

/** kube-proxy's Service IP maps (nftables mode), one per family: which ClusterIPs have a rule right now. */
const rulePresent = new Set<string>();
let nftBusy = false;
async function pollRules(): Promise<void> {
  if (nftBusy) return;
  nftBusy = true;
  try {
    await readRules();
  } finally {
    nftBusy = false;
  }
}
async function readRules(): Promise<void> {
  const present = new Set<string>();
  for (const family of ["ip", "ip6"]) {
    try {
      const { stdout } = await promisify(execFile)("nft", ["list", "map", family, "kube-proxy", "service-ips"]);
      for (const match of stdout.matchAll(/([0-9a-f:.]+) \. (?:tcp|udp|sctp) \. \d+ :/gi)) present.add(match[1]);
    } catch {
      // the table is not there yet: no rules
    }
  }
  const t = now();
  for (const ip of present) if (!rulePresent.has(ip)) emit({ e: "rule", t, ip, present: true });
  for (const ip of rulePresent) if (!present.has(ip)) emit({ e: "rule", t, ip, present: false });
  rulePresent.clear();
  for (const ip of present) rulePresent.add(ip);
}
const nftPoller = setInterval(() => {
  if (!stopping) void pollRules();
}, config.nftPollMs);

/** One connection per Service and family that pings every 250 ms: does an established connection survive? */
const longLived = new Map<string, net.Socket>();
function keepConnected(target: ProbeTarget, fam: "v4" | "v6"): void {
  const key = `${target.key} ${fam}`;
  const address = fam === "v4" ? target.v4 : target.v6;
  if (stopping || longLived.has(key) || !address || target.headless) return;
  const socket = net.connect({ host: address, port: target.echoPort });
  longLived.set(key, socket);
  let awaiting = 0;
  let opened = false;
  let ticker: NodeJS.Timeout | undefined;
  const broken = (cause: string) => {
    if (ticker) clearInterval(ticker);
    socket.destroy();
    if (stopping) return;
    if (opened) emit({ e: "conn", t: now(), s: target.key, fam, ev: "broken", c: cause });
    // Reconnect: a new connection, counted apart from the one that broke.
    setTimeout(() => {
      longLived.delete(key);
      keepConnected(target, fam);
    }, ECHO_INTERVAL_MS);
  };
  socket.setEncoding("utf8");
  socket.once("connect", () => {
    opened = true;
    emit({ e: "conn", t: now(), s: target.key, fam, ev: "open" });
    ticker = setInterval(() => {
      if (awaiting > 0 && now() - awaiting > config.timeoutMs) return broken("no-echo");
      if (awaiting === 0) {
        awaiting = now();
        socket.write("ping\n");
      }
    }, ECHO_INTERVAL_MS);
  });
  socket.on("data", () => (awaiting = 0));
  socket.once("error", (err: NodeJS.ErrnoException) => broken(err.code ?? "error"));
  socket.once("close", () => broken("closed"));
}

const input = readline.createInterface({ input: process.stdin });
input.on("line", (line) => {
  const message = JSON.parse(line) as HostMessage;
  if (message.op === "targets") {
    const first = targets.length === 0;
    targets = message.targets;
    if (config.longLived)
      for (const target of targets) for (const fam of ["v4", "v6"] as const) keepConnected(target, fam);
    // Ready once the first answers and rules are recorded: a phase that starts then has a known "before".
    if (first) void Promise.all([dnsRound(), pollRules()]).then(() => emit({ e: "ready", t: now() }));
  } else if (message.op === "stop") void stop();
});
// The host side going away (a crashed test) must not leave the probe running in the namespace.
input.on("close", () => void stop());

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(scheduler);
  clearInterval(dnsWatcher);
  clearInterval(nftPoller);
  for (const socket of longLived.values()) socket.destroy();
  const deadline = now() + config.timeoutMs * 3;
  while (inFlight > 0 && now() < deadline) await new Promise((r) => setTimeout(r, 20));
  clearInterval(flusher);
  if (out.length) process.stdout.write(out.join("\n") + "\n");
  for (const resolver of Object.values(resolvers)) resolver.close();
  process.exit(0);
}
