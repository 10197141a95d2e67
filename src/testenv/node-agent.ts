// The node's own processes in the data plane's network namespace, in one Node process:
// - the "pods": an HTTP server (answering its pod's name) and a TCP echo server on each pod address;
// - a relay from 127.0.0.1:<port> in the namespace to the host's kube-apiserver, through a Unix socket that the
//   host side serves (a network namespace has its own loopback, and nothing may leave it over a network);
// - a small RPC on stdin/stdout for the host side, which can't reach into the namespace: HTTP GETs and DNS
//   queries from the node, to wait for kube-proxy and CoreDNS.
//   node node-agent.js '<NodeAgentConfig as JSON>'
import http from "node:http";
import net from "node:net";
import readline from "node:readline";
import { DnsClient, type QueryType } from "./dns.js";
import { relay } from "./relay.js";

export interface PodSpec {
  name: string;
  v4: string;
  v6: string;
}

export interface NodeAgentConfig {
  relay: { port: number; socket: string };
  pods: PodSpec[];
  httpPort: number;
  echoPort: number;
}

export type NodeAgentCall =
  | { op: "get"; url: string; timeoutMs: number }
  | { op: "dns"; server: string; port: number; name: string; type: QueryType; timeoutMs: number };
export type NodeAgentRequest = NodeAgentCall & { id: number };

export interface NodeAgentReply {
  id: number;
  ok: boolean;
  status?: number;
  body?: string;
  addresses?: string[];
  cnames?: string[];
  rcode?: number;
  error?: string;
}

const config = JSON.parse(process.argv[2] ?? "{}") as NodeAgentConfig;
const say = (message: object) => process.stdout.write(JSON.stringify(message) + "\n");

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, exclusive: true }, () => resolve());
  });
}

const servers: net.Server[] = [];
for (const pod of config.pods) {
  for (const address of [pod.v4, pod.v6]) {
    const web = http.createServer((_req, res) => {
      // A Content-Length, not chunks: the probe reads the body raw.
      res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(pod.name) });
      res.end(pod.name);
    });
    const echo = net.createServer((socket) => {
      socket.on("error", () => socket.destroy());
      socket.pipe(socket);
    });
    await listen(web, address, config.httpPort);
    await listen(echo, address, config.echoPort);
    servers.push(web, echo);
  }
}

await listen(
  relay(() => net.connect(config.relay.socket)),
  "127.0.0.1",
  config.relay.port,
);

async function handle(request: NodeAgentRequest): Promise<NodeAgentReply> {
  if (request.op === "get") {
    const response = await fetch(request.url, { signal: AbortSignal.timeout(request.timeoutMs) });
    return { id: request.id, ok: true, status: response.status, body: await response.text() };
  }
  const client = new DnsClient(request.server, request.port);
  try {
    const answer = await client.query(request.name, request.type, request.timeoutMs);
    return { id: request.id, ok: true, ...answer };
  } finally {
    client.close();
  }
}

const input = readline.createInterface({ input: process.stdin });
input.on("line", (line) => {
  const request = JSON.parse(line) as NodeAgentRequest;
  handle(request).then(say, (err: unknown) =>
    say({
      id: request.id,
      ok: false,
      error: err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err),
    }),
  );
});
// Stdin closes when the host side goes away, also when it crashed: nothing of the node may outlive it.
input.on("close", () => process.exit(0));
say({ ready: true });
