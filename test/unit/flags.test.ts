import assert from "node:assert/strict";
import { formatFlags, parseFlags, UsageError, type FlagSpecs } from "../../src/cli/flags.js";

const SPECS: FlagSpecs = {
  output: { type: "string", short: "o", value: "FORMAT", help: "the format" },
  namespace: { type: "string", short: "n", multiple: true, value: "NS", help: "a namespace" },
  "leader-elect": { type: "boolean", help: "elect" },
  help: { type: "boolean", short: "h", help: "show this help" },
};

function refusal(args: string[]): string {
  try {
    parseFlags(args, SPECS);
  } catch (err) {
    assert.ok(err instanceof UsageError, `a UsageError, not ${String(err)}`);
    return err.message;
  }
  assert.fail(`${args.join(" ")} was accepted`);
}

describe("CLI flags (node:util parseArgs)", () => {
  it("takes --name value, --name=value and -x value, and collects repeatable flags in order", () => {
    const flags = parseFlags(["-o", "json", "--namespace=a", "-n", "b", "--namespace", "c"], SPECS);
    assert.equal(flags.string("output"), "json");
    assert.deepEqual(flags.list("namespace"), ["a", "b", "c"]);
    assert.equal(flags.boolean("leader-elect"), false);
    assert.deepEqual(flags.positionals, []);
  });

  it("takes a boolean as Go's flag package writes it, =true or =false, as well as --no-name", () => {
    assert.equal(parseFlags(["--leader-elect"], SPECS).boolean("leader-elect"), true);
    assert.equal(parseFlags(["--leader-elect=true"], SPECS).boolean("leader-elect"), true);
    assert.equal(parseFlags(["--leader-elect", "--leader-elect=false"], SPECS).boolean("leader-elect"), false);
    assert.equal(parseFlags(["--leader-elect", "--no-leader-elect"], SPECS).boolean("leader-elect"), false);
    // Only a boolean is rewritten: a string flag keeps "false" as its value.
    assert.equal(parseFlags(["--output=false"], SPECS).string("output"), "false");
  });

  it("a boolean that is on by default (--metrics-secure) is off only when turned off", () => {
    assert.equal(parseFlags([], SPECS).booleanOr("leader-elect", true), true);
    assert.equal(parseFlags(["--leader-elect"], SPECS).booleanOr("leader-elect", true), true);
    assert.equal(parseFlags(["--leader-elect=false"], SPECS).booleanOr("leader-elect", true), false);
    assert.equal(parseFlags(["--no-leader-elect"], SPECS).booleanOr("leader-elect", true), false);
    assert.equal(parseFlags([], SPECS).booleanOr("leader-elect", false), false);
  });

  it("ends the flags at --: what follows is positional, even when it looks like a flag", () => {
    const flags = parseFlags(["-h", "--", "--leader-elect=false", "--bogus"], SPECS);
    assert.equal(flags.boolean("help"), true);
    assert.equal(flags.boolean("leader-elect"), false);
    assert.deepEqual(flags.positionals, ["--leader-elect=false", "--bogus"]);
  });

  it("names the flag at fault: unknown, long or short, with or without a value", () => {
    assert.equal(refusal(["-o", "json", "--bogus"]), "unknown flag --bogus");
    assert.equal(refusal(["--bogus=1"]), "unknown flag --bogus");
    assert.equal(refusal(["-x"]), "unknown flag -x");
    assert.equal(refusal(["--no-output"]), "unknown flag --no-output");
  });

  it("names a flag without its value, a value that looks like the next flag, and a value on a boolean", () => {
    assert.equal(refusal(["--output"]), "flag --output needs a value");
    assert.equal(refusal(["-n", "a", "-o"]), "flag -o needs a value");
    assert.match(
      refusal(["-o", "-n", "a"]),
      /^flag -o needs a value \(one that starts with "-" is written --output=-VALUE\)$/,
    );
    assert.equal(refusal(["--leader-elect=yes"]), "flag --leader-elect takes no value but =true or =false");
  });

  it("lists every flag in the help, aligned, with its short form and placeholder", () => {
    const lines = formatFlags(SPECS).split("\n");
    assert.deepEqual(lines, [
      "  -o, --output FORMAT   the format",
      "  -n, --namespace NS    a namespace (repeatable)",
      "      --leader-elect    elect",
      "  -h, --help            show this help",
    ]);
  });
});
