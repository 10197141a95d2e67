// Command-line flags on node:util's parseArgs, in strict mode, with the conventions of kubectl and of Go's flag
// package that users of an operator's CLI expect: `--name value`, `--name=value`, `-x value`, repeatable flags,
// `--` ending the flags, `-h/--help` on every command, and errors that name the flag at fault.
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  /** Repeatable: every occurrence is kept, in order. */
  multiple?: boolean;
  /** The value's placeholder in the help, e.g. PATH. */
  value?: string;
  help: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

/** Bad usage: the CLI exits 2 with the message and the help of the command it happened in. */
export class UsageError extends Error {}

export const HELP_FLAG: FlagSpecs = { help: { type: "boolean", short: "h", help: "show this help" } };

export class ParsedFlags {
  constructor(
    private readonly values: Record<string, string | boolean | (string | boolean)[] | undefined>,
    /** Arguments that are not flags: those after `--`, and words among the flags. */
    readonly positionals: string[],
  ) {}

  string(name: string): string | undefined {
    const value = this.values[name];
    return typeof value === "string" ? value : undefined;
  }

  list(name: string): string[] {
    const value = this.values[name];
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
  }

  boolean(name: string): boolean {
    return this.values[name] === true;
  }

  /** A boolean that is on unless turned off (`--name=false`, `--no-name`). */
  booleanOr(name: string, fallback: boolean): boolean {
    const value = this.values[name];
    return typeof value === "boolean" ? value : fallback;
  }
}

function parserOptions(specs: FlagSpecs): ParseArgsOptionsConfig {
  const options: ParseArgsOptionsConfig = {};
  for (const [name, spec] of Object.entries(specs)) {
    options[name] = {
      type: spec.type,
      ...(spec.short ? { short: spec.short } : {}),
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  return options;
}

/**
 * Go's flag package (and so every kubebuilder manifest) writes a boolean as `--leader-elect=false`; parseArgs
 * takes `--no-leader-elect` for that, and refuses a value on a boolean. Only arguments before `--` are flags.
 */
function goBooleans(args: string[], specs: FlagSpecs): string[] {
  const end = args.indexOf("--");
  return args.map((arg, i) => {
    if (end >= 0 && i >= end) return arg;
    const match = /^--([^=]+)=(true|false)$/.exec(arg);
    if (!match?.[1] || specs[match[1]]?.type !== "boolean") return arg;
    return match[2] === "true" ? `--${match[1]}` : `--no-${match[1]}`;
  });
}

/**
 * Says which argument parseArgs refused, from its own tokens rather than its English message: the lenient parse
 * tokenizes exactly as the strict one, without throwing.
 */
function describeRefusal(args: string[], specs: FlagSpecs, err: NodeJS.ErrnoException): string {
  const { tokens } = parseArgs({
    args,
    options: parserOptions(specs),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const negated = token.name.startsWith("no-") ? specs[token.name.slice(3)] : undefined;
    const spec = specs[token.name] ?? (negated?.type === "boolean" ? negated : undefined);
    if (!spec) return `unknown flag ${token.rawName}`;
    if (spec.type === "boolean" && token.inlineValue) return `flag ${token.rawName} takes no value but =true or =false`;
    if (spec.type === "string" && token.value === undefined) return `flag ${token.rawName} needs a value`;
    if (spec.type === "string" && !token.inlineValue && token.value?.startsWith("-")) {
      // parseArgs calls a value that starts with a dash ambiguous: it is more likely the next flag.
      return `flag ${token.rawName} needs a value (one that starts with "-" is written --${token.name}=-VALUE)`;
    }
  }
  return err.message;
}

/** Parses a command's arguments; throws UsageError on an unknown flag, a missing value or a value on a boolean. */
export function parseFlags(args: string[], specs: FlagSpecs): ParsedFlags {
  const normalized = goBooleans(args, specs);
  try {
    const { values, positionals } = parseArgs({
      args: normalized,
      options: parserOptions(specs),
      strict: true,
      allowPositionals: true,
      allowNegative: true,
    });
    return new ParsedFlags(values, positionals);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (typeof e.code === "string" && e.code.startsWith("ERR_PARSE_ARGS_")) {
      throw new UsageError(describeRefusal(normalized, specs, e));
    }
    throw err;
  }
}

/** The flags section of a help text: one line per flag, aligned, in the order given. */
export function formatFlags(specs: FlagSpecs): string {
  const names = Object.entries(specs).map(([name, spec]) => {
    const long = `--${name}${spec.value ? ` ${spec.value}` : ""}`;
    return [spec.short ? `-${spec.short}, ${long}` : `    ${long}`, spec] as const;
  });
  const width = Math.max(...names.map(([n]) => n.length));
  return names
    .map(([n, spec]) => `  ${n.padEnd(width)}   ${spec.help}${spec.multiple ? " (repeatable)" : ""}`)
    .join("\n");
}
