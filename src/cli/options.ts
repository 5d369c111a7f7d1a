// What every command shares: option parsers (each refusing bad values with the option's name), the common
// options, progress, printing for people or as JSON, and the prompts an export is checked on.
import { Command, InvalidArgumentError } from "commander";
import { initBackend, type BackendName } from "../backend.ts";
import { loadInstructionSource, type EvaluationSplitSource } from "../data/instructions.ts";
import { loadModel, parseWeightPrecision, type WeightPrecision } from "../load.ts";
import { dataFile, DEMO_MODEL_DIR } from "../paths.ts";
import type { Verification } from "../export/verify.ts";
import { GGUF_TYPES } from "../export/gguf/export.ts";
import { LLAMA_CPP_QUANTS } from "../export/gguf/quantize.ts";
import { progressReporter } from "./progress.ts";
import type { StrengthKernel } from "../pipeline/orthogonalize.ts";
import { loadDirections, checkDirectionsFit, directionKey } from "../pipeline/directions.ts";
import { readStudy } from "../search/study.ts";
import { trialVariants } from "../search/search.ts";
import { editFromRecord, resolveEdit, type EditVariants, type ResolvedEdit } from "../pipeline/edit.ts";
import { readFile } from "node:fs/promises";

/** The edit options `apply` and `run` share: the direction's variants and the edit's. */
export function editOptions(cmd: Command, what: { directionIndex: boolean } = { directionIndex: true }): Command {
  cmd
    .option("--layers <first:last>", "edit only these layers' o_proj and down_proj", layerRange)
    .option("--skip-embedding", "leave the token embedding unchanged")
    .option("--scale <s>", "fraction of the component to remove", fraction, 1)
    .option(
      "--naive",
      "sandwich-norm models (Gemma 2/3): edit o_proj and down_proj against the direction itself, ignoring the post-norms (for comparison)",
    );
  if (what.directionIndex)
    cmd.option(
      "--direction-index <x>",
      "heretic's fractional direction index: unit((1-f) r_floor(x) + f r_floor(x)+1) of the layers' directions at --key's hook and " +
        "token offset (default resid_pre@-1)",
      nonNegative("--direction-index"),
    );
  return cmd
    .option("--project-against-harmless", "grimjim's projected direction: remove from r its component along the harmless mean")
    .option("--biproject", "grimjim's biprojection: edit each layer against r projected against that layer's harmless mean at resid_pre")
    .option(
      "--kernel <component=MAX,POS,MIN,DIST>",
      "heretic's per-layer strength for attn (o_proj) or mlp (down_proj): MAX at layer POS, falling linearly to MIN at DIST layers " +
        "away, layers beyond not edited (repeat for both)",
      kernelSpec,
    )
    .option("--norm-preserving", "grimjim's norm-preserving edit: every edited column (and embedding row) keeps its length");
}

export interface EditFlags {
  key?: string;
  layers?: [number, number];
  skipEmbedding?: boolean;
  scale?: number;
  naive?: boolean;
  directionIndex?: number;
  projectAgainstHarmless?: boolean;
  biproject?: boolean;
  kernel?: { attention?: StrengthKernel; mlp?: StrengthKernel };
  normPreserving?: boolean;
}

/** The direction and the edit options the flags ask for, from a directions file, checked against the model's shape. */
export async function editFromFlags(file: string, flags: EditFlags, model: { nLayers: number; dModel: number }): Promise<ResolvedEdit> {
  const directions = await loadDirections(file);
  checkDirectionsFit(directions, model, file);
  const edit = resolveEdit(directions, { key: flags.key, index: flags.directionIndex }, variantsOf(flags), model.nLayers, file);
  return { ...edit, record: { ...edit.record, directionsFile: file } };
}

/**
 * The flags an export's abliterate.json stands for (`apply --reproduce`); a variant flag given as well is refused,
 * since the record already decides it.
 */
export async function flagsFromRecord(
  file: string,
  directions: string | undefined,
  command: Command,
): Promise<EditFlags & { directions: string }> {
  const given = EDIT_FLAGS.filter((name) => command.getOptionValueSource(name) === "cli");
  const flag = (name: string) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (given.length > 0) throw new Error(`--reproduce takes the edit from ${file}; leave out ${given.map(flag).join(", ")}`);
  let record: unknown;
  try {
    record = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new Error(`${file}: cannot read the edit record (${(error as Error).message})`);
  }
  const { directionsFile, choice, variants } = editFromRecord(record, file);
  const from = directions ?? directionsFile;
  if (!from) throw new Error(`${file} names no directions file: give one with -d`);
  return {
    directions: from,
    key: choice.key,
    directionIndex: choice.index,
    layers: variants.layers as [number, number] | undefined,
    skipEmbedding: variants.skipEmbedding,
    scale: variants.scale,
    naive: variants.naive,
    kernel: variants.kernels,
    normPreserving: variants.normPreserving,
    biproject: variants.biproject,
    projectAgainstHarmless: variants.projectAgainstHarmless,
  };
}

