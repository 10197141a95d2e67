// The write protocol for one Service: the write, then a check of what the server answered; a cutover, which is
// destructive (the Service is ExternalName in between), is dry-run first.
//
// Where the snapshot lives: in an annotation on the Service itself, written in the same PATCH that turns it
// into ExternalName. That write is atomic, so at no instant is a Service ExternalName without the record that
// says how to bring it back; the record travels with the object (backups, moves) and needs no other object,
// RBAC or clean-up. A crash at any point leaves either the untouched Service or an ExternalName Service that
// carries its record, and the next reconcile finishes the cutover from it (decide() returns "resume").
import { ApiError, SERVICES, type KubeClient } from "../runtime/client.js";
import type { WriteExpectations } from "../runtime/expectations.js";
import { keyOf } from "../runtime/object.js";
import { errorMessage, type Logger } from "../runtime/log.js";
import { CUTOVER_ANNOTATION, FIELD_MANAGER, STATE_LABEL } from "../api/migrationplan.js";
import { relaxedRestorePatch, refusesPort, restorePatch, type CutoverRecord } from "../migration/cutover.js";
import { type IPFamily, type MergePatch, type Service, type ServiceSpec } from "../migration/families.js";

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

/**
 * The steps of a Service write, in order, at which a test can stop the process (the fault suite kills it at
 * each one to prove that any instant is recoverable):
 *   patch         after the write of an in-place patch
 *   dryrun        after the dry run of a cutover             externalname after its first write (to ExternalName)
 *   restore       after the second write of a cutover (or of a resumed one), before its answer is checked
 */
export const WRITE_STEPS = ["patch", "dryrun", "externalname", "restore"] as const;
export type WriteStep = (typeof WRITE_STEPS)[number];

/** A seam for tests: production passes none. */
export interface WriteHooks {
  afterStep?(step: WriteStep): void;
}

