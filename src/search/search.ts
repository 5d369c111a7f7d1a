// Automatic abliteration: a seeded TPE search over the edit's parameters (the edit variants: hook point and
// fractional direction index, a strength kernel per component, projected and biprojected directions, norm
// preservation), minimising two objectives at once: refusals on harmful prompts and KL on harmless ones. A user
// picks a trial from the Pareto front and exports it with `apply --trial N --study FILE`.
// Each trial runs as hooks where they compute exactly the baked edit (no norm after the residual writes, not
// norm-preserving), otherwise with the weights edited in place and restored afterwards: never a second model.
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import type { HookedModel } from "../hooked-model.ts";
import { RESID_HOOKS, type ResidHook } from "../hooks.ts";
import { generateCompletions } from "../generation.ts";
import { klReference, tailLogits } from "../pipeline/damage.ts";
import { editHooks, withHooks } from "../interventions.ts";
import { directionKey, harmlessMeansAt, usable, type Direction } from "../pipeline/directions.ts";
import { resolveEdit, type EditVariants, type ResolvedEdit } from "../pipeline/edit.ts";
import { withEditInPlace } from "../pipeline/compare.ts";
import { meanKl, refusalRate } from "../pipeline/measures.ts";
import type { RefusalDetector } from "../pipeline/detectors.ts";
import type { FwdHook } from "../hooks.ts";
import { paretoFront } from "./pareto.ts";
import { sampleParams, TPE_DEFAULTS, type Params, type SearchSpace } from "./tpe.ts";
import {
  appendStudyLine,
  createStudy,
  readStudy,
  settingsDiffer,
  type Study,
  type StudySettings,
  type TrialMeasures,
  type TrialRecord,
} from "./study.ts";

const COMPONENTS = ["attention", "mlp"] as const;

/**
 * The search space on this model's directions, after heretic's: the direction index in [0.4, 0.9] x (L - 1)
 * (narrowed to the layers whose direction is usable at every hook searched), and per component a kernel with
 * maxWeight in [0.8, 1.5], maxWeightPosition in [0, L - 1], minWeight a fraction in [0, 1] of maxWeight (heretic
 * draws it in [0, maxWeight], a range TPE cannot model) and minWeightDistance in [1, L - 1]; the hook point where
 * the file holds several; and the switches projected, biprojected (where the file holds the harmless means) and
 * norm-preserving. heretic's own kernel ranges, maxWeightPosition in [0.6, 1] x (L - 1) and minWeightDistance
 * in [1, 0.6 (L - 1)], are `kernelRanges: "heretic"`: made for models of 30 layers and more, on a shallow model
 * they leave the early layers unedited (on the 6-layer demo no trial of 40 then bypasses refusal).
 */
export function editSearchSpace(
  directions: readonly Direction[],
  nLayers: number,
  options: { tokenOffset?: number; hooks?: readonly ResidHook[]; normPreserving?: boolean; kernelRanges?: "heretic" | "whole" } = {},
): SearchSpace {
  const depth = options.kernelRanges ?? "whole";
  const tokenOffset = options.tokenOffset ?? -1;
  const at = directions.filter((d) => d.tokenOffset === tokenOffset);
  const hooks = (options.hooks ?? RESID_HOOKS).filter((h) => at.some((d) => d.hook === h));
  if (hooks.length === 0)
    throw new Error(`no directions at token offset ${tokenOffset}${options.hooks ? ` for hooks ${options.hooks.join(", ")}` : ""}`);
  // Layers whose direction is usable at every hook searched (resid_pre of layer 0 is the embedding: no direction).
  const usableAt = (layer: number) =>
    hooks.every((hook) => {
      const d = at.find((x) => x.hook === hook && x.layer === layer);
      if (!d) return false;
      try {
        usable(d);
        return true;
      } catch {
        return false;
      }
    });
  const last = nLayers - 1;
  let low = 0.4 * last;
  let high = 0.9 * last;
  while (low < high && !(usableAt(Math.floor(low)) && usableAt(Math.ceil(low)))) low = Math.floor(low) + 1;
  while (high > low && !(usableAt(Math.floor(high)) && usableAt(Math.ceil(high)))) high = Math.ceil(high) - 1;
  if (!(low < high)) throw new Error(`too few usable directions for a search: need two adjacent layers in [${0.4 * last}, ${0.9 * last}]`);
  const space: Record<string, SearchSpace[string]> = {};
  if (hooks.length > 1) space.hook = { kind: "categorical", choices: hooks };
  space.directionIndex = { kind: "float", low, high };
  for (const c of COMPONENTS) {
    space[`${c}.maxWeight`] = { kind: "float", low: 0.8, high: 1.5 };
    space[`${c}.maxWeightPosition`] = { kind: "float", low: depth === "heretic" ? 0.6 * last : 0, high: last };
    space[`${c}.minWeightFraction`] = { kind: "float", low: 0, high: 1 };
    space[`${c}.minWeightDistance`] = { kind: "float", low: 1, high: Math.max(2, depth === "heretic" ? 0.6 * last : last) };
  }
  const hasMeans = at.every((d) => d.harmlessMean !== undefined);
  if (hasMeans) space.projected = { kind: "categorical", choices: [false, true] };
  let biprojectable = true;
  try {
    harmlessMeansAt(directions, tokenOffset, nLayers, "directions");
  } catch {
    biprojectable = false;
  }
  if (biprojectable) space.biprojected = { kind: "categorical", choices: [false, true] };
  if (options.normPreserving !== false) space.normPreserving = { kind: "categorical", choices: [false, true] };
  return space;
}

