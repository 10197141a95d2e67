// What a Service is: its shape, its families and addresses, read from plain objects. Pure functions.
import ipaddr from "ipaddr.js";
import { StringInterner, type KubeObject, type ManagedFieldsEntry } from "../runtime/object.js";
import {
  ARGOCD_TRACKING_ANNOTATION,
  GROUP,
  HELM_RELEASE_NAME_ANNOTATION,
  HELM_RELEASE_NAMESPACE_ANNOTATION,
  SERVICE_STATES,
  STATE_LABEL,
  type FamilyState,
  type ServiceState,
  type TargetPhase,
} from "../api/migrationplan.js";

export type IPFamily = "IPv4" | "IPv6";
export type IPFamilyPolicy = "SingleStack" | "PreferDualStack" | "RequireDualStack";

export interface ServicePort {
  name?: string;
  protocol?: string;
  port: number;
  targetPort?: number | string;
  nodePort?: number;
  appProtocol?: string;
}

export interface ServiceSpec {
  type?: string;
  selector?: Record<string, string>;
  clusterIP?: string;
  clusterIPs?: string[];
  ipFamilies?: IPFamily[];
  ipFamilyPolicy?: IPFamilyPolicy;
  externalName?: string;
  ports?: ServicePort[];
  externalTrafficPolicy?: string;
  internalTrafficPolicy?: string;
  healthCheckNodePort?: number;
  allocateLoadBalancerNodePorts?: boolean;
  loadBalancerClass?: string;
  loadBalancerSourceRanges?: string[];
  loadBalancerIP?: string;
  externalIPs?: string[];
  sessionAffinity?: string;
  [field: string]: unknown;
}

/**
 * A Service as the cache holds it: metadata and spec; managedFields trimmed to the fields this operator writes,
 * ownerReferences to the controlling one.
 */
export interface Service extends KubeObject {
  spec: ServiceSpec;
}

export type Shape = "ClusterIP" | "NodePort" | "LoadBalancer" | "Headless" | "ExternalName" | "APIServer";

export function shapeOf(svc: Service): Shape {
  if (svc.metadata.namespace === "default" && svc.metadata.name === "kubernetes") return "APIServer";
  if (svc.spec.type === "ExternalName") return "ExternalName";
  if (svc.spec.clusterIP === "None") return "Headless";
  if (svc.spec.type === "NodePort" || svc.spec.type === "LoadBalancer") return svc.spec.type;
  return "ClusterIP";
}

export function hasSelector(svc: Service): boolean {
  return Object.keys(svc.spec.selector ?? {}).length > 0;
}

export function familyState(spec: ServiceSpec): FamilyState {
  if (spec.type === "ExternalName") return "no-cluster-ip";
  const families = spec.ipFamilies ?? [];
  if (families.length === 2) return "dual-stack";
  if (families[0] === "IPv6") return "ipv6-only";
  if (families[0] === "IPv4") return "ipv4-only";
  return "no-cluster-ip";
}

/**
 * The address of a family among clusterIPs. The apiserver pairs clusterIPs[i] with ipFamilies[i] (it refuses an
 * address of another family than the one at its index: ../shared/reference/service-api-facts.md), so the pairing
 * answers. Parsing every ClusterIP with ipaddr.js on every reconcile was, with 20,000 Services, the largest part
 * of a reconcile's CPU. A spec without the pairing (never one from the server) is parsed; never by looking for ':'.
 */
export function clusterIPOf(spec: ServiceSpec, family: IPFamily): string | undefined {
  const ips = spec.clusterIPs ?? [];
  const families = spec.ipFamilies ?? [];
  const ip =
    families.length >= ips.length
      ? ips[families.indexOf(family)]
      : ips.find((candidate) => candidate !== "None" && familyOfAddress(candidate) === family);
  return ip === "None" ? undefined : ip;
}

/** The family of an address, undefined when it is none. */
export function familyOfAddress(ip: string): IPFamily | undefined {
  return ipaddr.isValid(ip) ? familyOfIP(ip) : undefined;
}

export function familyOfIP(ip: string): IPFamily {
  return familyOfParsed(ipaddr.parse(ip), ip);
}

function familyOfParsed(parsed: ipaddr.IPv4 | ipaddr.IPv6, ip: string): IPFamily {
  // Kubernetes (Go's net.IP.To4) counts an IPv4-mapped address (::ffff:a.b.c.d) as IPv4. ipaddr.js also reads
  // the IPv4-compatible form ::a.b.c.d as mapped, which Go does not, hence the check on the text.
  if (parsed.kind() === "ipv4") return "IPv4";
  return (parsed as ipaddr.IPv6).isIPv4MappedAddress() && /ffff/i.test(ip) ? "IPv4" : "IPv6";
}

/** What the plan wants of one Service, from its original spec. */
export function desiredFamilies(target: TargetPhase, original: ServiceSpec): IPFamily[] {
  const families = original.ipFamilies ?? [];
  if (target === "Audit") return families;
  if (target === "IPv6Only") return ["IPv6"];
  // DualStack: add IPv6 beside IPv4; a Service already dual-stack or IPv6-only is left as it is.
  if (families.length === 1 && families[0] === "IPv4") return ["IPv4", "IPv6"];
  return families;
}

export function stateOfFamilies(families: readonly IPFamily[]): ServiceState {
  if (families.length === 2) return SERVICE_STATES.dualStack;
  return families[0] === "IPv6" ? SERVICE_STATES.ipv6Only : SERVICE_STATES.ipv4Only;
}