/** The option names (camelCase) that choose the direction or the edit. */
const EDIT_FLAGS = [
  "key",
  "layers",
  "skipEmbedding",
  "scale",
  "naive",
  "directionIndex",
  "projectAgainstHarmless",
  "biproject",
  "kernel",
  "normPreserving",
] as const;

/**
 * The edit flags of trial `trial` of a search's study file (`apply --study FILE --trial N`): its direction index
 * and hook, kernels and switches, the directions file the study names (unless given) and the study's model.
 */
export async function flagsFromTrial(
  file: string,
  trial: number,
  directions: string | undefined,
  command: Command,
): Promise<EditFlags & { directions: string; model: string; trialRecord: Record<string, unknown> }> {
  const given = EDIT_FLAGS.filter((name) => command.getOptionValueSource(name) === "cli");
  const flag = (name: string) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (given.length > 0) throw new Error(`--study takes the edit from trial ${trial} of ${file}; leave out ${given.map(flag).join(", ")}`);
  const study = await readStudy(file);
  const found = study.trials.find((t) => t.trial === trial);
  if (!found)
    throw new Error(
      `${file} has no trial ${trial}: it holds trials 0 to ${study.trials.length - 1}${study.trials.length === 0 ? " (none yet)" : ""}`,
    );
  const { index, hook, variants } = trialVariants(found.params);
  return {
    directions: directions ?? study.header.directionsFile,
    model: study.header.model,
    key: directionKey({ layer: Math.floor(index), hook, tokenOffset: study.header.tokenOffset }),
    directionIndex: index,
    kernel: variants.kernels,
    normPreserving: variants.normPreserving,
    biproject: variants.biproject,
    projectAgainstHarmless: variants.projectAgainstHarmless,
    trialRecord: { study: file, trial, refusal: found.refusal, kl: found.kl, params: found.params },
  };
}

/** The edit variants the flags ask for. */
export const variantsOf = (flags: EditFlags): EditVariants => ({
  layers: flags.layers,
  skipEmbedding: flags.skipEmbedding,
  scale: flags.scale,
  naive: flags.naive,
  kernels: flags.kernel,
  normPreserving: flags.normPreserving,
  projectAgainstHarmless: flags.projectAgainstHarmless,
  biproject: flags.biproject,
});

export const int = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
  return n;
};
export const fraction = (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`must be a number between 0 and 1, got "${value}"`);
  return n;
};
export const nonNegative = (name: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !(n >= 0) || !Number.isFinite(n))
    throw new InvalidArgumentError(`${name} must be a number >= 0, got "${value}"`);
  return n;
};
export const seedValue = (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0 || n > 2 ** 32 - 1)
    throw new InvalidArgumentError(`--seed must be an integer between 0 and 4294967295, got "${value}"`);
  return n;
};
export const layerRange = (value: string): [number, number] => {
  const m = /^(\d+):(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`expected FIRST:LAST (inclusive), e.g. 2:5, got "${value}"`);
  return [Number(m[1]), Number(m[2])];
};
/**
 * `--kernel COMPONENT=MAX,POS,MIN,DIST` (COMPONENT attn or mlp), repeatable: heretic's strength kernel of one
 * component (see StrengthKernel); the layer bound of POS is checked against the model at use.
 */
export const kernelSpec = (value: string, previous: Record<string, StrengthKernel> = {}): Record<string, StrengthKernel> => {
  const m = /^(attn|mlp)=([^,]+),([^,]+),([^,]+),([^,]+)$/.exec(value.trim());
  const numbers = m ? m.slice(2).map((p) => (p.trim() === "" ? NaN : Number(p))) : [];
  if (!m || !numbers.every((n) => Number.isFinite(n) && n >= 0))
    throw new InvalidArgumentError(
      `expected attn=MAX,POS,MIN,DIST or mlp=MAX,POS,MIN,DIST (four finite numbers >= 0: the strength at layer POS, falling ` +
        `linearly to MIN at DIST layers away, 0 beyond), got "${value}"`,
    );
  const [maxWeight, maxWeightPosition, minWeight, minWeightDistance] = numbers;
  return { ...previous, [m[1] === "attn" ? "attention" : "mlp"]: { maxWeight, maxWeightPosition, minWeight, minWeightDistance } };
};
/**
 * `--eval-split NAME=HARMFUL,HARMLESS`, repeatable: a further evaluation split of the run, its harmful and
 * harmless instruction files or Hub datasets (the files are read, and the name checked, when the run starts).
 */
