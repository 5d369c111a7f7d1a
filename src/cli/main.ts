// The `abliterate` command line: `run` for the whole method, one subcommand per stage.
import { Command, InvalidArgumentError } from "commander";
import { initBackend, type BackendName } from "../backend.ts";
import { loadInstructionSource } from "../data/instructions.ts";
import { directionAblationHooks, withHooks } from "../interventions.ts";
import { loadModel, openCheckpoint } from "../load.ts";
import { dataFile, DEMO_MODEL_DIR } from "../paths.ts";
import { collectMeanActivations } from "../pipeline/activations.ts";
import { computeDirections, directionKey, loadDirections, pickDirection, saveDirections, usableDirections } from "../pipeline/directions.ts";
import { answerAgreement, evaluateRefusal, generateCompletions } from "../pipeline/evaluate.ts";
import { exportAbliterated } from "../export/safetensors.ts";
import { runPipeline } from "../pipeline/run.ts";
import { verifyExport, type Verification } from "../export/verify.ts";
import { refusalTokensFor } from "../pipeline/scores.ts";
import { filterByRefusalScore, scoreCandidates } from "../pipeline/select.ts";
import { exists } from "../files.ts";
import { progressReporter } from "./progress.ts";
import { runHealing } from "../heal/run.ts";
import { join } from "node:path";
import { exportGguf, GGUF_TYPES, type GgufFileType } from "../export/gguf/export.ts";
import { LLAMA_CPP_QUANTS, type LlamaCppQuant } from "../export/gguf/quantize.ts";
import { verifyGguf, type GgufVerification } from "../export/gguf/verify.ts";
import type { OrthogonalizeOptions } from "../pipeline/orthogonalize.ts";
import type { UnitVector } from "../projection.ts";

const int = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
  return n;
};
const fraction = (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !(n >= 0 && n <= 1)) throw new InvalidArgumentError(`must be a number between 0 and 1, got "${value}"`);
  return n;
};
const nonNegative = (name: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !(n >= 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number >= 0, got "${value}"`);
  return n;
};
const seedValue = (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < 0 || n > 2 ** 32 - 1) throw new InvalidArgumentError(`--seed must be an integer between 0 and 4294967295, got "${value}"`);
  return n;
};
const layerRange = (value: string): [number, number] => {
  const m = /^(\d+):(\d+)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`expected FIRST:LAST (inclusive), e.g. 2:5, got "${value}"`);
  return [Number(m[1]), Number(m[2])];
};
const tokenOffsetList = (value: string) =>
  value.split(",").map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n >= 0) throw new InvalidArgumentError(`token offsets count from the end: negative integers such as -1 or -3,-2,-1; got "${value}"`);
    return n;
  });
const tokenIdList = (value: string) =>
  value.split(",").map((p) => {
    const n = Number(p);
    if (p.trim() === "" || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected comma-separated token ids (non-negative integers), got "${value}"`);
    return n;
  });
const substringList = (value: string) => value.split("|");
const number = (name: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || Number.isNaN(n)) throw new InvalidArgumentError(`${name} must be a number, got "${value}"`);
  return n;
};

/** The paper's selection filters, settable on `run` and `select`. */
function selectionFilterOptions(cmd: Command): Command {
  return cmd
    .option("--kl-threshold <x>", "discard candidates whose harmless KL exceeds this", number("--kl-threshold"), 0.1)
    .option("--induce-threshold <x>", "discard candidates whose induce score is below this", number("--induce-threshold"), 0)
    .option("--prune-layers <fraction>", "discard candidates in this last fraction of the layers", fraction, 0.2)
    .option("--exhaustive", "score every candidate in full, as the paper does (default: stop once the best that pass are known; same choice)")
    .option("--max-candidates <n>", "score at most this many candidates, those of largest norm", int("--max-candidates"))
    .option("--refusal-epsilon <e>", "epsilon inside the refusal score's logarithms, log(p + e) - log(1 - p + e) (the paper's code uses 1e-8; default 0, the exact log-odds)", nonNegative("--refusal-epsilon"), 0);
}

