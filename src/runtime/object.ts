// Plain Kubernetes objects as the server sends them, and the few helpers every controller needs.
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  apiVersion?: string;
  time?: string;
  fieldsType?: string;
  fieldsV1?: Record<string, unknown>;
  subresource?: string;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: ManagedFieldsEntry[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

/** The store key, as client-go's MetaNamespaceKeyFunc: "namespace/name", or "name" when cluster-scoped. */
export function keyOf(obj: { metadata: { name: string; namespace?: string } }): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name;
}

/**
 * Orders strings by UTF-16 code units, as Go's sort.Strings orders bytes for the ASCII of Kubernetes names.
 * localeCompare would collate with ICU: slower in a sort of thousands of keys, and its tables are 2.5 MiB of the
 * node executable's pages in RSS.
 */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * One instance of equal strings, for values that thousands of cached objects repeat (a field manager, a second's
 * timestamp): JSON.parse makes a new string of every value longer than a few characters. Bounded: emptied when
 * full, so a field whose values are all distinct costs at most `max` entries.
 */
export class StringInterner {
  private readonly known = new Map<string, string>();

  constructor(private readonly max: number) {}

  intern<T extends string | undefined>(value: T): T {
    if (value === undefined) return value;
    const known = this.known.get(value);
    if (known !== undefined) return known as T;
    if (this.known.size >= this.max) this.known.clear();
    this.known.set(value, value);
    return value;
  }
}

/** metav1.Condition. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/**
 * Sets a condition the way apimachinery's meta.SetStatusCondition does: lastTransitionTime moves only when the
 * status changes. Returns the new list (the input is not modified).
 */
export function setCondition(
  conditions: readonly Condition[],
  next: Omit<Condition, "lastTransitionTime">,
  now: () => string = () => new Date().toISOString(),
): Condition[] {
  const existing = conditions.find((c) => c.type === next.type);
  const lastTransitionTime = existing && existing.status === next.status ? existing.lastTransitionTime : now();
  const updated: Condition = { ...next, lastTransitionTime };
  return existing ? conditions.map((c) => (c.type === next.type ? updated : c)) : [...conditions, updated];
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * A JSON merge patch (RFC 7386) that turns `before` into `after`: a merge patch keeps every key of an object that
 * it does not name, so a key that `after` no longer has must be sent as null, at any depth. Arrays are replaced
 * whole by a merge patch, so they are sent as they are.
 */
export function mergePatchTo(before: unknown, after: unknown): unknown {
  if (!isPlainObject(before) || !isPlainObject(after)) return after;
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(before)) if (!(key in after) || after[key] === undefined) patch[key] = null;
  for (const [key, value] of Object.entries(after))
    if (value !== undefined) patch[key] = mergePatchTo(before[key], value);
  return patch;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
