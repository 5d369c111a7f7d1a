// Every numeric option of every command, fed the values that break programs: not-a-number, infinities, a number
// past float64, text, nothing, a negative, zero and a huge count (#23: the property test of numeric options).
// Non-finite values and text are refused by every parser, naming the option; negatives, zero and huge values are
// refused or accepted as the table below says, with the reason an accepted one is safe. An option added without
// a row here fails the test, so each new one is decided.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidArgumentError, type Option } from "commander";
import { buildProgram } from "../src/cli/program.ts";

type Verdict = "refused" | "accepted";
interface Policy {
  negative: Verdict;
  zero: Verdict;
  huge: Verdict;
  /** Why the accepted values are safe: where they are bounded or checked later. */
  why: string;
}

const count = (why: string): Policy => ({ negative: "refused", zero: "refused", huge: "accepted", why });
const positiveReal = (why: string): Policy => ({ negative: "refused", zero: "refused", huge: "accepted", why });
const FRACTION: Policy = { negative: "refused", zero: "accepted", huge: "refused", why: "a fraction in [0, 1]" };

/** By long flag: the same flag parses alike in every command. */
const POLICIES: Record<string, Policy> = {
  "--batch-size": count("a batch larger than the prompts is the prompts; run checks memory before loading"),
  "--n": count("at most the rows the data file has are read"),
  "--n-train": count("at most the rows the data file has are read"),
  "--n-val": count("at most the rows the data file has are read"),
  "--n-test": count("at most the rows the data file has are read"),
  "--n-pairs": count("at most the rows the pairs file has are read"),
  "--n-instructions": count("at most the rows the data file has are read"),
  "--max-candidates": count("at most every candidate is scored"),
  "--top-k": count("at most every candidate is evaluated"),
  "--max-new-tokens": count("generation stops at the model's context length"),
  "--eval-new-tokens": count("generation stops at the model's context length"),
  "--rank": count("checked against the model's weight shapes before any model loads (item 11)"),
  "--epochs": count("training runs as asked, with progress and the first non-finite step stopping it"),
  "--micro-batch": count("a batch larger than the pairs is the pairs"),
  "--grad-accum": count("a step accumulating more passes than there are is one step"),
  "--alpha": positiveReal("a LoRA scale; training stops at the first non-finite loss or gradient (item 1)"),
  "--beta": positiveReal("DPO's temperature; training stops at the first non-finite loss or gradient (item 1)"),
  "--lr": positiveReal("training stops at the first non-finite loss or gradient (item 1)"),
  "--kl-threshold": { negative: "refused", zero: "accepted", huge: "accepted", why: "a KL is >= 0; huge keeps every candidate" },
  "--induce-threshold": { negative: "accepted", zero: "accepted", huge: "accepted", why: "a log-odds threshold: any finite value" },
  "--refusal-epsilon": { negative: "refused", zero: "accepted", huge: "accepted", why: "0 is the exact log-odds, the default" },
  "--temperature": { negative: "refused", zero: "accepted", huge: "accepted", why: "0 is greedy; huge samples uniformly" },
  "--seed": { negative: "refused", zero: "accepted", huge: "refused", why: "a 32-bit seed" },
  "--prune-layers": FRACTION,
  "--scale": FRACTION,
  "--dropout": FRACTION,
  "--warmup": FRACTION,
  "--token-offsets": { negative: "accepted", zero: "refused", huge: "refused", why: "offsets count back from the prompt's end" },
  "--refusal-tokens": { negative: "refused", zero: "accepted", huge: "accepted", why: "checked against the vocabulary at use" },
  "--direction-index": {
    negative: "refused",
    zero: "accepted",
    huge: "accepted",
    why: "a layer index, checked against the layers the directions file holds at use",
  },
  "--kernel": {
    negative: "refused",
    zero: "refused",
    huge: "refused",
    why: "COMPONENT=MAX,POS,MIN,DIST: a bare number is no kernel; POS is checked against the model's layers at use",
  },
  "--layers": { negative: "refused", zero: "accepted", huge: "accepted", why: "FIRST:LAST, checked against the model's layers at use" },
  "--trials": count("a long search shows each trial and resumes from its study file"),
  "--startup-trials": { negative: "refused", zero: "accepted", huge: "accepted", why: "0 starts TPE at once; huge is random search" },
  "--n-harmful": count("at most the rows the data file has are read"),
  "--n-harmless": count("at most the rows the data file has are read"),
  "--kl-tokens": count("the original's answers stop at its end token or context length"),
  "--token-offset": { negative: "accepted", zero: "refused", huge: "refused", why: "an offset counts back from the prompt's end" },
  "--trial": { negative: "refused", zero: "accepted", huge: "accepted", why: "checked against the trials the study holds" },
};

/** Options that take text, not numbers: names, paths, choices. */
const TEXT_OPTIONS = new Set([
  "--out",
  "--format",
  "--type",
  "--refusal-substrings",
  "--detector",
  "--kernel-ranges",
  "--reference",
  "--judge-verdicts",
  "--mode",
  "--eval-split",
  "--weight-precision",
]);

const NOT_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "abc", "", " ", "1,NaN", "0x"];

/** The value to give for a case, in the option's own syntax. */
function valueFor(flag: string, kind: "negative" | "zero" | "huge"): string {
  const n = { negative: "-1", zero: "0", huge: "1e12" }[kind];
  if (flag !== "--layers") return n;
  return { negative: "-1:2", zero: "0:0", huge: "999999999999:999999999999" }[kind];
}

/** Whether every number in a parsed value is finite. */
const finite = (v: unknown): boolean => (Array.isArray(v) ? v.every(finite) : typeof v === "number" && Number.isFinite(v));

function parse(option: Option, value: string): { refused: string } | { value: unknown } {
  try {
    return { value: (option as Option & { parseArg: (v: string, previous: unknown) => unknown }).parseArg(value, undefined) };
  } catch (error) {
    assert.ok(error instanceof InvalidArgumentError, `${option.long} ${JSON.stringify(value)}: threw ${String(error)}`);
    return { refused: (error as Error).message };
  }
}

describe("every numeric option of every command refuses what is not a usable number (#23)", () => {
  const program = buildProgram();
  for (const command of program.commands) {
    const options = command.options.filter((o) => (o as Option & { parseArg?: unknown }).parseArg && !TEXT_OPTIONS.has(o.long!));
    it(`${command.name()}: ${options.map((o) => o.long).join(", ")}`, () => {
      for (const option of options) {
        const flag = option.long!;
        const policy = POLICIES[flag];
        assert.ok(policy, `${command.name()} ${flag} has a parser but no row in POLICIES: decide what it accepts`);
        for (const value of NOT_NUMBERS) {
          const outcome = parse(option, value);
          assert.ok("refused" in outcome, `${command.name()} ${flag} ${JSON.stringify(value)} was accepted as ${JSON.stringify(outcome)}`);
          // Commander puts the flag before the message; the message itself says what is expected.
          assert.match(outcome.refused, /must|expected|got/, `${flag}: ${outcome.refused}`);
        }
        for (const kind of ["negative", "zero", "huge"] as const) {
          const value = valueFor(flag, kind);
          const outcome = parse(option, value);
          const verdict: Verdict = "refused" in outcome ? "refused" : "accepted";
          assert.equal(verdict, policy[kind], `${command.name()} ${flag} ${value} (${kind}): ${JSON.stringify(outcome)}`);
          if ("value" in outcome) assert.ok(finite(outcome.value), `${flag} ${value} parsed to ${JSON.stringify(outcome.value)}`);
        }
      }
    });
  }
});
