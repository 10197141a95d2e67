// The release's install paths through the Makefile, on a real control plane: `make build-installer` writes
// dist/install.yaml (config/default with the release's image), which passes a server-side dry run and installs;
// `make deploy IMG=...` points the Deployment at another image; `make undeploy` deletes in order.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "../../src/testenv/controlplane.js";
import { eventually, useControlPlane } from "../helpers.js";
import { createPlan } from "../operator.js";
import {
  findManifest,
  kubectlVariable,
  make,
  makeVariable,
  managerContainer,
  PACKAGE,
  parseManifests,
  succeeded,
  type DeploymentManifest,
} from "../release.js";

const INSTALL_YAML = path.join(repoRoot, "dist/install.yaml");
const SYSTEM_NS = "ipv6-migration-system";
const DEPLOYMENT = "ipv6-migration-operator-controller-manager";
const CRD = "migrationplans.ipv6migration.io";

describe("release: make build-installer, deploy and undeploy", function () {
  const env = useControlPlane({ families: "dual" });

  const kubectl = async (args: string[], input?: string) =>
    succeeded(await env.cp.kubectl(args, { input }), `kubectl ${args.join(" ")}`);

  const deployedImage = async () => {
    const out = await kubectl(["get", "deployment", "-n", SYSTEM_NS, DEPLOYMENT, "-o", "json"]);
    return (JSON.parse(out.stdout) as DeploymentManifest).spec.template.spec.containers[0]?.image;
  };

  it("make build-installer writes config/default with the release's versioned image to dist/install.yaml", async () => {
    const built = succeeded(
      await make("build-installer", { KUBECTL: kubectlVariable(env.cp) }),
      "make build-installer",
    );
    const image = `${await makeVariable("IMAGE_REPO")}:${PACKAGE.version}`;
    assert.match(built.stdout, new RegExp(`dist/install.yaml: ${image}`));
    const installer = parseManifests(readFileSync(INSTALL_YAML, "utf8"));
    assert.equal(managerContainer(installer).image, image);
    for (const [kind, name] of [
      ["CustomResourceDefinition", CRD],
      ["Namespace", SYSTEM_NS],
      ["ServiceAccount", DEPLOYMENT],
      ["ClusterRole", "ipv6-migration-operator-manager-role"],
      ["ClusterRoleBinding", "ipv6-migration-operator-manager-rolebinding"],
      ["Role", "ipv6-migration-operator-leader-election-role"],
      ["RoleBinding", "ipv6-migration-operator-leader-election-rolebinding"],
      ["Deployment", DEPLOYMENT],
    ] as const) {
      findManifest(installer, kind, name);
    }
    // Nothing else differs from what config/default renders.
    const kustomized = parseManifests((await kubectl(["kustomize", path.join(repoRoot, "config/default")])).stdout);
    managerContainer(kustomized).image = image;
    assert.deepEqual(installer, kustomized);
  });

  it("dist/install.yaml passes a server-side dry run, and installs", async () => {
    const installer = parseManifests(readFileSync(INSTALL_YAML, "utf8"));
    // A dry run creates nothing, so the namespace of the namespaced objects must exist before theirs can pass.
    await kubectl(["apply", "-f", "-"], JSON.stringify(findManifest(installer, "Namespace", SYSTEM_NS)));
    const dry = await kubectl(["apply", "--dry-run=server", "-f", INSTALL_YAML]);
    const lines = dry.stdout.trim().split("\n");
    assert.equal(lines.length, installer.length, dry.stdout);
    for (const line of lines) assert.match(line, /\((server dry run)\)$/);
    assert.doesNotMatch(dry.stderr, /PodSecurity/);
    assert.notEqual((await env.cp.kubectl(["get", "crd", CRD])).code, 0, "the dry run created nothing");

    await kubectl(["apply", "--server-side", "-f", INSTALL_YAML]);
    await kubectl(["wait", "--for=condition=Established", `crd/${CRD}`, "--timeout=60s"]);
    assert.equal(await deployedImage(), managerContainer(installer).image);
  });

  it("make deploy IMG=... points the Deployment at that image, by tag or by digest", async () => {
    for (const image of [
      "registry.example:5000/platform/ipv6-migration-operator:1.2.3",
      `registry.example/ipv6-migration-operator@sha256:${"0123456789abcdef".repeat(4)}`,
    ]) {
      succeeded(await make("deploy", { KUBECTL: kubectlVariable(env.cp), IMG: image }), `make deploy IMG=${image}`);
      assert.equal(await deployedImage(), image);
    }
  });

  it("make undeploy deletes the plans first, then the operator, then the CRD", async () => {
    await createPlan(env.client, "audit", { targetPhase: "Audit" });
    const before = env.cp.auditEvents("admin").length;
    // The harness runs no controllers, so a deleted namespace stays Terminating: don't wait for deletions.
    succeeded(await make("undeploy", { KUBECTL: kubectlVariable(env.cp), UNDEPLOY_WAIT: "false" }), "make undeploy");
    const deletes = env.cp
      .auditEvents("admin")
      .slice(before)
      .filter((e) => (e.verb === "delete" || e.verb === "deletecollection") && (e.responseStatus?.code ?? 0) < 300)
      .map((e) => e.objectRef?.resource ?? "");
    const first = (resource: string) => deletes.indexOf(resource);
    const last = (resource: string) => deletes.lastIndexOf(resource);
    for (const resource of [
      "migrationplans",
      "deployments",
      "clusterroles",
      "namespaces",
      "customresourcedefinitions",
    ]) {
      assert.ok(first(resource) >= 0, `${resource} deleted: ${deletes.join(", ")}`);
    }
    assert.ok(last("migrationplans") < first("deployments"), deletes.join(", "));
    assert.ok(first("deployments") < first("clusterroles"), deletes.join(", "));
    assert.ok(last("clusterroles") < first("customresourcedefinitions"), deletes.join(", "));
    assert.ok(last("namespaces") < first("customresourcedefinitions"), deletes.join(", "));
    await eventually(
      async () => ((await env.cp.kubectl(["get", "crd", CRD])).code !== 0 ? true : undefined),
      "the CRD to be gone",
    );
  });
});