/** The paper's filtering of the instruction sets by refusal score, on `run` and `directions`. */
const filterOption = ["--filter-by-refusal-score", "keep only the harmful instructions the model refuses (refusal score > 0) and the harmless ones it answers (< 0) before taking the means, as the paper does"] as const;
const filtersOf = (opts: { klThreshold: number; induceThreshold: number; pruneLayers: number }) => ({ klThreshold: opts.klThreshold, induceThreshold: opts.induceThreshold, pruneLayerFraction: opts.pruneLayers });

interface Common {
  model: string;
  backend?: BackendName;
  json?: boolean;
  batchSize: number;
  column?: string;
}

const program = new Command()
  .name("abliterate")
  .description("Find the refusal direction of a chat model and project it out of the weights (Arditi et al. 2024; Labonne 2024).")
  .showHelpAfterError();

function common(cmd: Command): Command {
  return cmd
    .option("-m, --model <dir>", "Hugging Face checkpoint folder (default: the embedded demo model)", DEMO_MODEL_DIR)
    .option("--backend <name>", "tensor backend: node-gpu, node, wasm or cpu (default: the fastest that loads)")
    .option("--batch-size <n>", "prompts per forward pass", int("--batch-size"), 16)
    .option("--column <name>", "column or field holding the instruction in data files (default: text, instruction, prompt or goal)")
    .option("--json", "print the result as JSON on stdout, for scripts");
}

async function prepare(opts: Common) {
  await initBackend({ backend: opts.backend });
  return progressReporter();
}

const download = (bar: ReturnType<typeof progressReporter>) => (file: string, done: number, total: number | undefined) => bar.update(`download ${file}`, done, total ?? done);

/** Load a model folder or Hub id, showing download progress. */
function openModel(source: string, bar: ReturnType<typeof progressReporter>) {
  return loadModel(source, { onDownload: download(bar) });
}

/** A score, or "-" where it was not computed. */
const fmt = (x: number, digits: number) => (Number.isNaN(x) ? "-" : x.toFixed(digits));

function verificationLine(v: Verification): string {
  const writes = v.writeComponent !== undefined ? `, largest write along the direction ${v.writeComponent.toExponential(1)}` : "";
  return `verified on ${v.prompts} prompts against the ${v.reference}: max |logit diff| ${v.maxAbsLogitDiff.toExponential(2)}, same greedy answers: ${v.sameGreedyAnswers}${writes}${v.passed ? "" : " (FAILED)"}`;
}

const GGUF_TYPE_HELP = `${GGUF_TYPES.join(", ")} (written here) or ${Object.keys(LLAMA_CPP_QUANTS).join(", ")} (llama.cpp's own quantiser)`;
const ggufType = (value: string) => {
  if (!(GGUF_TYPES as readonly string[]).includes(value) && !Object.hasOwn(LLAMA_CPP_QUANTS, value)) throw new InvalidArgumentError(`expected one of ${GGUF_TYPE_HELP}, got "${value}"`);
  return value;
};
const ggufFormat = (value: string) => {
  if (value !== "safetensors" && value !== "gguf") throw new InvalidArgumentError(`expected safetensors or gguf, got "${value}"`);
  return value;
};

/** `export-gguf` and `apply --format gguf`: write the file, report it, and check it with llama.cpp when asked. */
async function ggufCommand(opts: Common & { out: string; type: GgufFileType | LlamaCppQuant; force?: boolean; verify?: boolean }, edit: { unit?: UnitVector; orthogonalize?: OrthogonalizeOptions; provenance?: Record<string, string> }): Promise<void> {
  const bar = progressReporter();
  const checkpoint = await openCheckpoint(opts.model, { onDownload: download(bar) });
  const started = performance.now();
  let result;
  let verification: GgufVerification | undefined;
  try {
    result = await exportGguf(checkpoint, opts.out, { ...edit.orthogonalize, unit: edit.unit, type: opts.type, force: opts.force, provenance: edit.provenance, onProgress: (d, t) => bar.update("gguf", d, t, "tensors") });
    bar.stop();
    if (opts.verify) {
      await initBackend({ backend: opts.backend });
      const source = await loadModel(checkpoint);
      const prompts = await verificationPrompts();
      try {
        verification = await verifyGguf(source, result.file, prompts, { type: GGUF_TYPES.includes(opts.type as GgufFileType) ? (opts.type as GgufFileType) : "q8_0", unit: edit.unit, orthogonalize: edit.orthogonalize });
      } finally {
        source.dispose();
      }
    }
  } finally {
    await checkpoint.close();
  }
  const seconds = (performance.now() - started) / 1000;
  print(opts, [
    `wrote ${result.file}: ${result.tensors} tensors as ${opts.type}${edit.unit ? `, ${result.edited.length} orthogonalised` : ""} (${(result.bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s)`,
    ...result.notes.map((n) => `note: ${n}`),
    ...(verification ? [`checked by llama.cpp on ${verification.prompts} prompts against ${verification.reference}: max |log p diff| ${verification.maxAbsLogProbDiff.toExponential(2)}${verification.tolerance !== undefined ? ` (tolerance ${verification.tolerance})` : ""}, greedy tokens agreeing ${(100 * verification.tokenAgreement).toFixed(1)}%, same chat-template tokens: ${verification.sameChatTokens}${verification.passed ? "" : " (FAILED)"}`] : []),
  ].join("\n"), { ...result, seconds, verification });
  if (verification && !verification.passed) process.exitCode = 1;
}