export const evaluationSplitSpec = (value: string, previous: EvaluationSplitSource[] = []): EvaluationSplitSource[] => {
  const m = /^([\w.-]+)=([^,]+),([^,]+)$/.exec(value.trim());
  if (!m)
    throw new InvalidArgumentError(
      `expected NAME=HARMFUL,HARMLESS (a name of letters, digits, ".", "_" or "-", then two instruction files or Hub ` +
        `datasets), got "${value}"`,
    );
  return [...previous, { name: m[1], harmful: m[2].trim(), harmless: m[3].trim() }];
};
export const tokenOffsetList = (value: string) =>
  value.split(",").map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n >= 0)
      throw new InvalidArgumentError(`token offsets count from the end: negative integers such as -1 or -3,-2,-1; got "${value}"`);
    return n;
  });
export const tokenIdList = (value: string) =>
  value.split(",").map((p) => {
    const n = Number(p);
    if (p.trim() === "" || !Number.isInteger(n) || n < 0)
      throw new InvalidArgumentError(`expected comma-separated token ids (non-negative integers), got "${value}"`);
    return n;
  });
/**
 * An output path as given: refused when it holds a byte that is not UTF-8 (the shell passed it, Node shows it as
 * U+FFFD), since the file would be written under another name than the one typed.
 */
export const outputPath = (value: string) => {
  if (value.includes("\uFFFD"))
    throw new InvalidArgumentError(
      `the path ${JSON.stringify(value)} holds a byte that is not UTF-8 (shown as \uFFFD); it would be written under another name`,
    );
  return value;
};

/** `--judge-verdicts REFUSAL,COMPLIANCE`: the judge's two verdict words. */
export const verdictPair = (value: string) => {
  const words = value.split(",");
  if (words.length !== 2 || words.some((w) => w.trim() === ""))
    throw new InvalidArgumentError(`expected REFUSAL,COMPLIANCE (two verdict words, e.g. Yes,No), got "${value}"`);
  return { refusal: words[0].trim(), compliance: words[1].trim() };
};