export function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return JSON.stringify(a ?? []) === JSON.stringify(b ?? []);
}

/** Reads a JSON annotation the operator wrote; an unreadable one reads as absent (and is rewritten). */
export function annotationJSON<T>(svc: Service, key: string): T | undefined {
  const raw = svc.metadata.annotations?.[key];
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    return undefined;
  }
}

/** A merge patch body: null deletes a field. */
export type MergePatch = Record<string, unknown>;

/** The spec fields of managedFields that tell who changed a family. */
const KEPT_MANAGED_FIELDS = ["f:ipFamilies", "f:ipFamilyPolicy", "f:clusterIPs", "f:type"] as const;
/**
 * The kept part of a managedFields entry's fieldsV1, one frozen object per combination of kept fields: thousands
 * of Services have the same few, and an object each was a third of a cached Service's bytes.
 */
const keptFieldsV1 = new Map<number, Record<string, unknown>>();
/** Managers, operations and the seconds of their writes repeat across Services; about 100 bytes a string. */
const managedFieldStrings = new StringInterner(4096);
/** The values of ipFamilies, shared and frozen (the server sends the same four everywhere). */
const FAMILY_LISTS = new Map<string, readonly IPFamily[]>(
  ([["IPv4"], ["IPv6"], ["IPv4", "IPv6"], ["IPv6", "IPv4"]] as IPFamily[][]).map((l) => [l.join(), Object.freeze(l)]),
);
const POLICIES = new Map<string, IPFamilyPolicy>(
  (["SingleStack", "PreferDualStack", "RequireDualStack"] as const).map((p) => [p, p]),
);
const STATES = new Map<string, string>(Object.values(SERVICE_STATES).map((v) => [v, v]));

/** The annotations read anywhere (the operator's own, and those naming a Service's manager). */
const READ_ANNOTATIONS = new Set([
  HELM_RELEASE_NAME_ANNOTATION,
  HELM_RELEASE_NAMESPACE_ANNOTATION,
  ARGOCD_TRACKING_ANNOTATION,
]);
const OPERATOR_ANNOTATION_PREFIX = `${GROUP}/`;

function keptAnnotations(annotations: Record<string, string> | undefined): Record<string, string> | undefined {
  let kept: Record<string, string> | undefined;
  for (const key in annotations) {
    if (key.startsWith(OPERATOR_ANNOTATION_PREFIX) || READ_ANNOTATIONS.has(key)) (kept ??= {})[key] = annotations[key]!;
  }
  return kept;
}

function keptFields(spec: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  let mask = 0;
  KEPT_MANAGED_FIELDS.forEach((f, i) => {
    if (spec?.[f]) mask |= 1 << i;
  });
  if (mask === 0) return undefined;
  let kept = keptFieldsV1.get(mask);
  if (!kept) {
    const fields = Object.fromEntries(
      KEPT_MANAGED_FIELDS.filter((_, i) => mask & (1 << i)).map((f) => [f, Object.freeze({})]),
    );
    kept = Object.freeze({ "f:spec": Object.freeze(fields) });
    keptFieldsV1.set(mask, kept);
  }
  return kept;
}

/**
 * The cache keeps, of managedFields, only the spec fields that tell who changed a family, and of the
 * ownerReferences only the controller's (who would re-create or revert the Service), of the annotations those
 * read (not, say, kubectl's last-applied-configuration, a copy of the whole manifest). What thousands of Services
 * repeat is shared rather than copied: the kept fieldsV1, managers and their times, ipFamilies, ipFamilyPolicy and
 * the state label's value; shared values are frozen, as nothing may change a cached object anyway.
 */
export function trimService(raw: KubeObject & { spec?: ServiceSpec }): Service {
  const m = raw.metadata;
  const controller = m.ownerReferences?.find((o) => o.controller === true);
  const spec = raw.spec ?? {};
  const families = spec.ipFamilies && FAMILY_LISTS.get(spec.ipFamilies.join());
  if (families) spec.ipFamilies = families as IPFamily[];
  const policy = spec.ipFamilyPolicy && POLICIES.get(spec.ipFamilyPolicy);
  if (policy) spec.ipFamilyPolicy = policy;
  const labels = m.labels;
  const state = labels?.[STATE_LABEL] !== undefined ? STATES.get(labels[STATE_LABEL]) : undefined;
  if (labels && state) labels[STATE_LABEL] = state;
  const annotations = keptAnnotations(m.annotations);
  const managedFields: ManagedFieldsEntry[] = [];
  for (const e of m.managedFields ?? []) {
    const fieldsV1 = keptFields(e.fieldsV1?.["f:spec"] as Record<string, unknown> | undefined);
    if (!fieldsV1) continue;
    managedFields.push({
      manager: managedFieldStrings.intern(e.manager),
      operation: managedFieldStrings.intern(e.operation),
      time: managedFieldStrings.intern(e.time),
      fieldsV1,
    });
  }
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      generation: m.generation,
      creationTimestamp: m.creationTimestamp,
      labels,
      ...(annotations ? { annotations } : {}),
      ...(controller
        ? {
            ownerReferences: [
              {
                apiVersion: controller.apiVersion,
                kind: controller.kind,
                name: controller.name,
                uid: controller.uid,
                controller: true,
              },
            ],
          }
        : {}),
      ...(m.managedFields ? { managedFields } : {}),
    },
    spec,
  };
}
