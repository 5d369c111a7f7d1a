// Stage 8 as one call (the `heal` command): load the abliterated model, make or read preference pairs,
// measure it on the test split, train LoRA adapters with DPO against itself, measure again with the
// adapters in, then merge them into the weights and export the healed checkpoint (source dtype and layout),
// reloaded to check it computes what the adapters did.
import { writeFileAtomic } from "../files.ts";
import { join, resolve } from "node:path";
import { DatasetError, loadInstructions } from "../data/instructions.ts";
import type { HookedModel } from "../hooked-model.ts";
import { loadModel } from "../load.ts";
import { architectureFor, loadConfig } from "../config.ts";
import { checkLoraOptions } from "./lora.ts";
import { dataFile } from "../paths.ts";
import { defaultComplianceReference } from "../pipeline/ground-truth.ts";
import { generateCompletions, lastPositionLogits, measure } from "../pipeline/evaluate.ts";
import { answersOf } from "../generation.ts";
import { earlierRecord, exportAbliterated } from "../export/safetensors.ts";
import { checkExportTarget, checkOutputFiles } from "../export/targets.ts";
import { maxAbsDifference, VERIFY_TOLERANCE } from "../export/verify.ts";
import { resolveModel } from "../hub.ts";
import { writeHealReportHtml } from "../report/html.ts";
import {
  axolotlConfig,
  demoHealingPairs,
  loadPreferences,
  saveChatmlIntel,
  savePreferences,
  tokenizePreferences,
  type PreferenceText,
} from "./data.ts";
import { trainDpo, type DpoOptions, type DpoStep } from "./train.ts";
import type { HealMetrics, HealReport } from "./types.ts";

export type { HealMetrics, HealReport } from "./types.ts";

export interface HealOptions extends Omit<DpoOptions, "onStep"> {
  /** The abliterated model (a folder or Hub id). */
  model: string;
  /** The model before abliteration: the harmless KL and unchanged answers are measured against it, and the demo's pairs made with it. */
  original: string;
  /** Preference pairs (a file or Hub dataset); default: made from the project's harmless training instructions. */
  pairs?: string;
  /** Pairs read from `pairs` (the first ones). */
  nPairs?: number;
  /** Harmless training instructions the demo's pairs are sampled from (without `pairs`). */
  nInstructions?: number;
  /** Test instructions of each kind. */
  nTest?: number;
  maxNewTokens?: number;
  /** A model that complies with harmful requests (default for the demo: models/demo-base). */
  complianceReference?: string;
  /** Output folder: healed/ (the checkpoint), pairs.jsonl (and pairs.chatml-intel.jsonl), axolotl.yaml, heal.json, heal.html. */
  out: string;
  force?: boolean;
  onProgress?: (stage: string, done: number, total: number) => void;
  onStep?: (step: DpoStep) => void;
}

/**
 * Stage 7's measures of a model against the original on the test split (`measure` with the original's
 * answers and logits, and a compliant model's answers when given), as healing reports them.
 */
export async function healMetrics(
  model: HookedModel,
  test: { harmful: readonly string[]; harmless: readonly string[] },
  original: { answers: readonly string[]; logits: readonly Float32Array[] },
  options: {
    compliant?: readonly string[];
    maxNewTokens?: number;
    batchSize?: number;
    onProgress?: (stage: string, done: number, total: number) => void;
  } = {},
): Promise<HealMetrics> {
  const m = await measure(model, test, { ...options, original });
  return { ...m, harmlessKl: m.harmlessKl!, harmlessUnchanged: m.harmlessUnchanged! };
}

