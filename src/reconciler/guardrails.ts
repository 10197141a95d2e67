// The admission policies of spec.newServices (src/migration/guardrails.ts says which), written and removed. They
// are applied server-side with the operator's field manager, so a change of the plan's phase or selector
// rewrites them whole; a deleted or edited policy is put back at the next resync (the preflight interval). No
// cache or watch of them: the operator's default role may not read admission policies at all, and a plan that
// never asks for them costs no request (the RBAC overlay config/guardrails grants what this file calls).
import { createHash } from "node:crypto";
import {
  ApiError,
  isForbidden,
  isNotFound,
  isNotServed,
  servesResource,
  type KubeClient,
  type ResourceType,
} from "../runtime/client.js";
import type { Clock } from "../runtime/clock.js";
import { errorMessage, type Logger } from "../runtime/log.js";
import { CONDITIONS, FIELD_MANAGER, REASONS, type MigrationPlan } from "../api/migrationplan.js";
import { findCondition } from "../runtime/object.js";
import {
  ADMISSION_GROUP,
  ADMISSION_VERSION,
  GUARDRAIL_KINDS,
  MUTATING_ADMISSION_POLICIES,
  guardrailName,
  guardrailWant,
  mayHavePolicies,
  type ConditionInput,
  type GuardrailKind,
  type GuardrailWant,
} from "../migration/guardrails.js";
import type { Capability } from "./precondition.js";

/** How long the answer of discovery is trusted: a cluster upgrade may start serving the API. */
const DISCOVERY_TTL_MS = 300_000;

function typeOf(kind: GuardrailKind): ResourceType {
  const resource = GUARDRAIL_KINDS.find((k) => k.kind === kind)?.resource ?? "";
  return { group: ADMISSION_GROUP, version: ADMISSION_VERSION, resource, kind, namespaced: false };
}

/** Whether admissionregistration.k8s.io/v1 serves MutatingAdmissionPolicy (GA in Kubernetes 1.36). */
export function servesMutatingAdmissionPolicies(client: KubeClient): Promise<boolean> {
  return servesResource(client, {
    group: ADMISSION_GROUP,
    version: ADMISSION_VERSION,
    resource: MUTATING_ADMISSION_POLICIES,
  });
}

export class NewServiceGuardrails {
  /**
   * Each plan's last attempt: what it was asked (its generation, what it wanted, the IPv6 range), when, and the
   * outcome. The same attempt is not repeated before the resync, so a refused write is not retried on every
   * reconcile, and a change of the plan tries again at once. A fact cache: empty after a restart, which re-applies.
   */
  private readonly attempts = new Map<string, { key: string; at: number; result: ConditionInput | undefined }>();
  private discovery: { at: number; served: boolean } | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    private readonly clock: Clock,
    private readonly resyncMs: number,
  ) {}

  forget(plan: string): void {
    this.attempts.delete(plan);
  }

  /**
   * Brings the plan's policies to what its spec asks, and returns the NewServicesDefaulted condition to report
   * (undefined: leave it as it is). Refusals are reported in the condition and the rollout carries on; only an
   * unreachable server throws, for the controller to retry.
   */
  async sync(plan: MigrationPlan, deleting: boolean, ipv6Range: Capability): Promise<ConditionInput | undefined> {
    const want = guardrailWant(plan, deleting);
    if (want.want === "untouched") return undefined;
    const key = createHash("sha256")
      .update(JSON.stringify([plan.metadata.generation, want, ipv6Range.status]))
      .digest("hex");
    const last = this.attempts.get(plan.metadata.name);
    const now = this.clock.now();
    if (last?.key === key && now - last.at < this.resyncMs) return last.result;
    const result = await this.attempt(plan, want, ipv6Range);
    this.attempts.set(plan.metadata.name, { key, at: now, result });
    return result;
  }

  private async attempt(
    plan: MigrationPlan,
    want: Exclude<GuardrailWant, { want: "untouched" }>,
    ipv6Range: Capability,
  ): Promise<ConditionInput | undefined> {
    const name = plan.metadata.name;
    try {
      if (want.want === "absent") {
        if (mayHavePolicies(plan)) await this.remove(name);
        const reported = findCondition(plan.status?.conditions, CONDITIONS.newServicesDefaulted);
        return reported || plan.spec.newServices === "Default" ? { status: false, ...want } : undefined;
      }
      if (!(await this.served())) {
        return {
          status: false,
          reason: REASONS.mutatingAdmissionPolicyNotServed,
          message: `the API server does not serve ${ADMISSION_GROUP}/${ADMISSION_VERSION} MutatingAdmissionPolicy (GA in Kubernetes 1.36): new Services are created as they are, and the plan moves them afterwards`,
        };
      }
      if (!ipv6Range.status) {
        // An IPv6 family asked of a cluster without an IPv6 range would make every new Service fail to create.
        if (mayHavePolicies(plan)) await this.remove(name);
        return {
          status: false,
          reason: REASONS.noIPv6ServiceRange,
          message: `${ipv6Range.message}; no policy is kept`,
        };
      }
      for (const object of want.objects) {
        await this.client.patch(typeOf(object.kind), undefined, object.metadata.name, object, "apply", {
          fieldManager: FIELD_MANAGER,
          force: true,
        });
      }
      this.log.info("admission policies applied for new Services", { plan: name, name: guardrailName(name) });
      return { status: true, reason: REASONS.policiesApplied, message: want.message };
    } catch (err) {
      return this.failure(err);
    }
  }

  private async served(): Promise<boolean> {
    const now = this.clock.now();
    if (!this.discovery || now - this.discovery.at > DISCOVERY_TTL_MS) {
      this.discovery = { at: now, served: await servesMutatingAdmissionPolicies(this.client) };
    }
    return this.discovery.served;
  }

  /** Bindings first, so that no binding is left naming a policy that is gone. */
  private async remove(plan: string): Promise<void> {
    const name = guardrailName(plan);
    for (const { kind } of [...GUARDRAIL_KINDS].reverse()) {
      try {
        await this.client.delete(typeOf(kind), undefined, name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  private failure(err: unknown): ConditionInput {
    // Not an answer about the policies (no answer, a 5xx, a 429 the retries did not get past): the reconcile retries.
    if (!(err instanceof ApiError) || isNotServed(err)) throw err;
    if (!isForbidden(err)) return { status: false, reason: REASONS.policyWriteFailed, message: errorMessage(err) };
    return {
      status: false,
      reason: REASONS.forbidden,
      message: `${err.verb} ${err.path} was forbidden: ${err.status.message ?? ""}; writing admission policies needs the RBAC of config/guardrails (kubectl apply -k config/guardrails)`,
    };
  }
}
