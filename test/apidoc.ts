// The MigrationPlan API reference in the README, generated from the CRD's schema so that the two can't drift:
// test/unit/apidoc.test.ts fails when they differ, and `node dist/test/apidoc.js --write` rewrites the README.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { load } from "js-yaml";

interface Schema {
  type?: string;
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

export function generate(): string {
  // js-yaml, not client-node's loadYaml, which turns a CRD into model classes with renamed keys (`_default`).
  const crd = load(readFileSync(path.join(repo, "crds/ipv6migration.io_migrationplans.yaml"), "utf8")) as {
    spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
  };
  const version = crd.spec.versions[0];
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

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv.includes("--write")) {
  const file = path.join(repo, "README.md");
  const readme = readFileSync(file, "utf8");
  const current = readmeSection(readme);
  if (!current) throw new Error("README.md has no api-reference markers");
  writeFileSync(file, readme.replace(current, generate()));
}
