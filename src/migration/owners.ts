// Who would undo a move: the tools and controllers that apply a Service again after the plan changed it (a Helm
// upgrade, an Argo CD or Flux sync, an operator that owns the Service, any writer that owns its family fields).
// Found before moving, from the Service's own metadata, so the person running the plan can change the source
// first; each finding names the manager and what to change there. Pure functions over trimmed Services.
import {
  ARGOCD_TRACKING_ANNOTATION,
  FIELD_MANAGER,
  FLUX_HELMRELEASE_LABELS,
  FLUX_KUSTOMIZATION_LABELS,
  HELM_MANAGED_BY,
  HELM_RELEASE_NAME_ANNOTATION,
  HELM_RELEASE_NAMESPACE_ANNOTATION,
  INSTANCE_LABEL,
  MANAGED_BY_LABEL,
  FINDING_REASONS,
} from "../api/migrationplan.js";
import type { ManagedFieldsEntry, OwnerReference } from "../runtime/object.js";
import type { Service } from "./families.js";
import type { Finding, SelectedService } from "./preflight.js";
import type { PlanSettings } from "./service.js";

/** The family fields whose owners would put a Service back; managedFields names them so. */
export const FAMILY_FIELDS = ["ipFamilyPolicy", "ipFamilies"] as const;

export interface Managers {
  /** The controlling ownerReference. */
  controller?: Pick<OwnerReference, "apiVersion" | "kind" | "name">;
  /** A Helm release (from its annotations), or a chart rendered by another tool (the label alone). */
  helm?: { release?: string; namespace?: string };
  argoCD?: { application: string; via: string };
  flux: { kind: "Kustomization" | "HelmRelease"; namespace: string; name: string }[];
  /** Field managers other than this operator that own spec.ipFamilyPolicy or spec.ipFamilies. */
  fieldManagers: { manager: string; operation: string; fields: string[] }[];
}

export function controllerOf(svc: Service): OwnerReference | undefined {
  return svc.metadata.ownerReferences?.find((o) => o.controller === true);
}

const FLUX_LABELS = [
  ["Kustomization", FLUX_KUSTOMIZATION_LABELS],
  ["HelmRelease", FLUX_HELMRELEASE_LABELS],
] as const;

/** Who manages a Service, read from its labels, annotations, ownerReferences and managedFields. */
export function managersOf(svc: Service): Managers {
  const labels = svc.metadata.labels ?? {};
  const annotations = svc.metadata.annotations ?? {};
  const namespace = svc.metadata.namespace ?? "";
  const flux: Managers["flux"] = [];
  for (const [kind, keys] of FLUX_LABELS) {
    const name = labels[keys.name];
    if (name) flux.push({ kind, namespace: labels[keys.namespace] ?? namespace, name });
  }
  const release = annotations[HELM_RELEASE_NAME_ANNOTATION];
  // Charts label their objects with app.kubernetes.io/instance too, so that label counts as Argo CD's only on a
  // Service no Helm release installed; the tracking annotation is Argo CD's own.
  const tracking = annotations[ARGOCD_TRACKING_ANNOTATION];
  const instance = release ? undefined : labels[INSTANCE_LABEL];
  const argoCD = tracking
    ? { application: tracking.split(":")[0] ?? tracking, via: `annotation ${ARGOCD_TRACKING_ANNOTATION}` }
    : instance
      ? { application: instance, via: `label ${INSTANCE_LABEL}` }
      : undefined;
  // A chart that Flux's helm-controller installs, or that Argo CD or Flux render, is changed where they keep its
  // values: their finding says so, and a Helm finding beside it would send the reader to `helm upgrade`.
  const helmLabel = labels[MANAGED_BY_LABEL] === HELM_MANAGED_BY;
  const renderedElsewhere = flux.length > 0 || (argoCD !== undefined && !release);
  const helm =
    (release || helmLabel) && !renderedElsewhere
      ? {
          ...(release ? { release } : {}),
          ...(release ? { namespace: annotations[HELM_RELEASE_NAMESPACE_ANNOTATION] ?? namespace } : {}),
        }
      : undefined;
  const controller = controllerOf(svc);
  return {
    ...(controller
      ? { controller: { apiVersion: controller.apiVersion, kind: controller.kind, name: controller.name } }
      : {}),
    ...(helm ? { helm } : {}),
    ...(argoCD ? { argoCD } : {}),
    flux,
    fieldManagers: familyFieldManagers(svc.metadata.managedFields),
  };
}

function familyFieldManagers(entries: ManagedFieldsEntry[] | undefined): Managers["fieldManagers"] {
  const out: Managers["fieldManagers"] = [];
  for (const entry of entries ?? []) {
    if (!entry.manager || entry.manager === FIELD_MANAGER) continue;
    const spec = entry.fieldsV1?.["f:spec"] as Record<string, unknown> | undefined;
    if (!spec) continue;
    const fields = FAMILY_FIELDS.filter((f) => `f:${f}` in spec).map((f) => `spec.${f}`);
    if (fields.length > 0) out.push({ manager: entry.manager, operation: entry.operation ?? "Update", fields });
  }
  return out;
}

