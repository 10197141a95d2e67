// The MigrationPlan API, generated from the CRD's schema so that nothing can drift from it: the README's reference
// section and the TypeScript types in src/api/v1alpha1.ts. test/unit/apidoc.test.ts fails when either differs, and
// `node dist/test/apidoc.js --write` rewrites both.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { load } from "js-yaml";
import { format, resolveConfig } from "prettier";

interface Schema {
  type?: string;
  required?: string[];
  additionalProperties?: Schema;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  items?: Schema;
  minimum?: number;
  maximum?: number;
  maxItems?: number;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-validations"?: { message?: string }[];
}

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const START = "<!-- api-reference:start (generated from the CRD by `node dist/test/apidoc.js --write`) -->";
export const END = "<!-- api-reference:end -->";

function typeOf(s: Schema): string {
  if (s["x-kubernetes-int-or-string"]) return "int or string";
  if (s.type === "array") return `[]${s.items ? typeOf(s.items) : ""}`;
  return s.type ?? "object";
}

function rows(prefix: string, s: Schema, out: string[]): void {
  for (const [name, child] of Object.entries(s.properties ?? {})) {
    const field = `${prefix}${name}`;
    const allowed: string[] = [];
    if (child.enum) allowed.push(child.enum.map((v) => `\`${String(v)}\``).join(" \\| "));
    if (child.minimum !== undefined) allowed.push(`≥ ${child.minimum}`);
    if (child.maximum !== undefined) allowed.push(`≤ ${child.maximum}`);
    if (child.maxItems !== undefined) allowed.push(`at most ${child.maxItems} items`);
    for (const v of child["x-kubernetes-validations"] ?? []) if (v.message) allowed.push(v.message);
    const def = child.default === undefined ? "" : `\`${JSON.stringify(child.default)}\``;
    const description = (child.description ?? "").replace(/\s+/g, " ").trim();
    out.push(`| \`${field}\` | ${typeOf(child)} | ${def} | ${[description, ...allowed].filter(Boolean).join(" ")} |`);
    if (child.type === "object" && child.properties && !field.endsWith("Selector")) rows(`${field}.`, child, out);
  }
}

function crdVersion(): { name: string; schema: { openAPIV3Schema: Schema } } {
  // js-yaml, not client-node's loadYaml, which turns a CRD into model classes with renamed keys (`_default`).
  const crd = load(readFileSync(path.join(repo, "crds/ipv6migration.io_migrationplans.yaml"), "utf8")) as {
    spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
  };
  const version = crd.spec.versions[0];
  if (!version) throw new Error("the CRD has no version");
  return version;
}

export function generate(): string {
  const version = crdVersion();
  const spec = version.schema.openAPIV3Schema.properties?.spec ?? {};
  const out = [
    START,
    "",
    `\`ipv6migration.io/${version.name}\`, kind \`MigrationPlan\`, cluster-scoped (short name \`mplan\`).`,
    "",
    "| field | type | default | meaning and allowed values |",
    "| --- | --- | --- | --- |",
  ];
  rows("spec.", spec, out);
  const specRules = (spec["x-kubernetes-validations"] ?? []).map((v) => `- ${v.message ?? ""}`);
  if (specRules.length) out.push("", "Rules across fields:", "", ...specRules);
  out.push("", END);
  return out.join("\n");
}

export function readmeSection(readme: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  return start < 0 || end < 0 ? "" : readme.slice(start, end + END.length);
}

export const TYPES_FILE = path.join(repo, "src/api/v1alpha1.ts");

/**
 * Schema paths that get a name of their own in the TypeScript: the ones code outside the API refers to. An enum
 * also gets its values as a constant list, so code can iterate and check them.
 */
