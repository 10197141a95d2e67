// `ipv6-migrate audit`: a one-shot, read-only report of where each Service stands and what a plan would do
// with it. It reads with paginated LISTs and writes nothing (its dry-run probe, where ServiceCIDR is not
// served, persists nothing either).
import { dumpYaml } from "@kubernetes/client-node";
import type { KubeClient } from "../runtime/client.js";
import type { MigrationPlan } from "../api/migrationplan.js";
import { familyState, shapeOf, type Service } from "../migration/families.js";
import { settingsOf } from "../migration/plan.js";
import { preflightStatus, type Finding } from "../migration/preflight.js";
import type { Decision } from "../migration/service.js";
import { assess, preflightSubjects, selectServices, snapshotFindings } from "../migration/snapshot.js";
import type { Capability } from "../reconciler/precondition.js";
import { scanPreflight } from "../reconciler/preflight.js";
import { ipv6ServiceRange, listSnapshot } from "../reconciler/snapshot.js";
import { table } from "./table.js";
import { compareStrings } from "../runtime/object.js";

export interface AuditOptions {
  namespaces: string[];
  excludeNamespaces: string[];
  /** Label selector over Services, e.g. "app=web" or "tier in (front)". */
  selector?: string;
}

export interface AuditedService {
  namespace: string;
  name: string;
  type: string;
  shape: string;
  state: string;
  ipFamilies: string[];
  ipFamilyPolicy: string;
  clusterIPs: string[];
  /** What a plan with targetPhase IPv6Only would do: move, none, skip or block, with the reason. */
  ipv6Only: { action: string; reason?: string; message?: string };
}

export interface AuditReport {
  cluster: { server: string; ipv6ServiceRange: Capability };
  summary: { services: number; ipv4Only: number; dualStack: number; ipv6Only: number; noClusterIP: number };
  services: AuditedService[];
  /** The dependency audit the operator makes before IPv6-only (the same findings as in a plan's status). */
  preflight: { counts: Record<string, number>; findings: Finding[] };
}

/** Label selector strings as kubectl takes them, into a LabelSelector (equality and set-based forms). */
export function parseLabelSelector(selector: string | undefined): MigrationPlan["spec"]["selector"] {
  if (!selector) return undefined;
  const matchLabels: Record<string, string> = {};
  const matchExpressions: { key: string; operator: "In" | "NotIn" | "Exists" | "DoesNotExist"; values?: string[] }[] =
    [];
  for (const part of selector.match(/([^,(]+(\([^)]*\))?)/g) ?? []) {
    const term = part.trim();
    let m: RegExpExecArray | null;
    if ((m = /^([\w./-]+)\s*(==|=)\s*([\w.-]*)$/.exec(term))) matchLabels[m[1]] = m[3]!;
    else if ((m = /^([\w./-]+)\s*!=\s*([\w.-]*)$/.exec(term)))
      matchExpressions.push({ key: m[1], operator: "NotIn", values: [m[2]] });
    else if ((m = /^([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term)))
      matchExpressions.push({
        key: m[1],
        operator: m[2] === "in" ? "In" : "NotIn",
        values: m[3].split(",").map((v) => v.trim()),
      });
    else if ((m = /^!([\w./-]+)$/.exec(term))) matchExpressions.push({ key: m[1], operator: "DoesNotExist" });
    else if ((m = /^([\w./-]+)$/.exec(term))) matchExpressions.push({ key: m[1], operator: "Exists" });
    else throw new Error(`--selector: cannot parse "${term}" (use key=value, key!=value, key in (a,b), key, !key)`);
  }
  return { serviceSelector: { matchLabels, matchExpressions } };
}

export async function audit(client: KubeClient, options: AuditOptions): Promise<AuditReport> {
  // What a plan with targetPhase IPv6Only over the chosen Services would do, judged alone (no other plan).
  const plan: MigrationPlan = {
    metadata: { name: "audit", generation: 1 },
    spec: {
      targetPhase: "IPv6Only",
      selector: {
        ...parseLabelSelector(options.selector),
        namespaces: options.namespaces,
        excludeNamespaces: options.excludeNamespaces,
      },
    },
  };
  const snapshot = await listSnapshot(client, [plan]);
  const selection = selectServices(plan, snapshot);
  const subjects = preflightSubjects(selection, snapshot);
  const findings = [
    ...snapshotFindings(snapshot, subjects, settingsOf(plan)),
    ...(await scanPreflight(client, snapshot, subjects)).findings,
  ];
  const { decisions } = assess(selection, snapshot, settingsOf(plan), findings);
  const services = decisions.map(({ svc, decision }) => audited(svc, decision));
  services.sort((a, b) => compareStrings(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`));
  const count = (state: string) => services.filter((s) => s.state === state).length;
  return {
    cluster: {
      server: client.kubeConfig.getCurrentCluster()?.server ?? "",
      ipv6ServiceRange: await ipv6ServiceRange(client, snapshot),
    },
    summary: {
      services: services.length,
      ipv4Only: count("ipv4-only"),
      dualStack: count("dual-stack"),
      ipv6Only: count("ipv6-only"),
      noClusterIP: count("no-cluster-ip"),
    },
    services,
    preflight: { counts: preflightStatus(findings).counts, findings },
  };
}

function audited(svc: Service, decision: Decision): AuditedService {
  const ipv6Only =
    decision.action === "skip" || decision.action === "block"
      ? { action: decision.action, reason: decision.reason, message: decision.message }
      : decision.action === "cutover" || decision.action === "patch"
        ? { action: decision.action, message: decision.description }
        : { action: decision.action };
  return {
    namespace: svc.metadata.namespace ?? "",
    name: svc.metadata.name,
    type: svc.spec.type ?? "ClusterIP",
    shape: shapeOf(svc),
    state: familyState(svc.spec),
    ipFamilies: svc.spec.ipFamilies ?? [],
    ipFamilyPolicy: svc.spec.ipFamilyPolicy ?? "",
    clusterIPs: svc.spec.clusterIPs ?? [],
    ipv6Only,
  };
}

export function formatAudit(report: AuditReport, output: "table" | "json" | "yaml"): string {
  if (output === "json") return JSON.stringify(report, null, 2);
  if (output === "yaml") return dumpYaml(report);
  const rows = report.services.map((s) => [
    s.namespace,
    s.name,
    s.shape,
    s.state,
    s.clusterIPs.join(",") || "-",
    s.ipv6Only.reason ? `${s.ipv6Only.action}: ${s.ipv6Only.reason}` : s.ipv6Only.action,
  ]);
  const range = report.cluster.ipv6ServiceRange;
  const s = report.summary;
  return [
    `Cluster ${report.cluster.server}: ${range.status ? "ready for IPv6 Services" : "NOT ready for IPv6 Services"}: ${range.message}`,
    "",
    table(["NAMESPACE", "NAME", "SHAPE", "STATE", "CLUSTER-IPS", "TO IPV6-ONLY"], rows),
    "",
    `${s.services} Services: ${s.ipv4Only} IPv4-only, ${s.dualStack} dual-stack, ${s.ipv6Only} IPv6-only, ${s.noClusterIP} without a ClusterIP`,
    "",
    "Preflight (what else would break when these Services go IPv6-only):",
    report.preflight.findings.length === 0
      ? "  no finding"
      : table(
          ["SEVERITY", "KIND", "OBJECT", "MESSAGE"],
          report.preflight.findings.map((f) => [f.severity, f.kind, f.object, f.message]),
        ),
  ].join("\n");
}