/** The prompts `--verify` checks an export on: the first 4 harmful and 4 harmless test instructions. */
async function verificationPrompts(): Promise<string[]> {
  return [...(await loadInstructionSource(dataFile("harmful", "test"), { limit: 4 })), ...(await loadInstructionSource(dataFile("harmless", "test"), { limit: 4 }))];
}

function print(opts: { json?: boolean }, human: string, json: unknown): void {
  if (opts.json) process.stdout.write(JSON.stringify(json, null, 2) + "\n");
  else console.log(human);
}

selectionFilterOptions(common(program.command("run")))
  .description("the whole pipeline: collect, directions, select, evaluate, orthogonalise, export, verify; writes a report")
  .option("-o, --out <dir>", "output folder (model/, directions.safetensors, report.json, report.html)", "out")
  .option("--harmful-train <file>").option("--harmless-train <file>")
  .option("--harmful-val <file>").option("--harmless-val <file>")
  .option("--harmful-test <file>").option("--harmless-test <file>")
  .option("--n-train <n>", "instructions per set for the directions", int("--n-train"), 256)
  .option("--n-val <n>", "instructions per set for the selection", int("--n-val"), 32)
  .option("--n-test <n>", "instructions per set for evaluation", int("--n-test"), 64)
  .option("--top-k <n>", "candidates evaluated by generation", int("--top-k"), 3)
  .option("--max-new-tokens <n>", "tokens generated per answer", int("--max-new-tokens"), 24)
  .option("--token-offsets <list>", "token offsets from the end of the prompt, e.g. -1 or -4,-3,-2,-1", tokenOffsetList)
  .option("--refusal-tokens <ids>", "comma-separated token ids for the refusal score (default: the model family's refusal openings, e.g. \"I\")", tokenIdList)
  .option("--refusal-substrings <list>", "|-separated substrings that mark a refusal (default: the paper's list)", substringList)
  .option(...filterOption)
  .option("--compliance-reference <model>", "a model that complies with harmful requests (e.g. the source model before safety tuning): coherent compliance is the share of harmful test answers after abliteration that begin as its answers (default for the demo model: models/demo-base)")
  .option("-f, --force", "replace a non-empty output model folder")
  .action(async (opts) => {
    const bar = await prepare(opts);
    const started = performance.now();
    const report = await runPipeline({
      complianceReference: opts.complianceReference,
      model: opts.model, outDir: opts.out, batchSize: opts.batchSize, column: opts.column,
      harmfulTrain: opts.harmfulTrain, harmlessTrain: opts.harmlessTrain, harmfulVal: opts.harmfulVal, harmlessVal: opts.harmlessVal, harmfulTest: opts.harmfulTest, harmlessTest: opts.harmlessTest,
      nTrain: opts.nTrain, nVal: opts.nVal, nTest: opts.nTest, topK: opts.topK, maxNewTokens: opts.maxNewTokens, tokenOffsets: opts.tokenOffsets, force: opts.force,
      refusalTokens: opts.refusalTokens, refusalSubstrings: opts.refusalSubstrings, selectionFilters: filtersOf(opts), exhaustiveSelection: opts.exhaustive, maxCandidates: opts.maxCandidates,
      refusalEpsilon: opts.refusalEpsilon, filterByRefusalScore: opts.filterByRefusalScore,
      onProgress: bar.update, log: opts.json ? undefined : (line) => console.error(line),
    });
    bar.stop();
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    if (!report.verify.passed) process.exitCode = 1;
    print(opts, [
      `chosen direction: layer ${report.chosen.layer}, ${report.chosen.hook} (${report.chosen.key})`,
      `harmful refusal (test): ${pct(report.before.harmfulRefusalRate)} before -> ${pct(report.after.harmfulRefusalRate)} after`,
      `harmless refusal (test): ${pct(report.before.harmlessRefusalRate)} before -> ${pct(report.after.harmlessRefusalRate)} after`,
      ...(report.agreement.coherentCompliance ? [`coherent compliance (harmful, test): ${pct(report.agreement.coherentCompliance.firstTokens)} of answers begin as the compliant reference's (first ${report.agreement.coherentCompliance.k} tokens), ${pct(report.agreement.coherentCompliance.exact)} equal it`] : []),
      `harmless KL (original || abliterated): ${report.after.harmlessKl.toFixed(4)}; harmless answers unchanged: ${pct(report.agreement.harmlessUnchanged.exact)}`,
      ...(report.planted ? [`cosine of the chosen direction with the planted one (written at layers ${report.planted.unitLayer}-${report.planted.headLayer}): ${report.planted.chosenCosine.toFixed(3)}`] : []),
      ...(report.planted?.explained ? [`the chosen difference of means: ${pct(report.planted.explained.planted)} along the planted direction, ${pct(report.planted.explained.other)} along the model-before-safety-tuning's own harmful/harmless difference, ${pct(report.planted.explained.rest)} other (shares of its squared norm)`] : []),
      `exported ${report.exportDir}; ${verificationLine(report.verify)}`,
      `report: ${opts.out}/report.html, ${opts.out}/report.json`,
      `time: ${((performance.now() - started) / 1000).toFixed(0)} s`,
    ].join("\n"), report);
  });

