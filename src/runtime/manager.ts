// The manager runs what a controller process needs, as controller-runtime's manager does: caches start on every
// replica (so a standby is warm), controllers start only on the leader, /healthz, /readyz and /metrics are
// served, and SIGTERM/SIGINT stop taking work, finish in-flight reconciles within a bound and release the lease.
import type * as Http from "node:http";
import type * as Https from "node:https";
import { createRequire } from "node:module";
import os from "node:os";
import { isUnavailable, type KubeClient } from "./client.js";
import type { Controller } from "./controller.js";
import type { Informer } from "./informer.js";
import { LeaderElector } from "./leaderelection.js";
import { errorMessage, silentLogger, type Logger } from "./log.js";
import { Metrics } from "./metrics.js";
import type { KubeObject } from "./object.js";
import { readTlsMaterial, ReviewAuthorizer, selfSignedTlsMaterial, type TlsMaterial } from "./secure-serving.js";

// Required, not imported: binding an ES module to node:http evaluates its lazy exports (WebSocket and the like),
// which load Node's own copy of undici; 13 MiB of RSS for servers that use none of it (measured with Node 24.21).
const require = createRequire(import.meta.url);
const http = require("node:http") as typeof Http;
const https = require("node:https") as typeof Https;

const SERVER_PROBE_INTERVAL_MS = 1000;
const SERVER_RETRY_ROUND_MIN_MS = 10_000;
/** How often the certificate of certDir is read again: cert-manager rotates it in place. */
const CERT_RELOAD_MS = 60_000;
const METRICS_PATH = "/metrics";

/**
 * /metrics over HTTPS for authenticated and authorized scrapers only (./secure-serving.ts). Without certDir the
 * certificate is self-signed, made at start.
 */
export interface SecureMetricsOptions {
  certDir?: string;
  certName?: string;
  keyName?: string;
  /** The review calls; default: the manager's client. */
  authorizer?: ReviewAuthorizer;
}

export interface ManagerOptions {
  client: KubeClient;
  logger?: Logger;
  metrics?: Metrics;
  /** host:port, ":8080", or "0" to disable. */
  metricsBindAddress?: string;
  /** Serve /metrics over HTTPS with authentication and authorization; plain HTTP when absent. */
  secureMetrics?: SecureMetricsOptions;
  healthProbeBindAddress?: string;
  leaderElection?: { namespace: string; name: string; identity?: string };
  gracefulShutdownTimeoutMs?: number;
}

