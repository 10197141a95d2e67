// Who would undo a move, as pure functions: the markers of Helm, Argo CD, Flux, a controlling owner and field
// managers on a Service, and the findings that name each and say what to change there.
import assert from "node:assert/strict";
import type { Service } from "../../src/migration/families.js";
import { managersOf, ownerFindings, type OwnerSettings } from "../../src/migration/owners.js";
import { blockingByService, selectedService, type Finding } from "../../src/migration/preflight.js";
import type { ManagedFieldsEntry, ObjectMeta } from "../../src/runtime/object.js";

const DUAL: OwnerSettings = { target: "DualStack", dualStackPolicy: "PreferDualStack", allowControllerOwned: false };
const V6ONLY: OwnerSettings = { ...DUAL, target: "IPv6Only" };

function svc(meta: Partial<ObjectMeta> = {}): Service {
  return {
    metadata: { name: "web", namespace: "shop", ...meta },
    spec: { selector: { app: "web" }, clusterIPs: ["10.96.0.10"], ipFamilies: ["IPv4"] },
  };
}

function entry(manager: string, operation: string, fields: string[]): ManagedFieldsEntry {
  return {
    manager,
    operation,
    fieldsV1: { "f:spec": Object.fromEntries(fields.map((f) => [`f:${f}`, {}])) },
  };
}

function findings(service: Service, settings: OwnerSettings = DUAL): Finding[] {
  return ownerFindings([selectedService(service, [])], settings);
}

const only = (list: Finding[]): Finding => {
  assert.equal(list.length, 1, JSON.stringify(list));
  return list[0];
};

