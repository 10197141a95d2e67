// Prometheus metrics under controller-runtime's and client-go's names, so existing dashboards and alerts work.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { WorkQueueMetrics } from "./workqueue.js";

export class Metrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: "controller_runtime_reconcile_total",
    help: "Total number of reconciliations per controller",
    labelNames: ["controller", "result"] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: "controller_runtime_reconcile_errors_total",
    help: "Total number of reconciliation errors per controller",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: "controller_runtime_reconcile_time_seconds",
    help: "Length of time per reconciliation per controller",
    labelNames: ["controller"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly workqueueDepth = new Gauge({
    name: "workqueue_depth",
    help: "Current depth of workqueue",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });
  readonly workqueueAdds = new Counter({
    name: "workqueue_adds_total",
    help: "Total number of adds handled by workqueue",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });
  readonly workqueueQueueDuration = new Histogram({
    name: "workqueue_queue_duration_seconds",
    help: "How long in seconds an item stays in workqueue before being requested",
    labelNames: ["name", "controller"] as const,
    buckets: [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 0.001, 0.01, 0.1, 1, 10, 100, 1000],
    registers: [this.registry],
  });
  readonly workqueueWorkDuration = new Histogram({
    name: "workqueue_work_duration_seconds",
    help: "How long in seconds processing an item from workqueue takes",
    labelNames: ["name", "controller"] as const,
    buckets: [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 0.001, 0.01, 0.1, 1, 10, 100, 1000],
    registers: [this.registry],
  });
  readonly workqueueRetries = new Counter({
    name: "workqueue_retries_total",
    help: "Total number of retries handled by workqueue",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });
  readonly leaderElectionStatus = new Gauge({
    name: "leader_election_master_status",
    help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master",
    labelNames: ["name"] as const,
    registers: [this.registry],
  });
  readonly restClientRequests = new Counter({
    name: "rest_client_requests_total",
    help: "Number of HTTP requests, partitioned by status code, method, and resource",
    labelNames: ["code", "method", "resource"] as const,
    registers: [this.registry],
  });

  /** client-go's rest_client_request_retries_total: answers (429, or 5xx with Retry-After) sent again. */
  readonly restClientRetries = new Counter({
    name: "rest_client_request_retries_total",
    help: "Number of request retries, partitioned by status code, method, and resource",
    labelNames: ["code", "method", "resource"] as const,
    registers: [this.registry],
  });

  /** Events by what became of them: an Event is a request of its own, so how many were written is worth a look. */
  readonly events = new Counter({
    name: "events_recorded_total",
    help: "Number of Events recorded, partitioned by result: written, dropped (spam filter or queue), failed",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });

  /** Status writes, per object kind: a controller should write a status on change only, and at a bounded rate. */
  readonly statusWrites = new Counter({
    name: "status_writes_total",
    help: "Number of status subresource writes, partitioned by kind",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  workqueue(name: string): WorkQueueMetrics {
    const labels = { name, controller: name };
    return {
      add: () => this.workqueueAdds.inc(labels),
      depth: (n) => this.workqueueDepth.set(labels, n),
      queueLatency: (s) => this.workqueueQueueDuration.observe(labels, s),
      workDuration: (s) => this.workqueueWorkDuration.observe(labels, s),
      retry: () => this.workqueueRetries.inc(labels),
    };
  }
}