/** The edit variants a trial's parameters stand for (fixed where the space does not search a parameter). */
export function trialVariants(params: Params): { index: number; hook: ResidHook; variants: EditVariants } {
  const num = (name: string) => {
    const v = params[name];
    if (typeof v !== "number" || !Number.isFinite(v))
      throw new Error(`trial parameter ${name} must be a finite number, got ${JSON.stringify(v)}`);
    return v;
  };
  const kernels = Object.fromEntries(
    COMPONENTS.filter((c) => `${c}.maxWeight` in params).map((c) => [
      c,
      {
        maxWeight: num(`${c}.maxWeight`),
        maxWeightPosition: num(`${c}.maxWeightPosition`),
        minWeight: num(`${c}.minWeightFraction`) * num(`${c}.maxWeight`),
        minWeightDistance: num(`${c}.minWeightDistance`),
      },
    ]),
  );
  return {
    index: num("directionIndex"),
    hook: (params.hook as ResidHook | undefined) ?? "resid_pre",
    variants: {
      kernels: Object.keys(kernels).length > 0 ? kernels : undefined,
      projectAgainstHarmless: params.projected === true,
      biproject: params.biprojected === true,
      normPreserving: params.normPreserving === true,
    },
  };
}

/** The edit of a trial: its direction at the fractional index of its hook, and its variants. */
export function trialEdit(
  params: Params,
  directions: readonly Direction[],
  tokenOffset: number,
  nLayers: number,
  source: string,
): ResolvedEdit {
  const { index, hook, variants } = trialVariants(params);
  const where = directions.find((d) => d.hook === hook && d.tokenOffset === tokenOffset);
  if (!where) throw new Error(`${source} has no directions at ${hook}@${tokenOffset}`);
  return resolveEdit(directions, { index, key: directionKey(where) }, variants, nLayers, source);
}

/** Whether hooks compute exactly this edit on this model (see editHooks). */
export const hooksAreExact = (model: HookedModel, edit: ResolvedEdit) => !edit.orthogonalize.normPreserving && !model.arch.sandwichNorms;