export const substringList = (value: string) => {
  const list = value.split("|");
  // An empty substring is found in every answer: every answer would count as a refusal.
  if (list.some((s) => s.trim() === ""))
    throw new InvalidArgumentError(`refusal substrings must not be empty (an empty one matches every answer), got "${value}"`);
  return list;
};
export const positive = (name: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !(n > 0) || !Number.isFinite(n))
    throw new InvalidArgumentError(`${name} must be a number > 0, got "${value}"`);
  return n;
};
export const number = (name: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a finite number, got "${value}"`);
  return n;
};

/** The paper's selection filters, settable on `run` and `select`. */
export function selectionFilterOptions(cmd: Command): Command {
  return cmd
    .option("--kl-threshold <x>", "discard candidates whose harmless KL exceeds this", nonNegative("--kl-threshold"), 0.1)
    .option("--induce-threshold <x>", "discard candidates whose induce score is below this", number("--induce-threshold"), 0)
    .option("--prune-layers <fraction>", "discard candidates in this last fraction of the layers", fraction, 0.2)
    .option(
      "--exhaustive",
      "score every candidate in full, as the paper does (default: stop once the best that pass are known; same choice)",
    )
    .option("--max-candidates <n>", "score at most this many candidates, those of largest norm", int("--max-candidates"))
    .option(
      "--refusal-epsilon <e>",
      "epsilon inside the refusal score's logarithms, log(p + e) - log(1 - p + e) (default: 1e-8, the paper's code, in select's " +
        "paper mode; else 0, the exact log-odds)",
      nonNegative("--refusal-epsilon"),
      0,
    );
}

/** The paper's filtering of the instruction sets by refusal score, on `run` and `directions`. */
export const filterOption = [
  "--filter-by-refusal-score",
  "keep only the harmful instructions the model refuses (refusal score > 0) and the harmless ones it answers (< 0) before taking " +
    "the means, as the paper does",
] as const;
export const filtersOf = (opts: { klThreshold: number; induceThreshold: number; pruneLayers: number }) => ({
  klThreshold: opts.klThreshold,
  induceThreshold: opts.induceThreshold,
  pruneLayerFraction: opts.pruneLayers,
});

export interface Common {
  model: string;
  backend?: BackendName;
  weightPrecision?: WeightPrecision;
  json?: boolean;
  batchSize: number;
  column?: string;
}

/** The options every command takes; `data` adds those of commands that read instruction files in batches. */
export function common(cmd: Command, data = true): Command {
  cmd
    .option("-m, --model <dir>", "Hugging Face checkpoint folder (default: the embedded demo model)", DEMO_MODEL_DIR)
    .option("--backend <name>", "tensor backend: node-gpu, node, wasm or cpu (default: the fastest that loads)")
    .option(
      "--weight-precision <p>",
      "stored or float32: on the native BLAS path a BF16/F16 checkpoint's matrices are kept in their 16 bits " +
        "(stored, the default there: half the memory, faster decoding) or converted to float32 (faster prefill); " +
        "also ABLITERATE_WEIGHT_PRECISION",
      precisionOption,
    );
  if (data)
    cmd
      .option("--batch-size <n>", "prompts per forward pass", int("--batch-size"), 16)
      .option("--column <name>", "column or field holding the instruction in data files (default: text, instruction, prompt or goal)");
  return cmd.option("--json", "print the result as JSON on stdout, for scripts");
}

function precisionOption(value: string): WeightPrecision {
  try {
    return parseWeightPrecision(value, "--weight-precision");
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

export async function prepare(opts: Common) {
  await initBackend({ backend: opts.backend });
  // Every model the command loads (the original, references, the export it checks) is held so.
  if (opts.weightPrecision) process.env.ABLITERATE_WEIGHT_PRECISION = opts.weightPrecision;
  return progressReporter();
}

export const download = (bar: ReturnType<typeof progressReporter>) => (file: string, done: number, total: number | undefined) =>
  bar.update(`download ${file}`, done, total ?? done);

/** Load a model folder or Hub id, showing download progress. */
export function openModel(source: string, bar: ReturnType<typeof progressReporter>) {
  return loadModel(source, { onDownload: download(bar) });
}

/** A score, or "-" where it was not computed. */
export const fmt = (x: number, digits: number) => (Number.isNaN(x) ? "-" : x.toFixed(digits));

export function verificationLine(v: Verification): string {
  const writes = v.writeComponent !== undefined ? `, largest write along the direction ${v.writeComponent.toExponential(1)}` : "";
  return (
    `verified on ${v.prompts} prompts against the ${v.reference}: max |logit diff| ${v.maxAbsLogitDiff.toExponential(2)}, same ` +
    `greedy answers: ${v.sameGreedyAnswers}${writes}${v.passed ? "" : " (FAILED)"}`
  );
}

export const GGUF_TYPE_HELP =
  `${GGUF_TYPES.join(", ")} (written here) or ${Object.keys(LLAMA_CPP_QUANTS).join(", ")} (llama.cpp's own ` + `quantiser)`;
export const ggufType = (value: string) => {
  if (!(GGUF_TYPES as readonly string[]).includes(value) && !Object.hasOwn(LLAMA_CPP_QUANTS, value))
    throw new InvalidArgumentError(`expected one of ${GGUF_TYPE_HELP}, got "${value}"`);
  return value;
};
/** apply's formats: a checkpoint (safetensors, gguf) or the plain edit as a rank-1 LoRA adapter (peft). */
/** A `--format` parser that takes one of `formats` ("expected a, b or c, got ..." otherwise). */
const formatOf =
  (...formats: string[]) =>
  (value: string) => {
    if (!formats.includes(value))
      throw new InvalidArgumentError(`expected ${formats.slice(0, -1).join(", ")} or ${formats.at(-1)}, got "${value}"`);
    return value;
  };
export const applyFormat = formatOf("safetensors", "gguf", "peft");
export const runFormat = formatOf("safetensors", "peft");

/** The prompts `--verify` checks an export on: the first 4 harmful and 4 harmless test instructions. */
export async function verificationPrompts(): Promise<string[]> {
  return [
    ...(await loadInstructionSource(dataFile("harmful", "test"), { limit: 4 })),
    ...(await loadInstructionSource(dataFile("harmless", "test"), { limit: 4 })),
  ];
}

export function print(opts: { json?: boolean }, human: string, json: unknown): void {
  if (opts.json) process.stdout.write(JSON.stringify(json, null, 2) + "\n");
  else console.log(human);
}