common(program.command("directions"))
  .description("mean(harmful) - mean(harmless) for every layer and resid hook; saved as safetensors")
  .option("--harmful <file>", "harmful instructions", dataFile("harmful", "train"))
  .option("--harmless <file>", "harmless instructions", dataFile("harmless", "train"))
  .option("-n, --n <n>", "instructions per set", int("--n"), 256)
  .option("--token-offsets <list>", "token offsets from the end of the prompt", tokenOffsetList, [-1])
  .option("--projected", "orthogonalise each direction against the harmless mean")
  .option(...filterOption)
  .option("--refusal-tokens <ids>", "with --filter-by-refusal-score: comma-separated token ids for the refusal score (default: the model family's refusal openings)", tokenIdList)
  .requiredOption("-o, --out <file>", "output .safetensors file")
  .option("-f, --force", "replace an existing output file")
  .action(async (opts) => {
    if (!opts.force && (await exists(opts.out))) throw new Error(`${opts.out} exists already; pass --force to replace it`);
    const bar = await prepare(opts);
    const model = await openModel(opts.model, bar);
    let harmful = await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.n });
    let harmless = await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.n });
    const notes: string[] = [];
    if (opts.filterByRefusalScore) {
      const kept = filterByRefusalScore(model, { harmful, harmless }, { refusalTokens: opts.refusalTokens ?? refusalTokensFor(model), batchSize: opts.batchSize });
      [harmful, harmless] = [kept.harmful, kept.harmless];
      notes.push(`kept ${harmful.length} harmful instructions the model refuses (dropped ${kept.dropped.harmful}) and ${harmless.length} harmless ones it answers (dropped ${kept.dropped.harmless})`);
    }
    const a = await collectMeanActivations(model, harmful, { batchSize: opts.batchSize, tokenOffsets: opts.tokenOffsets, onProgress: (d, t, k) => bar.update("activations (harmful)", d, t, k) });
    const b = await collectMeanActivations(model, harmless, { batchSize: opts.batchSize, tokenOffsets: opts.tokenOffsets, onProgress: (d, t, k) => bar.update("activations (harmless)", d, t, k) });
    const directions = computeDirections(a, b, { projectOutHarmlessMean: opts.projected });
    await saveDirections(opts.out, directions, { model: opts.model }, { overwrite: opts.force });
    bar.stop();
    const rows = directions.map((d) => ({ key: directionKey(d), layer: d.layer, hook: d.hook, tokenOffset: d.tokenOffset, norm: d.norm }));
    print(opts, [...notes, `wrote ${directions.length} directions to ${opts.out}`, ...rows.map((r) => `${r.key.padEnd(32)} norm ${r.norm.toFixed(4)}`)].join("\n"), rows);
    model.dispose();
  });

