// The write protocol for one Service: dry run, then the write, then a check of what the server answered.
//
// Where the snapshot lives: in an annotation on the Service itself, written in the same PATCH that turns it
// into ExternalName. That write is atomic, so at no instant is a Service ExternalName without the record that
// says how to bring it back; the record travels with the object (backups, moves) and needs no other object,
// RBAC or clean-up. A crash at any point leaves either the untouched Service or an ExternalName Service that
// carries its record, and the next reconcile finishes the cutover from it (decide() returns "resume").
import { ApiError, SERVICES, type KubeClient } from "../runtime/client.js";
import { errorMessage, type Logger } from "../runtime/log.js";
import { CUTOVER_ANNOTATION, FIELD_MANAGER, STATE_LABEL } from "../migration/api.js";
import {
  restorePatch,
  type CutoverRecord,
  type IPFamily,
  type MergePatch,
  type Service,
  type ServiceSpec,
} from "../migration/service.js";

export interface WriteResult {
  service: Service;
  /** Set when the server did not grant what was asked (e.g. a requested ClusterIP was taken). */
  warning?: string;
}

/** A write the server refused, with what to tell the user. */
export class WriteFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
    readonly original?: unknown,
  ) {
    super(message);
  }
}

/** Test-only: IPV6MIG_TEST_HOOK=kill-after:externalname makes the process SIGKILL itself after that write. */
function testHook(step: string): void {
  const hook = process.env.IPV6MIG_TEST_HOOK;
  if (hook && hook === `kill-after:${step}`) process.kill(process.pid, "SIGKILL");
}

export class ServiceWriter {
  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  private patch(svc: Service, body: MergePatch, dryRun = false): Promise<Service> {
    return this.client.patch<Service>(SERVICES, svc.metadata.namespace, svc.metadata.name, body, "merge", {
      fieldManager: FIELD_MANAGER,
      dryRun,
    });
  }

  /** One in-place patch, dry-run first; the server's answer must carry the expected families. */
  async patchInPlace(svc: Service, body: MergePatch, expect: IPFamily[]): Promise<WriteResult> {
    const dry = await this.patch(svc, body, true);
    checkFamilies(dry.spec, expect, "dry run");
    const updated = await this.patch(svc, body);
    checkFamilies(updated.spec, expect, "write");
    return { service: updated };
  }

  /** The two writes of a cutover: to ExternalName (carrying the record), then back with the new families. */
  async cutover(svc: Service, toExternalName: MergePatch, record: CutoverRecord): Promise<WriteResult> {
    await this.patch(svc, toExternalName, true);
    const external = await this.patch(svc, toExternalName);
    testHook("externalname");
    return this.resume(external, record);
  }

  /**
   * Brings an ExternalName Service of a cutover back. If a requested address or nodePort was taken meanwhile,
   * it takes what the server allocates rather than stay ExternalName; if the new families are refused, it
   * puts the snapshot back. It never deletes the Service.
   */
  async resume(svc: Service, record: CutoverRecord): Promise<WriteResult> {
    const base = { ...svc, metadata: { ...svc.metadata, resourceVersion: undefined } };
    try {
      const service = await this.patch(base, restorePatch(record, record.restore, true));
      checkFamilies(service.spec, record.restore.ipFamilies ?? [], "cutover");
      return { service };
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== 422) throw err;
      if (/already allocated|provided (IP|port)/i.test(err.message)) {
        const relaxed: ServiceSpec = { ...record.restore };
        delete relaxed.clusterIP;
        delete relaxed.clusterIPs;
        if (/port/i.test(err.message)) relaxed.ports = record.restore.ports?.map(({ nodePort: _n, ...p }) => p);
        const service = await this.patch(base, restorePatch(record, relaxed, true));
        return {
          service,
          warning: `the server could not re-grant what was requested (${err.status.message ?? ""}); it allocated new addresses`,
        };
      }
      this.log.error("cutover refused, restoring the snapshot", { service: key(svc), error: errorMessage(err) });
      const back = restorePatch(record, record.snapshot, false);
      // What the plan had applied before stays recorded; the Service is marked failed until it changes.
      back.metadata = { labels: { [STATE_LABEL]: "failed" }, annotations: { [CUTOVER_ANNOTATION]: null } };
      await this.patch(base, back);
      throw new WriteFailure(
        "CutoverRefused",
        `the API server refused the new families: ${err.status.message ?? err.message}`,
        err,
      );
    }
  }
}

function key(svc: Service): string {
  return `${svc.metadata.namespace ?? ""}/${svc.metadata.name}`;
}

function checkFamilies(spec: ServiceSpec, expect: IPFamily[], what: string): void {
  const got = spec.ipFamilies ?? [];
  if (JSON.stringify(got) !== JSON.stringify(expect)) {
    throw new WriteFailure(
      expect.length === 2 ? "SecondaryFamilyNotAllocated" : "UnexpectedFamilies",
      `the ${what} gave ipFamilies ${JSON.stringify(got)}, not ${JSON.stringify(expect)}`,
    );
  }
}