export type OwnerSettings = Pick<PlanSettings, "target" | "dualStackPolicy" | "allowControllerOwned">;

/** What the plan makes of the family fields, as a manifest would say it: what to write in the source. */
export function wantedFamilies(settings: OwnerSettings): string {
  return settings.target === "IPv6Only"
    ? "ipFamilyPolicy: SingleStack and ipFamilies: [IPv6]"
    : `ipFamilyPolicy: ${settings.dualStackPolicy}`;
}

const FAMILY_FIELDS_TEXT = "spec.ipFamilyPolicy or spec.ipFamilies";

/** One finding per manager of each selected Service, naming it and what to change there. */
export function ownerFindings(services: SelectedService[], settings: OwnerSettings): Finding[] {
  const wanted = wantedFamilies(settings);
  const out: Finding[] = [];
  for (const svc of services) {
    const m = svc.managers;
    if (!m) continue;
    const base = { object: `Service/${svc.key}`, services: [svc.key] };
    if (m.controller) {
      const { kind, name, apiVersion } = m.controller;
      out.push({
        ...base,
        kind: "ManagedByController",
        severity: settings.allowControllerOwned ? "Warning" : "Blocking",
        reason: FINDING_REASONS.controllerOwned,
        message:
          `Service ${svc.key} is controlled by ${kind} ${name} (${apiVersion}), which may set its families back or ` +
          `delete and re-create it, also in the middle of a cutover: set ${wanted} in that ${kind}'s spec where it ` +
          `has a setting for its Service` +
          (settings.allowControllerOwned
            ? " (spec.ipv6Only.allowControllerOwned is true: the plan cuts it over anyway)"
            : ", or set spec.ipv6Only.allowControllerOwned: true to cut it over anyway"),
      });
    }
    if (m.helm) {
      const who = m.helm.release
        ? `belongs to Helm release ${m.helm.namespace ?? svc.namespace}/${m.helm.release}: \`helm upgrade\` and \`helm rollback\` apply what the chart renders again`
        : `is rendered from a Helm chart (label ${MANAGED_BY_LABEL}: ${HELM_MANAGED_BY}): the next install of the chart applies it again`;
      out.push({
        ...base,
        kind: "ManagedByHelm",
        severity: "Warning",
        reason: FINDING_REASONS.helmRelease,
        message: `Service ${svc.key} ${who}, so if its templates set ${FAMILY_FIELDS_TEXT}, set the chart values that render them (often service.ipFamilyPolicy and service.ipFamilies) to ${wanted}, or unset them`,
      });
    }
    if (m.argoCD) {
      out.push({
        ...base,
        kind: "ManagedByArgoCD",
        severity: "Warning",
        reason: FINDING_REASONS.argoCDApplication,
        message:
          `Service ${svc.key} is synced by Argo CD Application ${m.argoCD.application} (${m.argoCD.via}): each sync, ` +
          `and self-heal at once, applies its manifest again, so if the manifest sets ${FAMILY_FIELDS_TEXT}, change ` +
          `them in Git (or in the Helm values the Application renders) to ${wanted}, or list /spec/ipFamilyPolicy, ` +
          `/spec/ipFamilies and /spec/clusterIPs under the Application's ignoreDifferences with the sync option ` +
          `RespectIgnoreDifferences=true`,
      });
    }
    for (const flux of m.flux) {
      const source =
        flux.kind === "Kustomization"
          ? `is applied by Flux Kustomization ${flux.namespace}/${flux.name}: each reconciliation applies its manifest again (server-side apply), so if the manifest in the Kustomization's source sets ${FAMILY_FIELDS_TEXT}, change them there to ${wanted}`
          : `is installed by Flux HelmRelease ${flux.namespace}/${flux.name}: each upgrade renders the chart again, so if the chart sets ${FAMILY_FIELDS_TEXT}, set the values that render them in the HelmRelease's spec.values to ${wanted}`;
      out.push({
        ...base,
        kind: "ManagedByFlux",
        severity: "Warning",
        reason: flux.kind === "Kustomization" ? FINDING_REASONS.fluxKustomization : FINDING_REASONS.fluxHelmRelease,
        message: `Service ${svc.key} ${source}`,
      });
    }
    for (const f of m.fieldManagers) {
      const them = f.fields.length > 1 ? "them" : "it";
      const again =
        f.operation === "Apply"
          ? `its next server-side apply sets ${them} again`
          : `its next write of the Service may set ${them} again`;
      out.push({
        ...base,
        kind: "FamilyFieldManager",
        severity: "Warning",
        reason: FINDING_REASONS.familyFieldManager,
        message: `field manager ${f.manager} (operation ${f.operation}) owns ${f.fields.join(" and ")} of Service ${svc.key}: ${again}; change ${them} to ${wanted} in what ${f.manager} writes, or drop ${them} from it`,
      });
    }
  }
  return out;
}