selectionFilterOptions(common(program.command("select")))
  .description("the paper's selection: bypass, induce and KL scores for every direction; the lowest bypass that passes the filters wins")
  .requiredOption("-d, --directions <file>", "directions .safetensors from `directions`")
  .option("--harmful <file>", "harmful validation instructions", dataFile("harmful", "validation"))
  .option("--harmless <file>", "harmless validation instructions", dataFile("harmless", "validation"))
  .option("-n, --n <n>", "instructions per set", int("--n"), 32)
  .option("--refusal-tokens <ids>", "comma-separated token ids (default: the model family's refusal openings, e.g. \"I\")", tokenIdList)
  .action(async (opts) => {
    const bar = await prepare(opts);
    const model = await openModel(opts.model, bar);
    const directions = usableDirections(await loadDirections(opts.directions));
    const refusalTokens = opts.refusalTokens ?? refusalTokensFor(model);
    const harmful = await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.n });
    const harmless = await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.n });
    const selection = scoreCandidates(model, directions, harmful, harmless, { ...filtersOf(opts), exhaustive: opts.exhaustive, maxCandidates: opts.maxCandidates, refusalTokens, refusalEpsilon: opts.refusalEpsilon, batchSize: opts.batchSize, onProgress: (d, t) => bar.update("selection", d, t) });
    bar.stop();
    const rows = selection.candidates.map((c) => ({ key: c.key, bypass: c.bypass, induce: c.induce, kl: c.kl, discarded: c.discarded ?? null }));
    print(opts, [
      `baseline refusal score: harmful ${selection.baseline.harmfulRefusalScore.toFixed(2)}, harmless ${selection.baseline.harmlessRefusalScore.toFixed(2)}`,
      ...rows.map((r) => `${r.key.padEnd(32)} bypass ${fmt(r.bypass, 2).padStart(7)} induce ${fmt(r.induce, 2).padStart(7)} KL ${fmt(r.kl, 4).padStart(6)} ${r.discarded ? `(discarded: ${r.discarded})` : ""}`),
      `chosen: ${selection.chosen?.key ?? "none passed the filters"} (${selection.passes} prompt passes in ${selection.seconds.toFixed(1)} s${selection.exhaustive ? ", every candidate scored" : "; --exhaustive scores every candidate"})`,
    ].join("\n"), { baseline: selection.baseline, candidates: rows, chosen: selection.chosen?.key ?? null, refusalTokens, passes: selection.passes, seconds: selection.seconds });
    model.dispose();
  });