describe("migration/owners: who would undo a move", () => {
  it("a Service no tool manages has no finding", () => {
    assert.deepEqual(findings(svc({ labels: { app: "web" } })), []);
  });

  it("Helm: the release from its annotations, with the chart values to change", () => {
    const f = only(
      findings(
        svc({
          labels: { "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "edge" },
          annotations: { "meta.helm.sh/release-name": "edge", "meta.helm.sh/release-namespace": "ingress" },
        }),
      ),
    );
    assert.equal(f.kind, "ManagedByHelm");
    assert.equal(f.severity, "Warning");
    assert.equal(f.object, "Service/shop/web");
    assert.match(f.message, /^Service shop\/web belongs to Helm release ingress\/edge: `helm upgrade`/);
    assert.match(f.message, /set the chart values that render them .* to ipFamilyPolicy: PreferDualStack/);
    // The instance label of a Helm release is the chart's, not Argo CD's.
    assert.equal(managersOf(svc({ annotations: { "meta.helm.sh/release-name": "edge" } })).argoCD, undefined);
  });

  it("Helm: the label alone names the chart, the release namespace defaults to the Service's", () => {
    assert.match(
      only(findings(svc({ labels: { "app.kubernetes.io/managed-by": "Helm" } }))).message,
      /rendered from a Helm chart \(label app.kubernetes.io\/managed-by: Helm\)/,
    );
    assert.deepEqual(managersOf(svc({ annotations: { "meta.helm.sh/release-name": "r" } })).helm, {
      release: "r",
      namespace: "shop",
    });
  });

  it("Argo CD: the Application from the tracking annotation, else from the instance label", () => {
    const tracked = only(
      findings(svc({ annotations: { "argocd.argoproj.io/tracking-id": "shop-app:/Service:shop/web" } }), V6ONLY),
    );
    assert.equal(tracked.kind, "ManagedByArgoCD");
    assert.match(
      tracked.message,
      /synced by Argo CD Application shop-app \(annotation argocd.argoproj.io\/tracking-id\)/,
    );
    assert.match(tracked.message, /to ipFamilyPolicy: SingleStack and ipFamilies: \[IPv6\]/);
    assert.match(tracked.message, /ignoreDifferences .* RespectIgnoreDifferences=true/);
    const labelled = only(findings(svc({ labels: { "app.kubernetes.io/instance": "guestbook" } })));
    assert.match(labelled.message, /Application guestbook \(label app.kubernetes.io\/instance\)/);
  });

  it("Argo CD rendering a chart (Helm label, no release annotations) is one Argo CD finding, not a Helm one", () => {
    const list = findings(
      svc({ labels: { "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "guestbook" } }),
    );
    assert.deepEqual(
      list.map((f) => f.kind),
      ["ManagedByArgoCD"],
    );
  });

  it("Flux: a Kustomization and a HelmRelease, each named with its namespace", () => {
    const kustomized = only(
      findings(
        svc({
          labels: {
            "kustomize.toolkit.fluxcd.io/name": "apps",
            "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
          },
        }),
      ),
    );
    assert.equal(kustomized.kind, "ManagedByFlux");
    assert.equal(kustomized.reason, "FluxKustomization");
    assert.match(kustomized.message, /applied by Flux Kustomization flux-system\/apps: .* change them there/);
    // helm-controller installs with Helm, so the release annotations are there too: the HelmRelease is the place.
    const released = only(
      findings(
        svc({
          labels: {
            "app.kubernetes.io/managed-by": "Helm",
            "helm.toolkit.fluxcd.io/name": "podinfo",
            "helm.toolkit.fluxcd.io/namespace": "apps",
          },
          annotations: { "meta.helm.sh/release-name": "podinfo", "meta.helm.sh/release-namespace": "shop" },
        }),
      ),
    );
    assert.equal(released.reason, "FluxHelmRelease");
    assert.match(released.message, /installed by Flux HelmRelease apps\/podinfo: .* in the HelmRelease's spec.values/);
  });

  it("a controlling owner is Blocking, a Warning with allowControllerOwned, and not a requirePreflight block", () => {
    const owned = svc({
      ownerReferences: [
        { apiVersion: "v1", kind: "ConfigMap", name: "plain-owner", uid: "u1" },
        { apiVersion: "postgresql.cnpg.io/v1", kind: "Cluster", name: "db", uid: "u2", controller: true },
      ],
    });
    const blocking = only(findings(owned));
    assert.equal(blocking.kind, "ManagedByController");
    assert.equal(blocking.severity, "Blocking");
    assert.equal(blocking.reason, "ControllerOwned");
    assert.match(blocking.message, /controlled by Cluster db \(postgresql.cnpg.io\/v1\)/);
    assert.match(blocking.message, /set spec.ipv6Only.allowControllerOwned: true to cut it over anyway$/);
    assert.equal(blockingByService([blocking]).size, 0, "decide() gates it, not requirePreflight");
    const allowed = only(findings(owned, { ...DUAL, allowControllerOwned: true }));
    assert.equal(allowed.severity, "Warning");
    assert.match(allowed.message, /allowControllerOwned is true: the plan cuts it over anyway/);
    // An ownerReference without controller: true is not a controller.
    assert.deepEqual(
      findings(svc({ ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: "x", uid: "u" }] })),
      [],
    );
  });

  it("field managers other than the operator that own the family fields, with their operation", () => {
    const list = findings(
      svc({
        managedFields: [
          entry("gitops-bot", "Apply", ["ipFamilyPolicy", "ipFamilies", "ports"]),
          entry("kubectl-edit", "Update", ["ipFamilyPolicy"]),
          entry("ipv6-migration-operator", "Update", ["ipFamilyPolicy", "ipFamilies"]),
          entry("kubectl-create", "Update", ["ports", "selector"]),
        ],
      }),
    );
    assert.deepEqual(
      list.map((f) => f.kind),
      ["FamilyFieldManager", "FamilyFieldManager"],
    );
    assert.equal(
      list[0]?.message,
      "field manager gitops-bot (operation Apply) owns spec.ipFamilyPolicy and spec.ipFamilies of Service shop/web: its next server-side apply sets them again; change them to ipFamilyPolicy: PreferDualStack in what gitops-bot writes, or drop them from it",
    );
    assert.match(
      list[1]?.message ?? "",
      /^field manager kubectl-edit \(operation Update\) owns spec.ipFamilyPolicy of/,
    );
    assert.match(list[1]?.message ?? "", /its next write of the Service may set it again; change it to/);
  });

  it("a Service with several managers gets one finding for each", () => {
    const list = findings(
      svc({
        labels: { "kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux" },
        annotations: { "argocd.argoproj.io/tracking-id": "app:/Service:shop/web" },
        managedFields: [entry("kustomize-controller", "Apply", ["ipFamilies"])],
      }),
    );
    assert.deepEqual(list.map((f) => f.kind).sort(), ["FamilyFieldManager", "ManagedByArgoCD", "ManagedByFlux"]);
    for (const f of list) assert.deepEqual(f.services, ["shop/web"]);
  });
});
