// The dry-run probe of the precondition, answered by real API servers with and without an IPv6 range.
import assert from "node:assert/strict";
import { SERVICES } from "../../src/runtime/client.js";
import { probeIPv6ServiceRange, servesServiceCIDRs } from "../../src/reconciler/precondition.js";
import { useControlPlane } from "../helpers.js";

for (const [families, expected] of [
  ["ipv4", false],
  ["dual", true],
  ["ipv6", true],
] as const) {
  describe(`precondition probe on the ${families} control plane`, function () {
    const env = useControlPlane({ families });

    it(`the dry run answers ${expected} and creates nothing; ServiceCIDR is served`, async () => {
      // Only probe Services would show: default/kubernetes appears on its own, whenever the apiserver gets to it.
      const probes = async () =>
        (await env.client.list<{ metadata: { name: string } }>(SERVICES, "default")).items.filter((s) =>
          s.metadata.name.startsWith("ipv6migration-probe-"),
        ).length;
      const capability = await probeIPv6ServiceRange(env.client);
      assert.equal(capability.status, expected, capability.message);
      if (!expected) assert.match(capability.message, /IPv6/);
      assert.equal(await probes(), 0);
      assert.equal(await servesServiceCIDRs(env.client), true);
    });
  });
}