export interface SearchOptions {
  /** Trials in the study when the search ends (a resumed study runs only those missing). */
  trials: number;
  seed: number;
  startupTrials?: number;
  candidates?: number;
  /** Harmful prompts a trial's refusals are counted on, and harmless prompts its KL is measured on. */
  harmful: readonly string[];
  harmless: readonly string[];
  /** The directions file (for the study's record) and the model's name as given. */
  directionsFile: string;
  model: string;
  tokenOffset?: number;
  /** The space searched (default editSearchSpace of the directions). */
  space?: SearchSpace;
  /** New tokens generated per harmful prompt to look for a refusal in (default 32). */
  maxNewTokens?: number;
  refusalSubstrings?: readonly string[];
  /**
   * What counts a refusal instead of the substrings: any detector (keywordDetectors, a judge model's judgeDetector).
   * Its name is recorded in the study.
   */
  detector?: RefusalDetector;
  /** KL over the first k answer tokens of the original's greedy answer (teacher-forced); 1: the first token only. */
  klTokens?: number;
  batchSize?: number;
  /** Study file: created, or resumed when it exists with the same settings. Without it the study is kept in memory. */
  study?: string;
  /** Edits measured once beside the trials (e.g. the paper's selected direction, edited fully), by key. */
  references?: readonly { label: string; key: string }[];
  onTrial?: (trial: TrialRecord, study: Study) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** A hash of the prompts a study measures on, so that resuming on other prompts is refused. */
const promptsHash = (harmful: readonly string[], harmless: readonly string[]) =>
  createHash("sha256").update(JSON.stringify({ harmful, harmless })).digest("hex");

/**
 * Search the edit: `trials` trials (random start-up, then TPE), each measured on the harmful and harmless prompts,
 * written to the study file as it ends. Returns the study with the no-intervention point and the Pareto front.
 */
export async function searchEdits(
  model: HookedModel,
  directions: readonly Direction[],
  options: SearchOptions,
): Promise<Study & { front: number[] }> {
  if (!Number.isInteger(options.trials) || options.trials < 1) throw new Error(`trials must be a positive integer, got ${options.trials}`);
  if (options.harmful.length === 0 || options.harmless.length === 0) throw new Error("a search needs harmful and harmless prompts");
  if (options.detector && options.refusalSubstrings)
    throw new Error("a search counts refusals with one detector: give refusal substrings or a detector, not both");
  const tokenOffset = options.tokenOffset ?? -1;
  const klTokens = options.klTokens ?? 1;
  if (!Number.isInteger(klTokens) || klTokens < 1) throw new Error(`klTokens must be a positive integer, got ${klTokens}`);
  const settings: StudySettings = {
    seed: options.seed,
    startupTrials: options.startupTrials ?? TPE_DEFAULTS.startupTrials,
    candidates: options.candidates ?? TPE_DEFAULTS.candidates,
    space: options.space ?? editSearchSpace(directions, model.nLayers, { tokenOffset }),
    directionsFile: options.directionsFile,
    tokenOffset,
    model: options.model,
    data: { harmful: options.harmful.length, harmless: options.harmless.length, sha256: promptsHash(options.harmful, options.harmless) },
    evaluation: {
      maxNewTokens: options.maxNewTokens ?? 32,
      refusalSubstrings: options.refusalSubstrings ?? null,
      klTokens,
      detector: options.detector?.name ?? (options.refusalSubstrings ? "substrings" : "paper"),
    },
  };
  let study: Study;
  const file = options.study;
  if (file && (await stat(file).catch(() => undefined))) {
    study = await readStudy(file, { repair: true });
    const differ = settingsDiffer(study.header, settings);
    if (differ.length > 0)
      throw new Error(`${file} is a study with other settings; resume it with its own, or choose another file:\n  ${differ.join("\n  ")}`);
  } else {
    const header = file ? await createStudy(file, settings) : { kind: "abliterate-study" as const, version: 1 as const, ...settings };
    study = { file, header, references: [], trials: [] };
  }
  const { batchSize, onProgress } = options;
  const record = async (entry: Parameters<typeof appendStudyLine>[1]) => {
    if (file) await appendStudyLine(file, entry);
  };

  const reference = await klReference(model, options.harmless, klTokens, batchSize);
  const measureWith = async (fwdHooks: readonly FwdHook[]): Promise<TrialMeasures> => {
    const answers = await generateCompletions(model, options.harmful, {
      fwdHooks,
      maxNewTokens: settings.evaluation.maxNewTokens,
      batchSize,
    });
    return {
      refusal: options.detector
        ? (await options.detector.detect(answers, options.harmful)).filter(Boolean).length / answers.length
        : refusalRate(answers, options.refusalSubstrings),
      kl: meanKl(reference.logits, tailLogits(model, reference.ids, reference.positions, fwdHooks, batchSize)),
    };
  };
  const measureEdit = async (edit: ResolvedEdit): Promise<TrialMeasures & { evaluatedWith: TrialRecord["evaluatedWith"] }> =>
    hooksAreExact(model, edit)
      ? { ...(await withHooks(editHooks(model, edit.direction.unit, edit.orthogonalize), measureWith)), evaluatedWith: "hooks" }
      : { ...(await withEditInPlace(model, edit.direction.unit, edit.orthogonalize, () => measureWith([]))), evaluatedWith: "weights" };

  if (!study.baseline) {
    onProgress?.("no intervention", 0, 1);
    study.baseline = await measureWith([]);
    await record({ baseline: study.baseline });
  }
  for (const ref of options.references ?? []) {
    if (study.references.some((r) => r.label === ref.label && r.key === ref.key)) continue;
    onProgress?.(`reference ${ref.label}`, 0, 1);
    const edit = resolveEdit(directions, { key: ref.key }, {}, model.nLayers, options.directionsFile);
    const { refusal, kl } = await measureEdit(edit);
    const entry = { label: ref.label, key: ref.key, refusal, kl };
    study.references.push(entry);
    await record({ reference: entry });
  }
  for (let n = study.trials.length; n < options.trials; n++) {
    onProgress?.("trials", n, options.trials);
    const started = performance.now();
    const history = study.trials.map((t) => ({ params: t.params, values: [t.refusal, t.kl] }));
    const params = sampleParams(settings.space, history, n, {
      seed: settings.seed,
      startupTrials: settings.startupTrials,
      candidates: settings.candidates,
    });
    const measured = await measureEdit(trialEdit(params, directions, tokenOffset, model.nLayers, options.directionsFile));
    const trial: TrialRecord = { trial: n, params, ...measured, seconds: (performance.now() - started) / 1000 };
    study.trials.push(trial);
    await record(trial);
    options.onTrial?.(trial, study);
  }
  onProgress?.("trials", options.trials, options.trials);
  return { ...study, front: studyFront(study) };
}

/** Trial numbers on the Pareto front of (refusal, KL). */
export const studyFront = (study: Pick<Study, "trials">) =>
  paretoFront(study.trials.map((t) => [t.refusal, t.kl])).map((i) => study.trials[i].trial);
