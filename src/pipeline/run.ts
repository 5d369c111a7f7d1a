// The whole method end to end, one stage after another: the CLI's `run` and `npm start` call this;
// the notebooks call the same stage functions one by one.
import { mkdir, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { backendInfo, wasmHeapBytes } from "../backend.ts";
import {
  FREEFORM_SPLIT,
  loadEvaluationSplits,
  loadInstructionSets,
  type EvaluationSplit,
  type EvaluationSplitSource,
  type InstructionSetSources,
} from "../data/instructions.ts";
import { loadModel, openCheckpoint, type Checkpoint } from "../load.ts";
import type { HookedModel } from "../hooked-model.ts";
import { resolveModel } from "../hub.ts";
import { DEMO_MODEL_DIR } from "../paths.ts";
import { writeReport } from "../report/write.ts";
import type { RunReport } from "../report/types.ts";
import { collectMeanActivations } from "./activations.ts";
import { evaluateCandidates } from "./candidates.ts";
import {
  computeDirections,
  cosineSimilarity,
  directionKey,
  saveDirections,
  usableDirections,
  type Direction,
  type UsableDirection,
} from "./directions.ts";
import {
  evaluateRefusal,
  lastPositionLogits,
  measure,
  splitReport,
  tokensPerWord,
  type Measures,
  type RefusalEvaluation,
} from "./evaluate.ts";
import { topicMentionRate } from "./measures.ts";
import { answersOf } from "../generation.ts";
import { defaultComplianceReference } from "./ground-truth.ts";
import { exportAbliterated } from "../export/safetensors.ts";
import { resolveEdit, type EditVariants, type ResolvedEdit } from "./edit.ts";
import { checkExportTarget, checkOutputFiles, ExportError } from "../export/targets.ts";
import { exportPeftAdapter, NORM_PRESERVING_HAS_NO_LORA } from "../export/peft.ts";
import { withLock } from "../files.ts";
import { projectionsOn } from "./projections.ts";
import { PAPER_KL_EPSILON, PAPER_REFUSAL_EPSILON, refusalTokensFor } from "./scores.ts";
import {
  chosenCandidate,
  filterByRefusalScore,
  paperCandidates,
  postInstructionOffsets,
  rankedCandidates,
  scoreCandidates,
  type SelectionFilters,
} from "./select.ts";
import { compareExport, expectedExport } from "../export/verify.ts";
import { checkMemory } from "../memory.ts";

/** Defaults of PipelineOptions.maxNewTokens and evalNewTokens. */
const MAX_NEW_TOKENS = 24;
const EVAL_NEW_TOKENS = 128;

export interface PipelineOptions extends InstructionSetSources {
  /** A checkpoint folder or Hub id (default: the embedded demo model). */
  model?: string;
  outDir?: string;
  column?: string;
  nTrain?: number;
  nVal?: number;
  nTest?: number;
  batchSize?: number;
  /** New tokens per answer where a refusal is looked for early: the candidates' generations, the export's check (default 24). */
  maxNewTokens?: number;
  /**
   * New tokens per answer of the final evaluation: before and after, and the compliance reference's answers
   * (default 128, so that a refusal after a first compliant sentence is read too).
   */
  evalNewTokens?: number;
  /** How many of the selection's best candidates get generations. */
  topK?: number;
  /** Token offsets from the end of the prompt at which directions are computed (default [-1]). */
  tokenOffsets?: number[];
  /**
   * The paper's selection as its code does it: directions at every post-instruction token, candidates resid_pre
   * only (paperCandidates), instructions filtered by refusal score, epsilons 1e-8 (refusal score) and 1e-6 (KL),
   * 128 training instructions per set. Default: the extended selection (every hook at the given token offsets, exact
   * scores).
   */
  paperSelection?: boolean;
  refusalTokens?: number[];
  refusalSubstrings?: string[];
  /** The paper's selection filters (default KL <= 0.1, induce >= 0, layers in the first 80%). */
  selectionFilters?: Partial<SelectionFilters>;
  /** Score every candidate in full, as the paper does (default: stop once the best topK that pass are known). */
  exhaustiveSelection?: boolean;
  /** Score at most this many candidates, those of largest norm. */
  maxCandidates?: number;
  /** Epsilon inside the refusal score's logarithms (the paper's code: PAPER_REFUSAL_EPSILON; default 0). */
  refusalEpsilon?: number;
  /**
   * Keep only the harmful training and validation instructions the model refuses and the harmless ones it
   * answers (by refusal score), before the means and the selection, as the paper does.
   */
  filterByRefusalScore?: boolean;
  /**
   * A model that complies with harmful requests (the demo's stage-1 model is the default for the demo model):
   * its answers to the harmful test instructions are what coherent compliance is measured against.
   */
  complianceReference?: string;
  force?: boolean;
  /**
   * The edit's variants (#25: strength kernels, projected or biprojected direction, norm preservation, a partial
   * edit), applied to the chosen direction for the export and its check; the default is the paper's full edit.
   */
  edit?: EditVariants;
  /**
   * Also write the edit as a rank-1 PEFT LoRA adapter in `outDir/adapter/` (the plain edit only: the
   * norm-preserving one has no LoRA form). The checkpoint in `outDir/model/` is still written, checked and evaluated.
   */
  adapter?: boolean;
  /**
   * Further evaluation splits, each measured before and after like the test split (refusal, harmless KL and
   * answers unchanged, topic mention), `nTest` instructions per set. Default: the project's free-form requests
   * (FREEFORM_SPLIT) when the test sets are the project's own, else none.
   */
  evaluationSplits?: EvaluationSplitSource[];
  /** Called with a stage name and progress within it. */
  onProgress?: (stage: string, done: number, total: number, detail?: string) => void;
  log?: (line: string) => void;
  /**
   * Steps after the method that add to the report from what the run found (the demo's ground truth:
   * `demoGroundTruth`); the method itself knows nothing of them.
   */
  reportSteps?: ReportStep[];
}

/** What a report step is given: the run's model, directions, chosen direction and instructions. */
export interface RunFindings {
  modelSource: string;
  complianceSource?: string;
  directions: Direction[];
  chosen: UsableDirection;
  /** The training instructions as loaded, before any filtering. */
  train: { harmful: string[]; harmless: string[] };
  batchSize: number;
  tokenOffsets?: number[];
  onProgress: (stage: string, done: number, total: number, detail?: string) => void;
}

export type ReportStep = (findings: RunFindings) => Promise<Partial<RunReport>>;

/**
 * The whole method into `outDir` (model/, directions.safetensors, report.json, report.html), under a lock on
 * the folder: a second run into it is refused while this one runs, and every output is checked before any work.
 */
export async function runPipeline(options: PipelineOptions = {}): Promise<RunReport> {
  const out = resolve(options.outDir ?? "out");
  const found = await stat(out).catch(() => undefined);
  if (found && !found.isDirectory()) throw new Error(`output folder ${options.outDir ?? "out"} is a file; give a folder`);
  await mkdir(dirname(out), { recursive: true });
  return withLock(join(dirname(out), `.${basename(out)}.run.lock`), () => runUnlocked(options), {
    busy: (pid) => `another run (process ${pid}) is writing ${out}; wait for it to finish or choose another folder`,
  });
}

async function runUnlocked(options: PipelineOptions): Promise<RunReport> {
  const started = performance.now();
  const log = options.log ?? (() => {});
  const progress = options.onProgress ?? (() => {});
  const outDir = options.outDir ?? "out";
  const batchSize = options.batchSize ?? 16;
  const maxNewTokens = options.maxNewTokens ?? MAX_NEW_TOKENS;
  const evalNewTokens = options.evalNewTokens ?? EVAL_NEW_TOKENS;
  const substrings = options.refusalSubstrings;

  // Every output is checked before any work: a run that would fail at the export fails now.
  const exportDir = join(outDir, "model");
  const modelSource = await resolveModel(options.model ?? DEMO_MODEL_DIR, {
    onProgress: (file, done, total) => progress(`download ${file}`, done, total ?? done),
  });
  await checkExportTarget(modelSource, exportDir, options.force);
  const adapterDir = options.adapter ? join(outDir, "adapter") : undefined;
  if (adapterDir) {
    if (options.edit?.normPreserving) throw new ExportError(NORM_PRESERVING_HAS_NO_LORA);
    await checkExportTarget(modelSource, adapterDir, options.force);
  }
  const files = ["directions.safetensors", "report.json", "report.html"];
  await checkOutputFiles(
    files.map((f) => join(outDir, f)),
    options.force,
  );
  // Stage 1: instructions.
  const sets = await loadInstructionSets(options, {
    column: options.column,
    nTrain: options.nTrain ?? (options.paperSelection ? 128 : 256),
    nVal: options.nVal ?? 32,
    nTest: options.nTest ?? 64,
  });
  const splits = await loadEvaluationSplits(
    options.evaluationSplits ?? (options.harmfulTest === undefined && options.harmlessTest === undefined ? [FREEFORM_SPLIT] : []),
    { column: options.column, limit: options.nTest ?? 64 },
  );
  await mkdir(outDir, { recursive: true });
  // The compliant answers coherent compliance is measured against, generated first (one model in memory at a time).
  const complianceSource = defaultComplianceReference(
    modelSource,
    options.complianceReference !== undefined
      ? await resolveModel(options.complianceReference, {
          onProgress: (file, done, total) => progress(`download ${file}`, done, total ?? done),
        })
      : undefined,
  );
  const compliantAnswers = complianceSource
    ? await answersOf(complianceSource, sets.harmfulTest, {
        maxNewTokens: evalNewTokens,
        batchSize,
        onProgress: (d, t) => progress("generations (compliance reference)", d, t),
      })
    : undefined;
  // The training instructions as loaded (before any filtering), for the demo's ground truth at the end.
  const train = { harmful: sets.harmfulTrain, harmless: sets.harmlessTrain };
  const checkpoint = await openCheckpoint(modelSource);
  try {
    // One model in memory at a time: everything that needs the original is computed before it is freed and
    // the export is loaded.
    const model = await loadModel(checkpoint);
    const backend = await backendInfo();
    log(
      `model ${checkpoint.dir}: ${model.nLayers} layers, d_model ${model.dModel}; ` +
        `${backend.device}${
          model.weightPlan.layout === "stored"
            ? "; linear weights held as stored to spare XNNPACK's packed copies (slower)"
            : model.weightPlan.layout === "native"
              ? `; weight matrices held outside the wasm heap (${(model.weightPlan.nativeBytes! / 1024 ** 3).toFixed(1)} GB${
                  Object.values(model.params.native ?? {}).some((m) => m.dtype !== "F32") ? ", in the checkpoint's 16 bits" : ""
                })`
              : ""
        }`,
    );
    const test = { harmful: sets.harmfulTest, harmless: sets.harmlessTest };
    let stages: OriginalStages["stages"];
    let expectation: OriginalStages["expectation"];
    let referenceLogits: Float32Array[];
    let splitsBefore: OriginalStages["splitsBefore"];
    try {
      ({ stages, expectation, referenceLogits, splitsBefore } = await stagesOnTheOriginal(model, {
        checkpoint,
        backend,
        sets,
        splits,
        options,
        outDir,
        exportDir,
        compliantAnswers,
        progress,
        log,
      }));
    } finally {
      model.dispose();
    }
    // Stages 5 and 6: orthogonalise while exporting, reload the export, check it.
    const provenance = { ...stages.edit.record, directionsFile: join(outDir, "directions.safetensors") };
    await exportAbliterated(checkpoint, exportDir, stages.edit.direction.unit, {
      ...stages.edit.orthogonalize,
      force: options.force,
      provenance,
      onProgress: (d, t) => progress("export", Math.round(d / 1e6), Math.round(t / 1e6), "MB"),
      onNotice: log,
    });
    const adapter = adapterDir
      ? await exportPeftAdapter(checkpoint, adapterDir, stages.edit.direction.unit, {
          ...stages.edit.orthogonalize,
          force: options.force,
          provenance,
        })
      : undefined;
    const abliterated = await loadModel(exportDir);
    let verify: Awaited<ReturnType<typeof compareExport>>;
    let measured: Measures;
    const splitsAfter: RefusalEvaluation[] = [];
    try {
      verify = await compareExport(abliterated, expectation, { maxNewTokens, batchSize });
      // Stage 7, after: refusal, what changed on harmless prompts, and (with a reference) whether it complies coherently.
      measured = await measure(abliterated, test, {
        original: { answers: stages.before.completions.harmless, logits: referenceLogits },
        compliant: compliantAnswers,
        maxNewTokens: evalNewTokens,
        batchSize,
        refusalSubstrings: substrings,
        onProgress: (s, d, t) => progress(`${s}, after`, d, t),
      });
      for (const [i, split] of splits.entries())
        splitsAfter.push(
          await evaluateRefusal(abliterated, split, {
            referenceLogits: splitsBefore[i].logits,
            maxNewTokens: evalNewTokens,
            batchSize,
            refusalSubstrings: substrings,
            onProgress: (s, d, t) => progress(`${s} (${split.name}), after`, d, t),
          }),
        );
    } finally {
      abliterated.dispose();
    }
    const after = {
      topicMention: topicMentionRate(sets.harmfulTest, measured.answers.harmful),
      harmfulRefusalRate: measured.harmfulRefusal,
      harmlessRefusalRate: measured.harmlessRefusal,
      harmlessKl: measured.harmlessKl,
      completions: measured.answers,
    };
    const agreement = {
      harmlessUnchanged: measured.harmlessUnchanged!,
      coherentCompliance: measured.coherentCompliance,
      complianceReference: complianceSource,
    };
    const memory = { ...stages.memory, wasmHeapBytes: wasmHeapBytes() };
    // Steps after the method (the demo's ground truth) add to the report.
    const findings: RunFindings = {
      modelSource,
      complianceSource,
      directions: stages.directions,
      chosen: stages.chosen,
      train,
      batchSize,
      tokenOffsets: options.tokenOffsets,
      onProgress: progress,
    };
    const added: Partial<RunReport> = {};
    for (const step of options.reportSteps ?? []) Object.assign(added, await step(findings));
    const samples = sets.harmfulTest
      .slice(0, 6)
      .map((instruction, i) => ({ instruction, before: stages.before.completions.harmful[i], after: after.completions.harmful[i] }));
    const report = buildReport({
      ...stages,
      verify,
      after,
      agreement,
      planted: added.planted,
      seconds: (performance.now() - started) / 1000,
      memory,
      adapter,
      samples,
      testTokensPerWord: tokensPerWord([...sets.harmfulTest, ...sets.harmlessTest], model.tokenizer),
      splits: splits.map((split, i) => splitReport(split, splitsBefore[i].evaluation, splitsAfter[i], model.tokenizer)),
    });
    await writeReport(outDir, report);
    return report;
  } finally {
    await checkpoint.close();
  }
}

/**
 * What the stages on the original model hand on: the report's inputs so far, the export check's reference, the
 * harmless logits, and each evaluation split's answers and harmless logits.
 */
interface OriginalStages {
  stages: Omit<ReportInputs, "verify" | "after" | "seconds" | "agreement" | "planted" | "adapter" | "splits" | "testTokensPerWord">;
  expectation: Awaited<ReturnType<typeof expectedExport>>;
  referenceLogits: Float32Array[];
  splitsBefore: { evaluation: RefusalEvaluation; logits: Float32Array[] }[];
}

/**
 * Everything the original model is needed for, in the method's order: the memory check, the paper's filter
 * (when asked), stage 2's means, stage 3's directions (saved), stage 4's selection and the candidates read by
 * generation, stage 7 before, the projections, and stage 6's reference, last (in place: it spends the model).
 */
async function stagesOnTheOriginal(
  model: HookedModel,
  context: {
    checkpoint: Checkpoint;
    backend: Awaited<ReturnType<typeof backendInfo>>;
    sets: Awaited<ReturnType<typeof loadInstructionSets>>;
    splits: EvaluationSplit[];
    options: PipelineOptions;
    outDir: string;
    exportDir: string;
    compliantAnswers?: string[];
    progress: NonNullable<PipelineOptions["onProgress"]>;
    log: (line: string) => void;
  },
): Promise<OriginalStages> {
  const { checkpoint, backend, sets, splits, options, outDir, exportDir, compliantAnswers, progress, log } = context;
  const batchSize = options.batchSize ?? 16;
  const maxNewTokens = options.maxNewTokens ?? MAX_NEW_TOKENS;
  const evalNewTokens = options.evalNewTokens ?? EVAL_NEW_TOKENS;
  const substrings = options.refusalSubstrings;
  const test = { harmful: sets.harmfulTest, harmless: sets.harmlessTest };
  const verifyPrompts = [...sets.harmfulTest.slice(0, 4), ...sets.harmlessTest.slice(0, 4)];
  // Before any work: the largest batch of the run must fit the backend's memory.
  const promptTokens = Math.max(
    ...Object.values(sets)
      .flat()
      .map((i) => model.tokenizer.encode(model.tokenizer.formatInstruction(i)).length),
  );
  const estimate = checkMemory(
    checkpoint.dir,
    checkpoint.config,
    checkpoint.arch,
    model.weightPlan,
    // A batch is never larger than the largest set it is taken from (the export's check takes verifyPrompts).
    {
      batch: Math.min(batchSize, Math.max(verifyPrompts.length, ...Object.values(sets).map((s) => s.length))),
      promptTokens,
      newTokens: Math.max(maxNewTokens, evalNewTokens),
      logits: "last",
      untie: true,
    },
    backend,
  );
  const refusalTokens = options.refusalTokens ?? refusalTokensFor(model);
  const paper = options.paperSelection === true;
  if (paper && options.tokenOffsets)
    throw new Error("the paper's selection takes every post-instruction token as its token offsets: leave out tokenOffsets");
  const tokenOffsets = paper ? postInstructionOffsets(model) : options.tokenOffsets;
  const refusalEpsilon = options.refusalEpsilon ?? (paper ? PAPER_REFUSAL_EPSILON : undefined);
  if (paper) log(`the paper's selection: resid_pre candidates at the post-instruction token offsets ${tokenOffsets!.join(", ")}`);
  if (options.filterByRefusalScore || paper) {
    // The paper's filter: compare instructions the model refuses with ones it answers.
    for (const split of ["Train", "Val"] as const) {
      const kept = filterByRefusalScore(
        model,
        { harmful: sets[`harmful${split}`], harmless: sets[`harmless${split}`] },
        { refusalTokens, epsilon: refusalEpsilon, batchSize },
      );
      [sets[`harmful${split}`], sets[`harmless${split}`]] = [kept.harmful, kept.harmless];
      log(
        `${split === "Train" ? "training" : "validation"} instructions filtered by refusal score: kept ` +
          `${kept.harmful.length} harmful (dropped ${kept.dropped.harmful}) and ${kept.harmless.length} harmless (dropped ` +
          `${kept.dropped.harmless})`,
      );
    }
  }
  // Stage 2: mean activations at the chosen token offsets.
  const collect = (name: string, items: string[]) =>
    collectMeanActivations(model, items, {
      batchSize,
      tokenOffsets,
      onProgress: (d, t, detail) => progress(`activations (${name})`, d, t, detail),
    });
  const harmfulMeans = await collect("harmful", sets.harmfulTrain);
  const harmlessMeans = await collect("harmless", sets.harmlessTrain);
  // Stage 3: directions.
  const directions = computeDirections(harmfulMeans, harmlessMeans);
  await saveDirections(join(outDir, "directions.safetensors"), directions, { model: checkpoint.dir }, { overwrite: true });
  // Stage 4: the paper's selection on validation prompts, then the best candidates read by generation.
  const candidates = paper ? paperCandidates(directions, tokenOffsets!, "the run's directions") : usableDirections(directions);
  const scored = scoreCandidates(model, candidates, sets.harmfulVal, sets.harmlessVal, {
    ...options.selectionFilters,
    refusalTokens,
    refusalEpsilon,
    klEpsilon: paper ? PAPER_KL_EPSILON : 0,
    batchSize,
    keep: options.topK ?? 3,
    exhaustive: options.exhaustiveSelection,
    maxCandidates: options.maxCandidates,
    onProgress: (d, t) => progress("selection", d, t),
  });
  const selection = { ...scored, mode: paper ? ("paper" as const) : ("extended" as const) };
  const chosenScores = chosenCandidate(selection);
  const chosen = chosenScores.direction;
  log(
    `chosen direction: ${chosenScores.key} (bypass ${chosenScores.bypass.toFixed(2)}, induce ${chosenScores.induce.toFixed(2)}, KL ` +
      `${chosenScores.kl.toFixed(3)}); selection: ${selection.passes} prompt passes in ${selection.seconds.toFixed(0)} s`,
  );
  const top = rankedCandidates(selection)
    .filter((c) => !c.discarded)
    .slice(0, options.topK ?? 3)
    .map((c) => c.direction);
  const evaluations = await evaluateCandidates(model, top, {
    ...test,
    maxNewTokens,
    batchSize,
    refusalSubstrings: substrings,
    compliantAnswers,
    onProgress: (d, t) => progress("candidate generations", d, t),
  });
  // Stage 7, before: the original model; its harmless logits are the reference of the KL after.
  const before = await evaluateRefusal(model, test, {
    maxNewTokens: evalNewTokens,
    batchSize,
    refusalSubstrings: substrings,
    onProgress: (s, d, t) => progress(`${s}, before`, d, t),
  });
  const referenceLogits = lastPositionLogits(model, sets.harmlessTest, { batchSize });
  // The same on each further evaluation split.
  const splitsBefore: OriginalStages["splitsBefore"] = [];
  for (const split of splits)
    splitsBefore.push({
      evaluation: await evaluateRefusal(model, split, {
        maxNewTokens: evalNewTokens,
        batchSize,
        refusalSubstrings: substrings,
        onProgress: (s, d, t) => progress(`${s} (${split.name}), before`, d, t),
      }),
      logits: lastPositionLogits(model, split.harmless, { batchSize }),
    });
  const stages = {
    model: checkpoint.dir,
    backend,
    counts: Object.fromEntries(Object.entries(sets).map(([k, v]) => [k, v.length])),
    refusalTokens,
    newTokens: { candidates: maxNewTokens, evaluation: evalNewTokens },
    directions,
    selection,
    evaluations,
    chosen,
    edit: resolveEdit(directions, { key: directionKey(chosen) }, options.edit ?? {}, model.nLayers, "the run's directions"),
    before: { ...before, topicMention: topicMentionRate(sets.harmfulTest, before.completions.harmful) },
    exportDir,
    projections: {
      harmful: projectionsOn(model, sets.harmfulTest, chosen, { batchSize }),
      harmless: projectionsOn(model, sets.harmlessTest, chosen, { batchSize }),
    },
    samples: [],
    nLayers: model.nLayers,
    dModel: model.dModel,
    memory: { estimatedPeakBytes: estimate.totalBytes, weightLayout: model.weightPlan.layout },
  };
  // Stage 6's reference, last: where it is the in-memory orthogonalisation, the original is spent on it.
  const expectation = await expectedExport(model, stages.edit.direction.unit, verifyPrompts, {
    maxNewTokens,
    batchSize,
    inPlace: true,
    orthogonalize: stages.edit.orthogonalize,
  });
  return { stages, expectation, referenceLogits, splitsBefore };
}

type ReportInputs = Omit<
  RunReport,
  "backend" | "device" | "directions" | "cosine" | "selection" | "candidates" | "chosen" | "before" | "after"
> & {
  backend: { name: string; device: string };
  directions: ReturnType<typeof computeDirections>;
  selection: ReturnType<typeof scoreCandidates>;
  evaluations: RunReport["candidates"];
  chosen: UsableDirection;
  /** The edit made with the chosen direction (the variants asked for). */
  edit: ResolvedEdit;
  /** The test split's measures, with the share of harmful answers that mention their request's topic. */
  before: RefusalEvaluation & { topicMention: number };
  after: RefusalEvaluation & { topicMention: number };
};

/** The report of a run from what its stages returned. */
function buildReport(r: ReportInputs): RunReport {
  const atChosenHook = [...new Set(r.directions.map((d) => d.layer))].map((l) =>
    r.directions.find((d) => d.layer === l && d.hook === r.chosen.hook && d.tokenOffset === r.chosen.tokenOffset)!,
  );
  return {
    model: r.model,
    backend: r.backend.name,
    device: r.backend.device,
    nLayers: r.nLayers,
    dModel: r.dModel,
    counts: r.counts,
    refusalTokens: r.refusalTokens,
    newTokens: r.newTokens,
    directions: r.directions.map((d) => ({ layer: d.layer, hook: d.hook, tokenOffset: d.tokenOffset, norm: d.norm })),
    cosine: {
      hook: r.chosen.hook,
      layers: atChosenHook.map((d) => d.layer),
      matrix: atChosenHook.map((a) => atChosenHook.map((b) => cosineSimilarity(a.raw, b.raw))),
    },
    selection: {
      mode: r.selection.mode ?? "extended",
      baseline: r.selection.baseline,
      filters: r.selection.filters,
      passes: r.selection.passes,
      seconds: r.selection.seconds,
      exhaustive: r.selection.exhaustive,
      candidates: r.selection.candidates.map(({ direction, ...rest }) => ({ ...rest, layer: direction.layer, hook: direction.hook })),
      chosen: directionKey(r.chosen),
    },
    candidates: r.evaluations,
    chosen: {
      key: directionKey(r.chosen),
      layer: r.chosen.layer,
      hook: r.chosen.hook,
      tokenOffset: r.chosen.tokenOffset,
      norm: r.chosen.norm,
    },
    before: {
      harmfulRefusalRate: r.before.harmfulRefusalRate,
      harmlessRefusalRate: r.before.harmlessRefusalRate,
      topicMention: r.before.topicMention,
    },
    after: {
      harmfulRefusalRate: r.after.harmfulRefusalRate,
      harmlessRefusalRate: r.after.harmlessRefusalRate,
      harmlessKl: r.after.harmlessKl!,
      topicMention: r.after.topicMention,
    },
    testTokensPerWord: r.testTokensPerWord,
    splits: r.splits,
    agreement: r.agreement,
    planted: r.planted,
    projections: r.projections,
    verify: r.verify,
    samples: r.samples,
    exportDir: r.exportDir,
    adapter: r.adapter,
    memory: r.memory,
    seconds: r.seconds,
  };
}