export class ServiceWriter {
  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    private readonly expectations: WriteExpectations,
    private readonly hooks: WriteHooks = {},
    /** The wall-clock time recorded on a Service; a seam for tests. */
    private readonly now: () => string = () => new Date().toISOString(),
  ) {}

  private readonly writeListeners: (() => void)[] = [];
  private writesInFlight = 0;
  private idleWaiters: (() => void)[] = [];

  /**
   * Resolves once no write to a Service is in flight (checked again a turn of the event loop later, so that the
   * gap between one write of a batch and the next is not taken for the end of the batch).
   */
  whenIdle(): Promise<void> {
    if (this.writesInFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wroteOne(): void {
    if (--this.writesInFlight > 0) return;
    setImmediate(() => {
      if (this.writesInFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    });
  }

  /** Told after every write that changed a Service (not dry runs). */
  onWrite(listener: () => void): void {
    this.writeListeners.push(listener);
  }

  /** Whether the cached Service reflects this process's last write to it. */
  cacheHasSeen(svc: Service): boolean {
    return this.expectations.satisfied(keyOf(svc), svc.metadata.resourceVersion);
  }

  private step(step: WriteStep): void {
    this.hooks.afterStep?.(step);
  }

  /** Every write to a Service goes through here, so that the reconciler knows when its cache has seen them. */
  private async patch(svc: Service, body: MergePatch, dryRun = false): Promise<Service> {
    this.writesInFlight++;
    let updated: Service;
    try {
      updated = await this.client.patch<Service>(SERVICES, svc.metadata.namespace, svc.metadata.name, body, "merge", {
        fieldManager: FIELD_MANAGER,
        dryRun,
      });
    } finally {
      this.wroteOne();
    }
    if (!dryRun) {
      this.expectations.wrote(keyOf(svc), svc.metadata.resourceVersion, updated.metadata.resourceVersion);
      for (const listener of this.writeListeners) listener();
    }
    return updated;
  }

  /** A metadata-only record on the Service (a gate, drift, a failure): labels and annotations, never the spec. */
  async mark(svc: Service, metadata: MergePatch): Promise<Service> {
    return this.patch(svc, { metadata });
  }

  /**
   * One in-place patch; the server's answer must carry the expected families. No dry run first: the patch is not
   * destructive (the Service keeps its type, ClusterIPs and ports), so a refusal costs nothing, and an answer
   * with other families than expected is put back as it was by a second write before the failure is reported.
   */
  async patchInPlace(svc: Service, body: MergePatch, expect: IPFamily[]): Promise<WriteResult> {
    const updated = await this.patch(svc, body);
    this.step("patch");
    try {
      checkFamilies(updated.spec, expect, "write");
    } catch (err) {
      try {
        await this.patch(updated, inversePatch(svc, body));
      } catch (undo) {
        this.log.error("could not put the Service back after an unexpected answer", {
          service: keyOf(svc),
          error: errorMessage(undo),
        });
      }
      throw err;
    }
    return { service: updated };
  }

  /** The two writes of a cutover: to ExternalName (carrying the record), then back with the new families. */
  async cutover(svc: Service, toExternalName: MergePatch, record: CutoverRecord): Promise<WriteResult> {
    await this.patch(svc, toExternalName, true);
    this.step("dryrun");
    const external = await this.patch(svc, toExternalName);
    this.step("externalname");
    return this.resume(external, record);
  }

  /**
   * Brings an ExternalName Service of a cutover back. If a requested address or nodePort was taken meanwhile,
   * it takes what the server allocates rather than stay ExternalName; if the new families are refused, it
   * puts the snapshot back. It never deletes the Service.
   */
  async resume(svc: Service, record: CutoverRecord): Promise<WriteResult> {
    // No resourceVersion precondition (restorePatch sets none): the Service must come back whatever else changed.
    try {
      const service = await this.patch(svc, restorePatch(record, record.restore, true));
      this.step("restore");
      checkFamilies(service.spec, record.restore.ipFamilies ?? [], "cutover");
      return { service };
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      // Phrases, never a bare "port": the answer (and err.message, with its path) carries the Service's name.
      const answer = err.status.message ?? "";
      // Taken meanwhile, or leaked by the API server itself: another client's write racing this one can leave the
      // requested IP or port allocated to no Service for minutes (docs/reliability.md). A taken
      // healthCheckNodePort is answered 500, not 422, and must go with the nodePorts, or this never succeeds.
      const taken = /already allocated|provided (IP|port)/i.test(answer);
      if (err.code !== 422 && !(err.code === 500 && taken)) throw err;
      if (taken) {
        const refusals = [answer];
        let service: Service;
        try {
          service = await this.patch(svc, relaxedRestorePatch(record, refusals, this.now()));
        } catch (again) {
          // A refusal names one address: the nodePorts can be refused once the ClusterIP no longer is.
          const next = again instanceof ApiError ? (again.status.message ?? "") : "";
          if (!refusesPort(next)) throw again;
          refusals.push(next);
          service = await this.patch(svc, relaxedRestorePatch(record, refusals, this.now()));
        }
        this.step("restore");
        return {
          service,
          warning: `the server could not re-grant what was requested (${refusals.join("; ")}); it allocated new addresses`,
        };
      }
      this.log.error("cutover refused, restoring the snapshot", { service: keyOf(svc), error: errorMessage(err) });
      const back = restorePatch(record, record.snapshot, false);
      // What the plan had applied before stays recorded; the Service is marked failed until it changes.
      back.metadata = { labels: { [STATE_LABEL]: "failed" }, annotations: { [CUTOVER_ANNOTATION]: null } };
      await this.patch(svc, back);
      throw new WriteFailure(
        "CutoverRefused",
        `the API server refused the new families: ${err.status.message ?? err.message}`,
        err,
      );
    }
  }
}

/**
 * The merge patch that sets back every field `body` set to its value in `before` (null where `before` had none):
 * the spec's fields and the labels and annotations the patch wrote.
 */
export function inversePatch(before: Service, body: MergePatch): MergePatch {
  const fields = (o: unknown): Record<string, unknown> =>
    o && typeof o === "object" ? (o as Record<string, unknown>) : {};
  const back = (was: unknown, wrote: unknown) =>
    Object.fromEntries(Object.keys(fields(wrote)).map((k) => [k, fields(was)[k] ?? null]));
  const inverse: MergePatch = {};
  if (body.spec) inverse.spec = back(before.spec, body.spec);
  const metadata = fields(body.metadata);
  if (body.metadata) {
    inverse.metadata = {
      ...(metadata.labels ? { labels: back(before.metadata.labels, metadata.labels) } : {}),
      ...(metadata.annotations ? { annotations: back(before.metadata.annotations, metadata.annotations) } : {}),
    };
  }
  return inverse;
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
