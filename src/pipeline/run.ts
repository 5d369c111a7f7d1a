// The whole method end to end: collect activations, compute directions, select one, evaluate,
// orthogonalise, export, verify, evaluate the exported model. The CLI's `run` and `npm start` call this;
// notebooks call the same stages one by one.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { backendInfo } from "../backend.ts";
import { loadInstructionSource } from "../data/instructions.ts";
import { directionAblationHooks } from "../interventions.ts";
import { loadModel, type HookedModel } from "../model.ts";
import { resolveModel } from "../hub.ts";
import { dataFile, DEMO_MODEL_DIR } from "../paths.ts";
import { collectMeanActivations } from "./activations.ts";
import { computeDirections, cosineSimilarity, directionKey, saveDirections, type Direction } from "./directions.ts";
import { DEFAULT_REFUSAL_SUBSTRINGS, generateCompletions, isRefusal, lastPositionLogits, meanKl } from "./evaluate.ts";
import { exportAbliterated } from "./export.ts";
import { refusalTokensFor } from "./scores.ts";
import { scoreCandidates, type CandidateScores } from "./select.ts";
import { writeReportHtml } from "../report/html.ts";
import { verifyExport } from "./verify.ts";

export interface RunOptions {
  model?: string;
  outDir?: string;
  harmfulTrain?: string;
  harmlessTrain?: string;
  harmfulVal?: string;
  harmlessVal?: string;
  harmfulTest?: string;
  harmlessTest?: string;
  column?: string;
  nTrain?: number;
  nVal?: number;
  nTest?: number;
  batchSize?: number;
  maxNewTokens?: number;
  /** How many of the selection's best candidates get generations. */
  topK?: number;
  positions?: number[];
  refusalTokens?: number[];
  refusalSubstrings?: string[];
  force?: boolean;
  /** Called with a stage name and progress within it. */
  onProgress?: (stage: string, done: number, total: number, detail?: string) => void;
  log?: (line: string) => void;
}

export interface CandidateEvaluation {
  key: string;
  layer: number;
  hook: string;
  refusalRate: number;
  kl: number;
  samples: { instruction: string; completion: string }[];
}

export interface RunReport {
  model: string;
  backend: string;
  device: string;
  nLayers: number;
  dModel: number;
  counts: Record<string, number>;
  refusalTokens: number[];
  directions: { layer: number; hook: string; position: number; norm: number }[];
  cosine: { hook: string; layers: number[]; matrix: number[][] };
  selection: { baseline: { harmfulRefusalScore: number; harmlessRefusalScore: number }; candidates: (Omit<CandidateScores, "direction"> & { layer: number; hook: string })[]; chosen: string | null };
  candidates: CandidateEvaluation[];
  chosen: { key: string; layer: number; hook: string; position: number; norm: number };
  before: { harmfulRefusalRate: number; harmlessRefusalRate: number };
  after: { harmfulRefusalRate: number; harmlessRefusalRate: number; harmlessKl: number };
  projections: { harmful: number[]; harmless: number[] };
  verify: { maxAbsLogitDiff: number; prompts: number; sameGreedyAnswers: boolean };
  samples: { instruction: string; before: string; after: string }[];
  exportDir: string;
  seconds: number;
}


