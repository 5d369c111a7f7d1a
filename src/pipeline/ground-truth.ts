// For a model whose refusal mechanism is known (the demo model, whose safety tuning wrote along one planted
// direction): how close the found directions are to it, and what else the difference of means carries.
import { join, resolve } from "node:path";
import { DEMO_BASE_MODEL_DIR, DEMO_MODEL_DIR } from "../paths.ts";
import { exists } from "../files.ts";
import { collectMeanActivations } from "./activations.ts";
import { computeDirections, cosineSimilarity, type Direction, type UsableDirection } from "./directions.ts";
import { loadModel } from "../load.ts";
import { dot } from "../projection.ts";
import { SafetensorsFile } from "../safetensors/read.ts";

export interface PlantedDirection {
  /** The layer whose MLP units write it (it is in the residual stream from that layer's resid_post on). */
  unitLayer: number;
  /** The layer whose attention head writes it (gathering it into the last position). */
  headLayer: number;
  /** Unit vector [d_model]. */
  direction: Float64Array;
}

/** The planted direction saved beside a checkpoint (planted.safetensors), or undefined when it has none. */
export async function loadPlanted(modelDir: string): Promise<PlantedDirection | undefined> {
  const path = join(modelDir, "planted.safetensors");
  if (!(await exists(path))) return undefined;
  const file = await SafetensorsFile.open(path);
  try {
    if (file.header.metadata.format !== "abliterate-planted")
      throw new Error(`${path}: not a planted-direction file (metadata.format is ${JSON.stringify(file.header.metadata.format)})`);
    const layerField = (field: string): number => {
      const value = Number(file.header.metadata[field]);
      if (!Number.isInteger(value) || value < 0)
        throw new Error(`${path}: metadata.${field} must be a layer index, got ${JSON.stringify(file.header.metadata[field])}`);
      return value;
    };
    return {
      unitLayer: layerField("unit_layer"),
      headLayer: layerField("head_layer"),
      direction: Float64Array.from(await file.readFloat32("safety.write_direction")),
    };
  } finally {
    await file.close();
  }
}

/** Cosine of each direction with the planted one. */
export function cosineWithPlanted(
  directions: readonly Direction[],
  planted: PlantedDirection,
): { layer: number; hook: string; tokenOffset: number; cosine: number }[] {
  return directions.map((d) => ({
    layer: d.layer,
    hook: d.hook,
    tokenOffset: d.tokenOffset,
    cosine: cosineSimilarity(d.raw, planted.direction),
  }));
}

/**
 * Split a difference of means r into what lies along the planted direction, what lies along another
 * difference of means `other` (e.g. the same hook's in the model before safety tuning: the harmful/harmless
 * distinction it already made), and the rest: shares of |r|^2, by least squares on the two directions.
 */
export function explainDifference(
  raw: ArrayLike<number>,
  planted: ArrayLike<number>,
  other: ArrayLike<number>,
): { planted: number; other: number; rest: number } {
  const rr = dot(raw, raw);
  if (rr === 0) throw new Error("explainDifference: the difference of means is zero");
  // Solve [p.p p.o; o.p o.o] [a; b] = [p.r; o.r].
  const pp = dot(planted, planted),
    po = dot(planted, other),
    oo = dot(other, other),
    pr = dot(planted, raw),
    or = dot(other, raw);
  const det = pp * oo - po * po;
  const a = det === 0 ? pr / pp : (pr * oo - or * po) / det;
  const b = det === 0 ? 0 : (or * pp - pr * po) / det;
  // Shares of the fitted part, attributed in the order planted first, then what `other` adds beyond it.
  const alongPlanted = (pr * pr) / pp;
  const fitted = a * pr + b * or;
  return { planted: alongPlanted / rr, other: (fitted - alongPlanted) / rr, rest: 1 - fitted / rr };
}

/**
 * The model whose harmful answers coherent compliance is measured against: the one given, or for the demo
 * model its stage-1 model (models/demo-base), which answers every request; otherwise none.
 */