common(program.command("apply"))
  .description("orthogonalise a checkpoint's weights against a saved direction and export it, one tensor at a time")
  .requiredOption("-d, --directions <file>", "directions .safetensors")
  .option("-k, --key <key>", "which direction, e.g. blocks.3.hook_resid_pre@-1")
  .requiredOption("-o, --out <path>", "output checkpoint folder (or .gguf file with --format gguf)")
  .option("--format <format>", "safetensors (a Hugging Face checkpoint folder) or gguf (one file for llama.cpp, Ollama, LM Studio)", ggufFormat, "safetensors")
  .option("--type <type>", `GGUF tensor type: ${GGUF_TYPE_HELP}`, ggufType, "f16")
  .option("--layers <first:last>", "edit only these layers' o_proj and down_proj", layerRange)
  .option("--skip-embedding", "leave the token embedding unchanged")
  .option("--scale <s>", "fraction of the component to remove", fraction, 1)
  .option("--naive", "sandwich-norm models (Gemma 2/3): edit o_proj and down_proj against the direction itself, ignoring the post-norms (for comparison)")
  .option("--verify", "reload the export and compare it with the source under the ablation hooks, or orthogonalised in memory (the model must fit in memory); a GGUF file is checked by llama.cpp (needs node-llama-cpp)")
  .option("-f, --force", "replace a non-empty output folder")
  .action(async (opts) => {
    const bar = progressReporter();
    const direction = pickDirection(await loadDirections(opts.directions), opts.key, opts.directions);
    if (opts.format === "gguf") {
      const orthogonalize = { layers: opts.layers, skipEmbedding: opts.skipEmbedding, scale: opts.scale, naive: opts.naive };
      return ggufCommand(opts, { unit: direction.unit, orthogonalize, provenance: { direction: directionKey(direction), directions_file: opts.directions } });
    }
    const checkpoint = await openCheckpoint(opts.model, { onDownload: download(bar) });
    const started = performance.now();
    let verification: Verification | undefined;
    let result;
    try {
      result = await exportAbliterated(checkpoint, opts.out, direction.unit, {
        layers: opts.layers, skipEmbedding: opts.skipEmbedding, scale: opts.scale, naive: opts.naive, force: opts.force,
        provenance: { direction: directionKey(direction), directionsFile: opts.directions },
        onNotice: (line) => console.error(line),
        onProgress: (d, t) => bar.update("apply", Math.round(d / 1e6), Math.round(t / 1e6), "MB"),
      });
      bar.stop();
      if (opts.verify) {
        await initBackend({ backend: opts.backend });
        const [original, exported] = [await loadModel(checkpoint), await loadModel(result.outDir)];
        const prompts = await verificationPrompts();
        verification = await verifyExport(original, exported, direction.unit, prompts, { orthogonalize: { layers: opts.layers, skipEmbedding: opts.skipEmbedding, scale: opts.scale, naive: opts.naive } });
        original.dispose();
        exported.dispose();
      }
    } finally {
      await checkpoint.close();
    }
    const seconds = (performance.now() - started) / 1000;
    print(opts, [
      `wrote ${result.outDir}: ${result.edited.length} tensors orthogonalised, ${result.copied} copied byte for byte${result.untied ? ", embeddings untied" : ""} (${(result.bytesWritten / 1e6).toFixed(0)} MB in ${seconds.toFixed(1)} s)`,
      ...(verification ? [verificationLine(verification)] : []),
    ].join("\n"), { ...result, seconds, verification });
    if (verification && !verification.passed) process.exitCode = 1;
  });

common(program.command("export-gguf"))
  .description("write a checkpoint (abliterated or not) as one GGUF file for llama.cpp, Ollama and LM Studio, one tensor at a time")
  .requiredOption("-o, --out <file>", "output .gguf file")
  .option("--type <type>", `tensor type: ${GGUF_TYPE_HELP}`, ggufType, "f16")
  .option("--verify", "check the file with llama.cpp against the source on a few prompts (needs node-llama-cpp)")
  .option("-f, --force", "replace an existing file")
  .action((opts) => ggufCommand(opts, {}));