export class Manager {
  readonly client: KubeClient;
  readonly metrics: Metrics;
  readonly log: Logger;
  private readonly options: ManagerOptions;
  private readonly informers: Informer<KubeObject>[] = [];
  private readonly controllers: Controller[] = [];
  private readonly servers: (Http.Server | Https.Server)[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly readyChecks: (() => boolean)[] = [];
  private elector: LeaderElector | undefined;
  private stopping: Promise<void> | undefined;
  private probing: Promise<void> | undefined;
  private lastRetryRound = 0;
  private stopped!: () => void;
  private readonly done = new Promise<void>((resolve) => (this.stopped = resolve));
  /** Set when leadership was lost: the process must exit non-zero, as controller-runtime does. */
  lostLeadership = false;
  /** Addresses actually bound (useful with port 0). */
  readonly addresses: { metrics?: string; health?: string } = {};

  constructor(options: ManagerOptions) {
    this.options = options;
    this.client = options.client;
    this.log = options.logger ?? silentLogger;
    this.metrics = options.metrics ?? new Metrics();
    this.client.onRequest((verb, resource, code, retry) => {
      this.metrics.restClientRequests.inc({ method: verb, resource, code: String(code) });
      if (retry) this.metrics.restClientRetries.inc({ method: verb, resource, code: String(code) });
    });
  }

  addInformer<T extends KubeObject>(informer: Informer<T>): Informer<T> {
    this.informers.push(informer as unknown as Informer<KubeObject>);
    informer.onFailure((err) => {
      if (isUnavailable(err)) this.watchForServer();
    });
    return informer;
  }

  /**
   * After a list or watch fails, the API server is asked every second whether it is back (GET /version, which every
   * authenticated user may read); when it answers, every informer retries at once and every controller retries what
   * failed meanwhile. Without this, the work waits out backoffs that grew while nothing could succeed (the
   * reflector's up to a minute, the workqueue's far longer).
   */
  private watchForServer(): void {
    // At most one round of retries per interval: a failure the server's return can't cure must not spin.
    if (this.probing || this.stopping || Date.now() - this.lastRetryRound < SERVER_RETRY_ROUND_MIN_MS) return;
    this.probing = (async () => {
      for (let attempt = 0; !this.stopping; attempt++) {
        try {
          await this.client.request("GET", "/version");
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, SERVER_PROBE_INTERVAL_MS));
        }
      }
      this.probing = undefined;
      if (this.stopping) return;
      this.lastRetryRound = Date.now();
      this.log.info("the API server answers: retrying lists, watches and failed reconciles now");
      for (const informer of this.informers) informer.retryNow();
      for (const controller of this.controllers) controller.retryNow();
    })();
  }

  addController(controller: Controller): void {
    this.controllers.push(controller);
  }

  addReadyCheck(check: () => boolean): void {
    this.readyChecks.push(check);
  }

  ready(): boolean {
    return this.informers.every((i) => i.hasSynced()) && this.readyChecks.every((c) => c());
  }

  /** Starts everything and resolves once the manager has stopped (after a signal or stop()). */
  async run(signals: NodeJS.Signals[] = ["SIGTERM", "SIGINT"]): Promise<void> {
    const onSignal = (signal: NodeJS.Signals) => {
      this.log.info("signal received, shutting down", { signal });
      void this.stop();
    };
    for (const s of signals) process.once(s, onSignal);
    try {
      await this.startServers();
      for (const informer of this.informers) informer.start();
      const le = this.options.leaderElection;
      if (le) {
        this.metrics.leaderElectionStatus.set({ name: le.name }, 0);
        this.elector = new LeaderElector({
          client: this.client,
          namespace: le.namespace,
          name: le.name,
          identity: le.identity ?? `${os.hostname()}_${process.pid}`,
          logger: this.log,
          onStartedLeading: () => {
            this.log.info("became leader", { lease: `${le.namespace}/${le.name}` });
            this.metrics.leaderElectionStatus.set({ name: le.name }, 1);
            this.startControllers();
          },
          onStoppedLeading: () => {
            this.metrics.leaderElectionStatus.set({ name: le.name }, 0);
            if (this.stopping) return;
            this.log.error("leader election lost");
            this.lostLeadership = true;
            void this.stop();
          },
        });
        void this.elector.run().catch((err: unknown) => {
          this.log.error("leader election failed", { error: errorMessage(err) });
          this.lostLeadership = true;
          void this.stop();
        });
      } else {
        this.startControllers();
      }
      await this.done;
    } finally {
      for (const s of signals) process.removeListener(s, onSignal);
    }
  }

  private startControllers(): void {
    for (const controller of this.controllers) {
      void controller.start().catch((err: unknown) => {
        this.log.error("controller failed to start", { controller: controller.name, error: errorMessage(err) });
      });
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const timeout = this.options.gracefulShutdownTimeoutMs ?? 30_000;
      await Promise.all(this.controllers.map((c) => c.shutdown(timeout)));
      try {
        await this.elector?.release();
      } catch (err) {
        this.log.warn("could not release the leader lease", { error: errorMessage(err) });
      }
      await Promise.all(this.informers.map((i) => i.stop()));
      for (const timer of this.timers) clearInterval(timer);
      await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      this.log.info("stopped");
      this.stopped();
    })();
    return this.stopping;
  }

  private async startServers(): Promise<void> {
    const { metricsBindAddress = ":8080", healthProbeBindAddress = ":8081" } = this.options;
    if (metricsBindAddress !== "0") {
      const secure = this.options.secureMetrics;
      const authorizer = secure ? (secure.authorizer ?? new ReviewAuthorizer(this.client)) : undefined;
      const serve = async (req: Http.IncomingMessage, res: Http.ServerResponse) => {
        if (req.url?.split("?")[0] !== METRICS_PATH) return notFound(res);
        if (authorizer) {
          const decision = await authorizer.decide(req.headers.authorization, "get", METRICS_PATH);
          if (decision.code !== 200) {
            if (decision.code === 500)
              this.log.warn("could not authorize a /metrics request", { error: decision.message });
            return text(res, decision.code, decision.message);
          }
        }
        res.writeHead(200, { "content-type": this.metrics.registry.contentType });
        res.end(await this.metrics.registry.metrics());
      };
      this.addresses.metrics = await this.listen(metricsBindAddress, serve, secure && this.tls(secure));
    }
    if (healthProbeBindAddress !== "0") {
      this.addresses.health = await this.listen(healthProbeBindAddress, (req, res) => {
        const route = req.url?.split("?")[0];
        if (route === "/healthz") return text(res, 200, "ok");
        if (route === "/readyz") return this.ready() ? text(res, 200, "ok") : text(res, 503, "caches not synced");
        notFound(res);
      });
    }
  }

  /** The certificate of certDir (read again every minute, so a rotated one is served), else a self-signed one. */
  private tls(options: SecureMetricsOptions): { material: TlsMaterial; reload?: () => TlsMaterial } {
    const { certDir } = options;
    if (!certDir) {
      this.log.info("serving /metrics with a self-signed certificate, as no certificate directory was given");
      return { material: selfSignedTlsMaterial() };
    }
    const reload = () => readTlsMaterial(certDir, options.certName, options.keyName);
    return { material: reload(), reload };
  }

  private listen(
    address: string,
    handler: (req: Http.IncomingMessage, res: Http.ServerResponse) => void | Promise<void>,
    tls?: { material: TlsMaterial; reload?: () => TlsMaterial },
  ): Promise<string> {
    const { host, port } = parseBindAddress(address);
    const handle = (req: Http.IncomingMessage, res: Http.ServerResponse) => {
      Promise.resolve(handler(req, res)).catch((err: unknown) => text(res, 500, errorMessage(err)));
    };
    const server = tls
      ? https.createServer({ ...tls.material, minVersion: "TLSv1.2" }, handle)
      : http.createServer(handle);
    if (tls?.reload && server instanceof https.Server) {
      const { reload } = tls;
      let current = tls.material;
      const timer = setInterval(() => {
        try {
          const next = reload();
          if (next.cert === current.cert && next.key === current.key) return;
          server.setSecureContext({ ...next, minVersion: "TLSv1.2" });
          current = next;
          this.log.info("serving the rotated /metrics certificate");
        } catch (err) {
          this.log.warn("could not read the rotated /metrics certificate; serving the previous one", {
            error: errorMessage(err),
          });
        }
      }, CERT_RELOAD_MS);
      timer.unref();
      this.timers.push(timer);
    }
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        const bound = server.address();
        resolve(typeof bound === "object" && bound ? `${bound.address}:${bound.port}` : address);
      });
    });
  }
}

/** kubebuilder's bind address forms: ":8080", "127.0.0.1:8080", "[::1]:8080". */
export function parseBindAddress(address: string): { host: string | undefined; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address);
  if (!match) throw new Error(`invalid bind address "${address}": use host:port, :port or 0`);
  const host = match[1] ?? match[2];
  return { host: host ? host : undefined, port: Number(match[3]) };
}

function text(res: Http.ServerResponse, code: number, body: string): void {
  res.writeHead(code, { "content-type": "text/plain" });
  res.end(body);
}

function notFound(res: Http.ServerResponse): void {
  text(res, 404, "not found");
}
