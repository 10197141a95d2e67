// Why the operator makes a write before each batch of cutovers: kube-proxy (nftables and iptables modes) syncs its
// rules at once when it has not synced for its min-sync-period (1 s by default), and otherwise at most once per
// period, merging what changed meanwhile; a Service that ends where it started is no change at all. The first write
// of a cutover, to ExternalName, reaching an idle kube-proxy was synced alone: the ClusterIP the Service keeps lost
// its rule (kube-proxy skips ExternalName Services) until the second write was synced a period later, and IPv6
// clients of a Service that was dual-stack saw a second of timeouts (docs/reliability.md, "Traffic on a real data
// plane"). So the operator first changes a Service of its own that nobody uses: every kube-proxy syncs that at
// once, and the cutovers' two writes, made within the next period, are merged into one sync that leaves the kept
// address's rule in place. Measured on a real kube-proxy: 221-251 failed IPv6 requests unpaced, 0 paced.
import { isAlreadyExists, isNotFound, SERVICES, type KubeClient } from "../runtime/client.js";
import type { Clock } from "../runtime/clock.js";
import { errorMessage, type Logger } from "../runtime/log.js";
import { FIELD_MANAGER, MANAGED_BY_LABEL, OPERATOR_NAME } from "../api/migrationplan.js";
import type { Service } from "../migration/families.js";
import type { Informer } from "../runtime/informer.js";

/** The Service the operator changes to make kube-proxy sync: no selector, no endpoints, no clients. */
export const PACER_SERVICE = "kube-proxy-pacer";

/**
 * kube-proxy's default --min-sync-period. A batch's cutovers should start within half a period of the pacer's sync;
 * before the next pacer write kube-proxy must have been idle for a period again, or that write would be deferred.
 */
export const KUBE_PROXY_MIN_SYNC_MS = 1000;

export interface PacerOptions {
  /** The operator's own namespace, where the pacer Service lives. */
  namespace: string;
  /** How long after the pacer write the cutovers start: time for every kube-proxy to see it and sync. */
  leadMs: number;
}

export class KubeProxyPacer {
  /** When this process last made a write kube-proxy acts on (a Service write), to know when it is idle again. */
  private lastChange = 0;
  private warned = false;
  /** When the last pacer write's lead time ended. */
  private pacedAt = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly services: Informer<Service>,
    private readonly options: PacerOptions,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /**
   * Whether cutovers started now still land in the sync period the last pacer write opened: within half a period
   * of the end of its lead time.
   */
  fresh(): boolean {
    return this.pacedAt > 0 && this.clock.now() - this.pacedAt <= KUBE_PROXY_MIN_SYNC_MS / 2;
  }

  /** Called after every Service write of this process. */
  changed(): void {
    this.lastChange = this.clock.now();
  }

  /**
   * Waits until kube-proxy has had a full period without this process's changes, changes the pacer Service, and
   * waits for every kube-proxy to have synced it. The cutovers that follow should finish within a period.
   */
  async pace(signal: AbortSignal): Promise<void> {
    const idleAt = this.lastChange + 2 * KUBE_PROXY_MIN_SYNC_MS;
    await this.sleep(idleAt - this.clock.now(), signal);
    try {
      await this.toggle();
    } catch (err) {
      // Pacing spares clients a second of timeouts; it must never hold a migration back (no namespace, no RBAC).
      if (!this.warned) this.log.warn("cutovers are not paced", { error: errorMessage(err), ...this.options });
      this.warned = true;
      // Marked as paced all the same, so the cutovers go on (unpaced) rather than wait for a pacer that can't be.
      this.pacedAt = this.clock.now();
      return;
    }
    this.changed();
    await this.sleep(this.options.leadMs, signal);
    this.pacedAt = this.clock.now();
  }

  /** Moves the pacer's port between 1 and 2 (kube-proxy ignores metadata), making the Service when absent. */
  private async toggle(): Promise<void> {
    const { namespace } = this.options;
    const cached = this.services.store.get(`${namespace}/${PACER_SERVICE}`);
    const port = cached?.spec.ports?.[0]?.port === 1 ? 2 : 1;
    const spec = { ports: [{ name: "pace", protocol: "TCP", port }] };
    try {
      await this.client.patch(SERVICES, namespace, PACER_SERVICE, { spec }, "merge", { fieldManager: FIELD_MANAGER });
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.log.info("creating the Service that paces kube-proxy before cutovers", { namespace, name: PACER_SERVICE });
    try {
      await this.client.create(
        SERVICES,
        namespace,
        {
          metadata: { name: PACER_SERVICE, labels: { [MANAGED_BY_LABEL]: OPERATOR_NAME } },
          // Both families, so that the IPv4 and the IPv6 proxier of a dual-stack kube-proxy both sync.
          spec: { ipFamilyPolicy: "PreferDualStack", ...spec },
        },
        { fieldManager: FIELD_MANAGER },
      );
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (ms <= 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(resolve, ms);
      signal.addEventListener(
        "abort",
        () => {
          this.clock.clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }
}