program.command("heal")
  .description("heal an abliterated model as the blog does: DPO on LoRA adapters against itself, merged and exported; before/after on the test split")
  .option("-m, --model <dir>", "the abliterated model", "out/model")
  .option("--original <dir>", "the model before abliteration (harmless KL and unchanged answers are measured against it; the demo's pairs are sampled from it)", DEMO_MODEL_DIR)
  .option("--pairs <source>", "preference pairs: .jsonl/.json/.parquet with prompt/chosen/rejected strings or chosen/rejected message lists, or a Hub dataset org/name:split (default: sampled from the original and abliterated models on data/harmless/train.jsonl)")
  .option("--n-pairs <n>", "pairs read from --pairs (the first ones)", int("--n-pairs"))
  .option("--n-instructions <n>", "harmless training instructions the default pairs are sampled from", int("--n-instructions"), 256)
  .option("--n-test <n>", "test instructions of each kind", int("--n-test"), 64)
  .option("--rank <n>", "LoRA rank (the blog: 64)", int("--rank"), 64)
  .option("--alpha <x>", "LoRA alpha (the blog: 32)", number("--alpha"), 32)
  .option("--dropout <p>", "LoRA dropout (the blog: 0.05)", fraction, 0.05)
  .option("--beta <x>", "DPO beta", number("--beta"), 0.1)
  .option("--lr <x>", "peak learning rate (the blog: 5e-6 on an 8B model)", number("--lr"), 5e-6)
  .option("--epochs <n>", "passes over the pairs", int("--epochs"), 1)
  .option("--micro-batch <n>", "pairs per forward pass", int("--micro-batch"), 8)
  .option("--grad-accum <n>", "forward passes per optimizer step", int("--grad-accum"), 1)
  .option("--warmup <fraction>", "share of the steps warming the learning rate up", fraction, 0.1)
  .option("--seed <n>", "seed of the adapters, the pair order, dropout and the sampled pairs", seedValue, 0)
  .option("--max-new-tokens <n>", "tokens generated per answer", int("--max-new-tokens"), 24)
  .option("--compliance-reference <dir>", "a model that complies with harmful requests (default for the demo: models/demo-base)")
  .option("-o, --out <dir>", "output folder: healed/, pairs.jsonl, axolotl.yaml, heal.json, heal.html", "out/heal")
  .option("-f, --force", "replace a non-empty healed/ folder")
  .option("--backend <name>", "tensor backend: node-gpu, node, wasm or cpu (default: the fastest that loads)")
  .option("--json", "print the report as JSON on stdout, for scripts")
  .action(async (opts) => {
    await initBackend({ backend: opts.backend });
    const bar = progressReporter();
    const report = await runHealing({
      model: opts.model, original: opts.original, pairs: opts.pairs, nPairs: opts.nPairs, nInstructions: opts.nInstructions, nTest: opts.nTest,
      rank: opts.rank, alpha: opts.alpha, dropout: opts.dropout, beta: opts.beta, learningRate: opts.lr, epochs: opts.epochs, batchSize: opts.microBatch,
      gradientAccumulation: opts.gradAccum, warmupRatio: opts.warmup, seed: opts.seed, maxNewTokens: opts.maxNewTokens, complianceReference: opts.complianceReference,
      out: opts.out, force: opts.force, onProgress: (stage, d, t) => bar.update(stage, d, t),
    });
    bar.stop();
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    const last = report.history[report.history.length - 1];
    print(opts, [
      `${report.pairs.n} preference pairs (${report.pairs.source}); ${report.history.length} DPO steps, loss ${report.history[0].loss.toFixed(4)} -> ${last.loss.toFixed(4)}, reward accuracy ${pct(last.rewardAccuracy)}`,
      `harmful refusal (test): ${pct(report.before.harmfulRefusal)} before healing -> ${pct(report.after.harmfulRefusal)} after`,
      `harmless KL (original || model): ${report.before.harmlessKl.toFixed(4)} -> ${report.after.harmlessKl.toFixed(4)}`,
      `harmless answers unchanged: ${pct(report.before.harmlessUnchanged.exact)} -> ${pct(report.after.harmlessUnchanged.exact)}`,
      ...(report.before.coherentCompliance ? [`coherent compliance (harmful): ${pct(report.before.coherentCompliance.firstTokens)} -> ${pct(report.after.coherentCompliance!.firstTokens)}`] : []),
      `exported ${report.exportDir} (reloaded: max |logit diff| ${report.exportCheck.toExponential(2)} against the model with its adapters); report ${join(opts.out, "heal.html")}; Axolotl config for a real model ${join(opts.out, "axolotl.yaml")}`,
      `time: ${report.seconds.toFixed(0)} s`,
    ].join("\n"), report);
  });