export async function runHealing(options: HealOptions): Promise<HealReport> {
  const started = performance.now();
  const progress = options.onProgress ?? (() => {});
  const exportDir = join(options.out, "healed");
  const source = await resolveModel(options.model);
  await checkExportTarget(source, exportDir, options.force);
  const files = ["pairs.jsonl", "pairs.chatml-intel.jsonl", "axolotl.yaml", "heal.json", "heal.html"];
  await checkOutputFiles(
    files.map((f) => join(options.out, f)),
    options.force,
  );
  // Every option checked before any model loads: LoRA's against the model's shapes, DPO's and the pairs.
  const config = await loadConfig(source);
  await earlierRecord(source); // the export keeps it: a malformed one is refused now, not after training
  checkLoraOptions(architectureFor(config), config, {
    rank: options.rank,
    alpha: options.alpha,
    dropout: options.dropout,
    modules: options.modules,
  });
  for (const [name, value] of [
    ["beta", options.beta],
    ["learning rate", options.learningRate],
  ] as const)
    if (value !== undefined && !(value > 0 && Number.isFinite(value)))
      throw new Error(`DPO ${name} must be a positive finite number, got ${value}`);
  const pairsGiven = options.pairs ? await loadPreferences(options.pairs, { limit: options.nPairs }) : undefined;
  const nTest = options.nTest ?? 64;
  const maxNewTokens = options.maxNewTokens ?? 24;
  const batchSize = 16;
  const test = {
    harmful: await loadInstructions(dataFile("harmful", "test"), { limit: nTest }),
    harmless: await loadInstructions(dataFile("harmless", "test"), { limit: nTest }),
  };

  // One model besides the abliterated one at a time: the original's answers and logits, then the compliant answers.
  const originalModel = await loadModel(options.original);
  const model = await loadModel(source);
  let texts: PreferenceText[];
  let sampled: number | undefined;
  let originalAnswers: string[];
  let originalLogits: Float32Array[];
  try {
    originalAnswers = await generateCompletions(originalModel, test.harmless, {
      maxNewTokens,
      batchSize,
      onProgress: (d, t) => progress("generations (original, harmless)", d, t),
    });
    originalLogits = lastPositionLogits(originalModel, test.harmless, { batchSize });
    if (pairsGiven) texts = pairsGiven;
    else {
      const instructions = await loadInstructions(dataFile("harmless", "train"), { limit: options.nInstructions ?? 256 });
      ({ pairs: texts, sampled } = await demoHealingPairs(originalModel, model, instructions, {
        maxNewTokens,
        seed: options.seed,
        onProgress: (d, t) => progress("preference pairs (answers sampled)", d, t),
      }));
    }
  } finally {
    originalModel.dispose();
  }
  const complianceSource = defaultComplianceReference(options.original, options.complianceReference);
  const compliant = complianceSource
    ? await answersOf(complianceSource, test.harmful, {
        maxNewTokens,
        batchSize,
        onProgress: (d, t) => progress("generations (compliance reference)", d, t),
      })
    : undefined;
  const original = { answers: originalAnswers, logits: originalLogits };
  const measureAt = (m: HookedModel, label: string) =>
    healMetrics(m, test, original, {
      compliant,
      maxNewTokens,
      batchSize,
      onProgress: (stage, d, t) => progress(`${stage}, ${label}`, d, t),
    });
  try {
    const before = await measureAt(model, "before healing");
    const pairs = tokenizePreferences(model.tokenizer, texts);
    const settings = {
      rank: options.rank ?? 8,
      alpha: options.alpha ?? 2 * (options.rank ?? 8),
      dropout: options.dropout ?? 0,
      beta: options.beta ?? 0.1,
      learningRate: options.learningRate ?? 5e-6,
      epochs: options.epochs ?? 1,
      batchSize: options.batchSize ?? 4,
      gradientAccumulation: options.gradientAccumulation ?? 1,
      warmupRatio: options.warmupRatio ?? 0.1,
      seed: options.seed ?? 0,
      modules: options.modules ?? "all linear",
    };
    const { adapters, history } = await trainDpo(model, pairs, {
      ...options,
      onReference: (d, t) => progress("reference log-probabilities", d, t),
      onStep: (s) => {
        progress("DPO steps", s.step, s.steps);
        options.onStep?.(s);
      },
    });
    try {
      adapters.attach();
      const after = await measureAt(model, "after healing");
      const healedLogits = lastPositionLogits(model, test.harmless, { batchSize });
      adapters.detach();
      await exportAbliterated(source, exportDir, undefined, {
        force: options.force,
        deltas: adapters.deltas(),
        provenance: {
          healing: {
            method: "DPO on LoRA adapters, merged",
            pairs: options.pairs ?? "the project's harmless training instructions",
            ...settings,
          },
        },
      });
      const exported = await loadModel(exportDir);
      const exportCheck = maxAbsDifference(healedLogits, lastPositionLogits(exported, test.harmless, { batchSize }));
      exported.dispose();
      if (!(exportCheck <= VERIFY_TOLERANCE))
        throw new Error(
          `the healed export ${exportDir} does not compute what the model with its adapters does: max |logit difference| ` +
            `${exportCheck} on the harmless test prompts (tolerance ${VERIFY_TOLERANCE})`,
        );
      await savePreferences(join(options.out, "pairs.jsonl"), texts);
      // For a real model: the blog's Axolotl recipe on this model, with these pairs in chatml.intel form where
      // they are single-turn, else on the blog's dataset.
      let dataset: { path: string; local: boolean } | undefined;
      try {
        await saveChatmlIntel(join(options.out, "pairs.chatml-intel.jsonl"), texts);
        dataset = { path: resolve(options.out, "pairs.chatml-intel.jsonl"), local: true };
      } catch (error) {
        if (!(error instanceof DatasetError)) throw error;
        dataset = undefined; // multi-turn pairs: the config names the blog's dataset
      }
      await writeFileAtomic(
        join(options.out, "axolotl.yaml"),
        axolotlConfig({
          baseModel: resolve(source),
          dataset,
          padToken: model.tokenizer.specialToken("pad_token") ?? model.tokenizer.specialToken("eos_token"),
        }),
      );
      const report: HealReport = {
        model: source,
        original: options.original,
        pairs: { source: options.pairs ?? "made from data/harmless/train.jsonl", n: pairs.length, sampled },
        settings,
        history,
        before,
        after,
        exportDir,
        exportCheck,
        seconds: (performance.now() - started) / 1000,
      };
      await writeFileAtomic(join(options.out, "heal.json"), JSON.stringify(report, null, 2) + "\n");
      await writeHealReportHtml(join(options.out, "heal.html"), report);
      return report;
    } finally {
      adapters.dispose();
    }
  } finally {
    model.dispose();
  }
}
