// The precondition of every write: the cluster must have an IPv6 Service range. On an IPv4-only cluster the API
// server *accepts* PreferDualStack and silently keeps the Service single-stack, so success can't be read from
// the write itself. The ServiceCIDR objects say it where they are served; otherwise a server-side dry run asks.
import ipaddr from "ipaddr.js";
import { isInvalid, SERVICE_CIDRS, SERVICES, servesResource, type KubeClient } from "../runtime/client.js";

export interface Capability {
  status: boolean;
  message: string;
}

/** Whether networking.k8s.io/v1 serves servicecidrs (GA in Kubernetes 1.33; older clusters don't). */
export function servesServiceCIDRs(client: KubeClient): Promise<boolean> {
  return servesResource(client, SERVICE_CIDRS);
}

/** From the ServiceCIDR objects' ranges, parsed with ipaddr.js. */
export function capabilityFromRanges(cidrs: string[]): Capability {
  const v6 = cidrs.filter((c) => ipaddr.isValidCIDR(c) && ipaddr.parseCIDR(c)[0].kind() === "ipv6");
  return v6.length > 0
    ? { status: true, message: `IPv6 Service range ${v6.join(", ")} (ServiceCIDR)` }
    : {
        status: false,
        message: `the cluster's Service ranges (${cidrs.join(", ") || "none found"}) have no IPv6 range`,
      };
}

/** Asks the API server, with a dry run that writes nothing, for an IPv6 ClusterIP. */
export async function probeIPv6ServiceRange(client: KubeClient, namespace = "default"): Promise<Capability> {
  try {
    await client.create(
      SERVICES,
      namespace,
      {
        metadata: { generateName: "ipv6migration-probe-" },
        spec: { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"], ports: [{ port: 80 }] },
      },
      { dryRun: true },
    );
    return { status: true, message: "a dry-run Service was granted an IPv6 ClusterIP" };
  } catch (err) {
    if (isInvalid(err)) {
      return {
        status: false,
        message: `the API server refused an IPv6 ClusterIP in a dry run: ${(err as Error).message}`,
      };
    }
    throw err;
  }
}