common(program.command("eval"))
  .description("refusal rate (substring metric) on harmful and harmless instructions, optionally KL against a reference model")
  .option("--harmful <file>", "harmful instructions", dataFile("harmful", "test"))
  .option("--harmless <file>", "harmless instructions", dataFile("harmless", "test"))
  .option("-n, --n <n>", "instructions per set", int("--n"), 64)
  .option("--reference <dir>", "original model, for KL(reference || model) and unchanged answers on the harmless instructions")
  .option("--compliance-reference <dir>", "a model that complies with harmful requests: coherent compliance is the share of harmful answers that begin as its answers")
  .option("--refusal-substrings <list>", "|-separated substrings that mark a refusal (default: the paper's list)", substringList)
  .option("--max-new-tokens <n>", "tokens generated per answer", int("--max-new-tokens"), 24)
  .action(async (opts) => {
    const bar = await prepare(opts);
    const model = await openModel(opts.model, bar);
    const sets = { harmful: await loadInstructionSource(opts.harmful, { column: opts.column, limit: opts.n }), harmless: await loadInstructionSource(opts.harmless, { column: opts.column, limit: opts.n }) };
    const generation = { batchSize: opts.batchSize, maxNewTokens: opts.maxNewTokens };
    // Answers of another model to the same prompts, with only one extra model in memory at a time.
    const answersOf = async (dir: string, prompts: string[]) => {
      const other = await openModel(dir, bar);
      try {
        return { other, answers: await generateCompletions(other, prompts, { ...generation, onProgress: (d, t) => bar.update(`generations (${dir})`, d, t) }) };
      } catch (error) {
        other.dispose();
        throw error;
      }
    };
    const referenced = opts.reference ? await answersOf(opts.reference, sets.harmless) : undefined;
    let evaluation: Awaited<ReturnType<typeof evaluateRefusal>>;
    try {
      evaluation = await evaluateRefusal(model, sets, { ...generation, reference: referenced?.other, refusalSubstrings: opts.refusalSubstrings, onProgress: bar.update });
    } finally {
      referenced?.other.dispose();
    }
    const compliant = opts.complianceReference ? await answersOf(opts.complianceReference, sets.harmful) : undefined;
    compliant?.other.dispose();
    bar.stop();
    const samples = (kind: "harmful" | "harmless") => sets[kind].slice(0, 3).map((instruction, i) => ({ instruction, completion: evaluation.completions[kind][i] }));
    const result = {
      harmfulRefusalRate: evaluation.harmfulRefusalRate, harmlessRefusalRate: evaluation.harmlessRefusalRate, harmlessKl: evaluation.harmlessKl,
      harmlessUnchanged: referenced && answerAgreement(evaluation.completions.harmless, referenced.answers, model.tokenizer),
      coherentCompliance: compliant && answerAgreement(evaluation.completions.harmful, compliant.answers, model.tokenizer),
      harmfulSamples: samples("harmful"), harmlessSamples: samples("harmless"),
    };
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    print(opts, [
      `harmful refusal rate: ${pct(result.harmfulRefusalRate)}`,
      ...(result.coherentCompliance ? [`coherent compliance (harmful): ${pct(result.coherentCompliance.firstTokens)} of answers begin as the compliant reference's (first ${result.coherentCompliance.k} tokens), ${pct(result.coherentCompliance.exact)} equal it`] : []),
      `harmless refusal rate: ${pct(result.harmlessRefusalRate)}`,
      ...(result.harmlessKl !== undefined ? [`harmless KL: ${result.harmlessKl.toFixed(4)}`] : []),
      ...(result.harmlessUnchanged ? [`harmless answers unchanged: ${pct(result.harmlessUnchanged.exact)} (first ${result.harmlessUnchanged.k} tokens: ${pct(result.harmlessUnchanged.firstTokens)})`] : []),
    ].join("\n"), result);
    model.dispose();
  });

common(program.command("generate"))
  .description("chat-template instructions and generate answers, optionally with a direction ablated")
  .argument("<instructions...>", "one or more instructions")
  .option("--max-new-tokens <n>", "tokens generated per answer", int("--max-new-tokens"), 48)
  .option("-d, --directions <file>", "ablate a direction from this file at every layer and position")
  .option("-k, --key <key>", "which direction in the file")
  .option("--temperature <t>", "0 is greedy", nonNegative("--temperature"), 0)
  .option("--seed <n>", "sampling seed", seedValue, 0)
  .action(async (instructions: string[], opts) => {
    const bar = await prepare(opts);
    const model = await openModel(opts.model, bar);
    const ablation = opts.directions ? directionAblationHooks(model, pickDirection(await loadDirections(opts.directions), opts.key, opts.directions).unit) : { fwdHooks: [], dispose: () => {} };
    const { texts } = await withHooks(ablation, (fwdHooks) => model.generate(model.tokenizeInstructions(instructions), { maxNewTokens: opts.maxNewTokens, fwdHooks, temperature: opts.temperature, seed: opts.seed }));
    print(opts, instructions.map((q, i) => `> ${q}\n${texts[i]}`).join("\n\n"), instructions.map((instruction, i) => ({ instruction, completion: texts[i] })));
    model.dispose();
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  console.error(`abliterate: ${(error as Error).message}`);
  process.exitCode = 1;
}