export async function runPipeline(options: RunOptions = {}): Promise<RunReport> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const progress = options.onProgress ?? (() => {});
  const modelDir = await resolveModel(options.model ?? DEMO_MODEL_DIR, { onProgress: (file, done, total) => progress(`download ${file}`, done, total ?? done) });
  const outDir = options.outDir ?? "out";
  const batchSize = options.batchSize ?? 16;
  const maxNewTokens = options.maxNewTokens ?? 24;
  const load = (path: string | undefined, fallback: string, limit: number) => loadInstructionSource(path ?? fallback, { column: options.column, limit });
  const nTrain = options.nTrain ?? 256;
  const nVal = options.nVal ?? 32;
  const nTest = options.nTest ?? 64;
  const sets = {
    harmfulTrain: await load(options.harmfulTrain, dataFile("harmful", "train"), nTrain),
    harmlessTrain: await load(options.harmlessTrain, dataFile("harmless", "train"), nTrain),
    harmfulVal: await load(options.harmfulVal, dataFile("harmful", "validation"), nVal),
    harmlessVal: await load(options.harmlessVal, dataFile("harmless", "validation"), nVal),
    harmfulTest: await load(options.harmfulTest, dataFile("harmful", "test"), nTest),
    harmlessTest: await load(options.harmlessTest, dataFile("harmless", "test"), nTest),
  };
  const counts = Object.fromEntries(Object.entries(sets).map(([k, v]) => [k, v.length]));
  await mkdir(outDir, { recursive: true });

  const model = await loadModel(modelDir);
  const backend = await backendInfo();
  log(`model ${modelDir}: ${model.nLayers} layers, d_model ${model.dModel}; backend ${backend.name}`);
  try {
    // Stage 2: mean activations at the chosen positions.
    const positions = options.positions ?? [-1];
    const collect = (name: string, items: string[]) => collectMeanActivations(model, items, { batchSize, positions, onProgress: (d, t, detail) => progress(`activations (${name})`, d, t, detail) });
    const harmfulMeans = await collect("harmful", sets.harmfulTrain);
    const harmlessMeans = await collect("harmless", sets.harmlessTrain);
    // Stage 3: directions.
    const directions = computeDirections(harmfulMeans, harmlessMeans);
    await saveDirections(join(outDir, "directions.safetensors"), directions, { model: modelDir }, { overwrite: true });
    // Stage 4: the paper's selection on validation prompts.
    const refusalTokens = options.refusalTokens ?? refusalTokensFor(model.tokenizer);
    const candidates = directions.filter((d) => d.norm > 0);
    const selection = scoreCandidates(model, candidates, sets.harmfulVal, sets.harmlessVal, { refusalTokens, batchSize, onProgress: (d, t) => progress("selection", d, t) });
    const ranked = [...selection.candidates].sort((a, b) => Number(!!a.discarded) - Number(!!b.discarded) || a.bypass - b.bypass);
    if (!selection.chosen) throw new Error(`no candidate direction passed the selection filters (KL <= 0.1, induce >= 0, layer in the first 80%): ${ranked.slice(0, 3).map((c) => `${c.key}: ${c.discarded}`).join("; ")}`);
    const chosen = selection.chosen.direction;
    log(`chosen direction: ${directionKey(chosen)} (bypass ${selection.chosen.bypass.toFixed(2)}, induce ${selection.chosen.induce.toFixed(2)}, KL ${selection.chosen.kl.toFixed(3)})`);

    // Stage 5 (inference-time): generations under the best candidates.
    const substrings = options.refusalSubstrings ?? DEFAULT_REFUSAL_SUBSTRINGS;
    const rate = (texts: string[]) => texts.filter((t) => isRefusal(t, substrings)).length / texts.length;
    const evaluations: CandidateEvaluation[] = [];
    const top = ranked.filter((c) => !c.discarded).slice(0, options.topK ?? 3);
    for (const [i, c] of top.entries()) {
      const ablation = directionAblationHooks(c.direction.unit, model.nLayers);
      const completions = await generateCompletions(model, sets.harmfulTest, { fwdHooks: ablation.fwdHooks, maxNewTokens, batchSize });
      const kl = meanKl(lastPositionLogits(model, sets.harmlessTest, { batchSize }), lastPositionLogits(model, sets.harmlessTest, { fwdHooks: ablation.fwdHooks, batchSize }));
      ablation.dispose();
      evaluations.push({ key: c.key, layer: c.direction.layer, hook: c.direction.hook, refusalRate: rate(completions), kl, samples: sets.harmfulTest.slice(0, 4).map((instruction, j) => ({ instruction, completion: completions[j] })) });
      progress("candidate generations", i + 1, top.length);
    }

    // Stage 7 (before): the original model.
    const beforeHarmful = await generateCompletions(model, sets.harmfulTest, { maxNewTokens, batchSize, onProgress: (d, t) => progress("generations (before, harmful)", d, t) });
    const beforeHarmless = await generateCompletions(model, sets.harmlessTest, { maxNewTokens, batchSize, onProgress: (d, t) => progress("generations (before, harmless)", d, t) });

    // Stages 6-7: orthogonalise, export, verify against the hooks.
    const exportDir = join(outDir, "model");
    await exportAbliterated(modelDir, exportDir, chosen.unit, { force: options.force, provenance: { direction: directionKey(chosen) }, onProgress: (d, t) => progress("export", d, t) });
    const abliterated = await loadModel(exportDir);
    try {
      const verifyPrompts = [...sets.harmfulTest.slice(0, 4), ...sets.harmlessTest.slice(0, 4)];
      const verify = await verifyExport(model, abliterated, chosen.unit, verifyPrompts, { maxNewTokens, batchSize });
      const afterHarmful = await generateCompletions(abliterated, sets.harmfulTest, { maxNewTokens, batchSize, onProgress: (d, t) => progress("generations (after, harmful)", d, t) });
      const afterHarmless = await generateCompletions(abliterated, sets.harmlessTest, { maxNewTokens, batchSize, onProgress: (d, t) => progress("generations (after, harmless)", d, t) });
      const harmlessKl = meanKl(lastPositionLogits(model, sets.harmlessTest, { batchSize }), lastPositionLogits(abliterated, sets.harmlessTest, { batchSize }));
      // Where harmful and harmless activations fall along the chosen direction, at its own hook point.
      const projections = { harmful: await projectionsOn(model, sets.harmfulTest, chosen, batchSize), harmless: await projectionsOn(model, sets.harmlessTest, chosen, batchSize) };
      const layers = [...new Set(directions.map((d) => d.layer))];
      const chosenHookDirs = layers.map((l) => directions.find((d) => d.layer === l && d.hook === chosen.hook && d.position === chosen.position)!);
      const report: RunReport = {
        model: modelDir,
        backend: backend.name,
        device: backend.device,
        nLayers: model.nLayers,
        dModel: model.dModel,
        counts,
        refusalTokens,
        directions: directions.map((d) => ({ layer: d.layer, hook: d.hook, position: d.position, norm: d.norm })),
        cosine: { hook: chosen.hook, layers, matrix: chosenHookDirs.map((a) => chosenHookDirs.map((b) => cosineSimilarity(a.raw, b.raw))) },
        selection: {
          baseline: selection.baseline,
          candidates: selection.candidates.map(({ direction, ...rest }) => ({ ...rest, layer: direction.layer, hook: direction.hook })),
          chosen: directionKey(chosen),
        },
        candidates: evaluations,
        chosen: { key: directionKey(chosen), layer: chosen.layer, hook: chosen.hook, position: chosen.position, norm: chosen.norm },
        before: { harmfulRefusalRate: rate(beforeHarmful), harmlessRefusalRate: rate(beforeHarmless) },
        after: { harmfulRefusalRate: rate(afterHarmful), harmlessRefusalRate: rate(afterHarmless), harmlessKl },
        projections,
        verify,
        samples: sets.harmfulTest.slice(0, 6).map((instruction, i) => ({ instruction, before: beforeHarmful[i], after: afterHarmful[i] })),
        exportDir,
        seconds: (performance.now() - started) / 1000,
      };
      await writeFile(join(outDir, "report.json"), JSON.stringify(report, null, 2) + "\n");
      await writeReportHtml(join(outDir, "report.html"), report);
      return report;
    } finally {
      abliterated.dispose();
    }
  } finally {
    model.dispose();
  }
}

/** Scalar projection of each prompt's last-token activation on the direction's unit vector. */
async function projectionsOn(model: HookedModel, instructions: string[], direction: Direction, batchSize: number): Promise<number[]> {
  const means = [];
  for (let start = 0; start < instructions.length; start += batchSize) {
    const batch = model.tokenizeInstructions(instructions.slice(start, start + batchSize));
    const name = `blocks.${direction.layer}.hook_${direction.hook}`;
    const { logits, cache } = model.runWithCache(batch, { namesFilter: [name], positions: [direction.position], logits: "last" });
    logits.dispose();
    const values = cache.get(name).dataSync();
    cache.dispose();
    for (let b = 0; b < batch.inputIds.length; b++) {
      let s = 0;
      for (let i = 0; i < model.dModel; i++) s += values[b * model.dModel + i] * direction.unit[i];
      means.push(s);
    }
  }
  return means;
}
