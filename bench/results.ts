// The shape of bench/results.json, shared by the runner and the report.
import type { RequestCounts } from "./lib.js";

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  node: string;
  go: string;
  kubernetes: string;
  etcd: string;
  clientNode: string;
  clientGo: string;
}

export interface AuditPoint {
  services: number;
  /** Operator as shipped (no outside flags): spawn of `ipv6-migrate operator` to the plan's Audited condition. */
  operatorMs: number[];
  /** The same with config/manager's env (NODE_OPTIONS, MALLOC_ARENA_MAX): time, RSS and heap, 3 s after Audited. */
  deploymentMs: number[];
  deploymentRssBytes: number[];
  deploymentHeapUsedBytes: number[];
  /** Of those, spawn to the operator's "caches synced" log line (its LISTs done). */
  operatorCachesSyncedMs: number[];
  /** And spawn to the end of its first preflight scan of Pods and ConfigMaps ("preflight scan" log line). */
  operatorScanDoneMs: number[];
  /** Floor: spawn of a client-node process to its last page of listServiceForAllNamespaces (limit 500). */
  baselineMs: number[];
  /** Of those, the paginated LIST alone, inside that process. */
  baselineListMs: number[];
  /** CPU time (user + system) of each process over those runs. */
  operatorCpuMs: number[];
  baselineCpuMs: number[];
  /** Reference: spawn of client-go's informer-baseline to its cache's HasSynced. */
  clientGoSyncMs: number[];
  operatorMedianMs: number;
  baselineMedianMs: number;
  clientGoSyncMedianMs: number;
  ratio: number;
  /** Memory at this size, 3 s after Audited / after sync. */
  operatorRssBytes: number[];
  operatorHeapUsedBytes: number[];
  clientGoRssBytes: number[];
  clientGoHeapInuseBytes: number[];
  clientGoLiveHeapBytes: number[];
  /** The list floor's RSS: right after loading client-node, and holding every Service it read. */
  nodeClientRssAfterImportBytes: number[];
  baselineRssBytes: number[];
}

export interface RolloutRep {
  operatorMs: number;
  /** The same number of merge PATCHes, raw, at the operator's write concurrency, on a cluster of its own. */
  baselineMs: number;
  /** The same PATCHes through KubeClient, the operator's own client (in the first run at the first size only). */
  kubeClientMs?: number;
  /** CPU time of the operator process from promotion to DualStackComplete. */
  operatorCpuMs: number;
  /** CPU time of kube-apiserver + etcd over the operator's rollout and over each floor (each on its own cluster). */
  serverCpuMs: { operator: number; baseline: number; kubeClient?: number };
  batches: number;
  /** The operator's own batch, from status.currentBatch (start to finish of its writes). */
  batchMs: number;
  /** Operator writes from the audit log (user "operator"), promotion to DualStackComplete + tail. */
  rolloutWrites: RequestCounts;
  /** The same window as kube-apiserver's apiserver_request_total counts it (every client; ours taken out). */
  rolloutWritesMetrics: RequestCounts;
  /** When each plan status write of the window was received, in ms after the promotion. */
  statusWriteAtMs: number[];
  /** The operator's own count of Events (events_recorded_total{result}) and status writes at the end. */
  operatorEvents: Record<string, number>;
  /** After the rollout (+ 5 s tail + 3 s): the operator's RSS and heap, and client-go's informer's on the same cluster. */
  operatorRssBytes: number;
  operatorHeapUsedBytes: number;
  clientGoRssBytes: number;
  /** The minute (or so) after the rollout, in the runs that wait for it. */
  steady?: {
    windowS: number;
    writes: RequestCounts;
    writesMetrics: RequestCounts;
    /** Reconciles the operator made in the window (its controller_runtime_reconcile_total). */
    reconciles: number;
  };
  /** controller_runtime_reconcile_total of the operator when it was stopped. */
  reconciles: number;
  migrated: number;
}

export interface PerService {
  servicePatches: number;
  serviceDryRunPatches: number;
  events: number;
  planStatus: number;
  other: number;
  total: number;
}

export interface RolloutSize {
  services: number;
  namespaces: number;
  concurrency: number;
  reps: RolloutRep[];
  operatorMedianMs: number;
  baselineMedianMs: number;
  ratio: number;
  /** Medians over the reps, per migrated Service, from the audit log. */
  perService: PerService;
  /** Plan status writes in the rollout window: in all, per second of the rollout, and the most in any 1 s. */
  statusWrites: { count: number; perSecond: number; maxInOneSecond: number };
  /** Medians over the reps: the operator as shipped after the rollout, and client-go's informer after it. */
  memory: { operatorRssBytes: number; operatorHeapUsedBytes: number; clientGoRssBytes: number; ratio: number };
}

export interface Results {
  generatedAt: string;
  durationS: number;
  machine: Machine;
  reps: number;
  audit: {
    namespaces: number;
    points: AuditPoint[];
    /** Creating the Services of each step (16 in flight), as context for the server's cost per Service. */
    creates: { from: number; to: number; ms: number }[];
  };
  rollouts: RolloutSize[];
  /** Raw merge PATCHes of N Services, fresh cluster each, at each number in flight: where more stops helping. */
  concurrencySweep: { services: number; points: { concurrency: number; ms: number }[] };
  writes: {
    /** Over every steady window, per minute. */
    steadyPerMinute: {
      windowS: number;
      serviceAndPlan: number;
      events: number;
      other: number;
      total: number;
      /** Writes kube-apiserver makes itself in that window (its identity Lease and the like), for context. */
      apiserverOwn: number;
    };
  };
  /** At the largest audit size that is not above 10,000: the operator with the Deployment's env against client-go. */
  memory: {
    services: number;
    operatorRssMedianBytes: number;
    clientGoRssMedianBytes: number;
    operatorHeapUsedMedianBytes: number;
    clientGoHeapInuseMedianBytes: number;
    ratio: number;
    /** `node -e` alone, for what of the operator's RSS is Node's own. */
    bareNodeRssBytes: number;
  };
}