export function defaultComplianceReference(originalSource: string, given?: string): string | undefined {
  if (given !== undefined) return given;
  return resolve(originalSource) === resolve(DEMO_MODEL_DIR) ? DEMO_BASE_MODEL_DIR : undefined;
}

/** How the found directions compare with the one the demo was taught to refuse along. */
export interface PlantedSummary {
  unitLayer: number;
  headLayer: number;
  chosenCosine: number;
  /** Shares of the chosen difference of means' squared norm (see explainDifference), when the model before safety tuning is at hand. */
  explained?: { planted: number; other: number; rest: number };
  cosines: { layer: number; hook: string; tokenOffset: number; cosine: number }[];
}

/**
 * The demo's ground truth, a step after the method: where the model ships its planted direction, the found
 * directions' cosines with it and, with the model before safety tuning (`reference`), the same difference of
 * means in that model, which the chosen one carries beside the planted direction. Undefined for any other model.
 */
export async function demoGroundTruth(
  modelSource: string,
  directions: readonly Direction[],
  chosen: UsableDirection,
  options: {
    reference?: string;
    train: { harmful: string[]; harmless: string[] };
    batchSize?: number;
    tokenOffsets?: readonly number[];
    onProgress?: (stage: string, done: number, total: number, detail?: string) => void;
  },
): Promise<PlantedSummary | undefined> {
  const planted = await loadPlanted(modelSource);
  if (!planted) return undefined;
  let referenceDirections: Direction[] | undefined;
  if (options.reference) {
    const reference = await loadModel(options.reference);
    try {
      const collect = (name: string, items: string[]) =>
        collectMeanActivations(reference, items, {
          batchSize: options.batchSize,
          tokenOffsets: options.tokenOffsets,
          onProgress: (d, t) => options.onProgress?.(`activations (${name}, compliance reference)`, d, t),
        });
      referenceDirections = computeDirections(
        await collect("harmful", options.train.harmful),
        await collect("harmless", options.train.harmless),
      );
    } finally {
      reference.dispose();
    }
  }
  return plantedSummary(directions, chosen, planted, referenceDirections);
}

/** How the found directions compare with the planted one, and what the chosen one carries besides it. */
function plantedSummary(
  directions: readonly Direction[],
  chosen: UsableDirection,
  planted: PlantedDirection,
  referenceDirections?: readonly Direction[],
): PlantedSummary {
  if (planted.direction.length !== chosen.raw.length)
    throw new Error(
      `planted.safetensors: safety.write_direction has ${planted.direction.length} values, but the model's d_model is ${chosen.raw.length}`,
    );
  const cosines = cosineWithPlanted(directions, planted);
  const same = (d: { layer: number; hook: string; tokenOffset: number }) =>
    d.layer === chosen.layer && d.hook === chosen.hook && d.tokenOffset === chosen.tokenOffset;
  const before = referenceDirections?.find(same);
  return {
    unitLayer: planted.unitLayer,
    headLayer: planted.headLayer,
    chosenCosine: cosines.find(same)!.cosine,
    explained: before && explainDifference(chosen.raw, planted.direction, before.raw),
    cosines,
  };
}

/**
 * The demo's ground truth as a step of `runPipeline`'s report (`reportSteps: [groundTruthStep]`): `planted`,
 * for a model that ships its planted direction; nothing for any other model.
 */
export async function groundTruthStep(findings: {
  modelSource: string;
  complianceSource?: string;
  directions: Direction[];
  chosen: UsableDirection;
  train: { harmful: string[]; harmless: string[] };
  batchSize: number;
  tokenOffsets?: number[];
  onProgress: (stage: string, done: number, total: number, detail?: string) => void;
}): Promise<{ planted?: PlantedSummary }> {
  const { modelSource, complianceSource, directions, chosen, ...rest } = findings;
  const planted = await demoGroundTruth(modelSource, directions, chosen, { reference: complianceSource, ...rest });
  return planted ? { planted } : {};
}