const NAMED: Record<string, { name: string; values?: string }> = {
  spec: { name: "MigrationPlanSpec" },
  "spec.targetPhase": { name: "TargetPhase", values: "TARGET_PHASES" },
  "spec.selector": { name: "PlanSelector" },
  "spec.selector.namespaceSelector": { name: "LabelSelector" },
  "spec.selector.serviceSelector": { name: "LabelSelector" },
  "spec.selector.namespaceSelector.matchExpressions[]": { name: "LabelSelectorRequirement" },
  "spec.selector.serviceSelector.matchExpressions[]": { name: "LabelSelectorRequirement" },
  "spec.dualStack.ipFamilyPolicy": { name: "DualStackPolicy", values: "DUAL_STACK_POLICIES" },
  "spec.deletionPolicy": { name: "DeletionPolicy", values: "DELETION_POLICIES" },
  status: { name: "MigrationPlanStatus" },
  "status.phase": { name: "PlanPhase", values: "PLAN_PHASES" },
  "status.summary": { name: "PlanSummary" },
  "status.currentBatch": { name: "Batch" },
  "status.problems[]": { name: "ServiceProblem" },
  "status.problems[].state": { name: "ProblemState", values: "PROBLEM_STATES" },
  "status.preflight": { name: "PreflightStatus" },
  "status.preflight.findings[]": { name: "PreflightFindingStatus" },
  "status.preflight.findings[].severity": { name: "Severity", values: "SEVERITIES" },
  "status.conditions[]": { name: "Condition" },
};

/** The TypeScript of the CRD's spec and status, with the names above, formatted as the repository is. */
export async function generateTypes(): Promise<string> {
  const root = crdVersion().schema.openAPIV3Schema.properties ?? {};
  const declared = new Map<string, string>();
  const order: string[] = [];
  const shapes = new Map<string, string>();
  /** One declaration per name; two schemas may share a name if they differ only in their descriptions. */
  const declare = (name: string, text: string, doc = "") => {
    const prior = shapes.get(name);
    if (prior !== undefined && prior !== text) throw new Error(`two schemas want the name ${name}`);
    if (prior !== undefined) return;
    order.push(name);
    shapes.set(name, text);
    declared.set(name, doc + text);
  };
  const ts = (at: string, s: Schema, indent: string): string => {
    const named = NAMED[at];
    if (named && named.name !== "Condition") {
      const body = inline(at, s, "");
      if (named.values && s.enum) {
        const values = s.enum.map((v) => JSON.stringify(v)).join(", ");
        declare(named.values, `export const ${named.values} = [${values}] as const;`);
        declare(named.name, `export type ${named.name} = (typeof ${named.values})[number];`);
      } else {
        const doc = s.description ? `/** ${s.description.replace(/\s+/g, " ").trim()} */\n` : "";
        const object = body.startsWith("{");
        declare(
          named.name,
          `export ${object ? `interface ${named.name} ` : `type ${named.name} = `}${body}${object ? "" : ";"}`,
          doc,
        );
      }
      return named.name;
    }
    if (named) return named.name;
    return inline(at, s, indent);
  };
  const inline = (at: string, s: Schema, indent: string): string => {
    if (s["x-kubernetes-int-or-string"]) return "number | string";
    if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
    switch (s.type) {
      case "string":
        return "string";
      case "integer":
      case "number":
        return "number";
      case "boolean":
        return "boolean";
      case "array":
        return `${wrap(ts(`${at}[]`, s.items ?? {}, indent))}[]`;
    }
    if (s.additionalProperties) return `Record<string, ${ts(`${at}{}`, s.additionalProperties, indent)}>`;
    const required = new Set(s.required ?? []);
    const fields = Object.entries(s.properties ?? {}).map(([name, child]) => {
      const doc = child.description ? `${indent}  /** ${child.description.replace(/\s+/g, " ").trim()} */\n` : "";
      return `${doc}${indent}  ${name}${required.has(name) ? "" : "?"}: ${ts(`${at}.${name}`, child, `${indent}  `)};`;
    });
    return fields.length ? `{\n${fields.join("\n")}\n${indent}}` : "Record<string, unknown>";
  };
  const wrap = (t: string) => (t.includes("|") ? `(${t})` : t);
  for (const part of ["spec", "status"] as const) ts(part, root[part] ?? {}, "");
  const text = [
    "// Generated from crds/ipv6migration.io_migrationplans.yaml by `node dist/test/apidoc.js --write`: edit the CRD,",
    "// not this file (test/unit/apidoc.test.ts fails when they differ).",
    'import type { Condition } from "../runtime/object.js";',
    "",
    ...order.map((name) => `${declared.get(name) ?? ""}\n`),
  ].join("\n");
  return format(text, { ...(await resolveConfig(TYPES_FILE)), filepath: TYPES_FILE });
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes("--write")) {
  const file = path.join(repo, "README.md");
  const readme = readFileSync(file, "utf8");
  const current = readmeSection(readme);
  if (!current) throw new Error("README.md has no api-reference markers");
  writeFileSync(file, readme.replace(current, generate()));
  writeFileSync(TYPES_FILE, await generateTypes());
}
