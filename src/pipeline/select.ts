// Stage 4: rank candidate directions. The blog ranks by the mean absolute value of the direction
// and inspects generations; the paper (Arditi et al. 2024, appendix C) selects automatically:
//   bypass score: mean refusal score on harmful prompts with the direction ablated everywhere;
//   induce score: mean refusal score on harmless prompts with the direction added at its layer;
//   KL score:     mean KL(base || ablated) of harmless next-token distributions.
// Discard candidates with KL > 0.1, induce score < 0, or a layer in the last 20% of the model;
// choose the lowest bypass score.
import { activationAdditionHooks, directionAblationHooks } from "../interventions.ts";
import type { HookedModel } from "../model.ts";
import { directionKey, type Direction } from "./directions.ts";
import { lastPositionLogits, meanKl } from "./evaluate.ts";
import { refusalScore } from "./scores.ts";

export interface CandidateScores {
  key: string;
  direction: Direction;
  bypass: number;
  induce: number;
  kl: number;
  /** Why the candidate was discarded, or undefined when it passed the filters. */
  discarded?: string;
}

export interface SelectionOptions {
  refusalTokens: readonly number[];
  klThreshold?: number;
  induceThreshold?: number;
  /** Discard layers at or after (1 - fraction) * n_layers. */
  pruneLayerFraction?: number;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Selection {
  candidates: CandidateScores[];
  chosen?: CandidateScores;
  baseline: { harmfulRefusalScore: number; harmlessRefusalScore: number };
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The blog's ranking: candidates sorted by |mean of the direction's values|, largest first. */
export function rankByMeanAbs(directions: readonly Direction[]): Direction[] {
  const score = (d: Direction) => Math.abs(d.raw.reduce((a, b) => a + b, 0) / d.raw.length);
  return [...directions].sort((a, b) => score(b) - score(a));
}

export function scoreCandidates(model: HookedModel, candidates: readonly Direction[], harmful: readonly string[] | readonly number[][], harmless: readonly string[] | readonly number[][], options: SelectionOptions): Selection {
  if (harmful.length === 0 || harmless.length === 0) throw new Error("selection needs harmful and harmless validation instructions");
  const klThreshold = options.klThreshold ?? 0.1;
  const induceThreshold = options.induceThreshold ?? 0;
  const maxLayer = Math.floor(model.nLayers * (1 - (options.pruneLayerFraction ?? 0.2)));
  const batchSize = options.batchSize;
  const score = (rows: Float32Array[]) => mean(rows.map((r) => refusalScore(r, options.refusalTokens)));
  const baseHarmless = lastPositionLogits(model, harmless, { batchSize });
  const baseline = { harmfulRefusalScore: score(lastPositionLogits(model, harmful, { batchSize })), harmlessRefusalScore: score(baseHarmless) };
  const scored: CandidateScores[] = [];
  for (const [i, direction] of candidates.entries()) {
    if (direction.norm === 0) throw new Error(`candidate ${directionKey(direction)} is all zeros: the harmful and harmless means are identical there`);
    const ablation = directionAblationHooks(direction.unit, model.nLayers);
    const addition = activationAdditionHooks(direction.raw, direction.layer, 1, direction.hook);
    try {
      const bypass = score(lastPositionLogits(model, harmful, { fwdHooks: ablation.fwdHooks, batchSize }));
      const ablatedHarmless = lastPositionLogits(model, harmless, { fwdHooks: ablation.fwdHooks, batchSize });
      const kl = meanKl(baseHarmless, ablatedHarmless);
      const induce = score(lastPositionLogits(model, harmless, { fwdHooks: addition.fwdHooks, batchSize }));
      let discarded: string | undefined;
      if (direction.layer >= maxLayer) discarded = `layer ${direction.layer} is in the last ${Math.round(100 * (options.pruneLayerFraction ?? 0.2))}% of the model`;
      else if (!(kl <= klThreshold)) discarded = `KL ${kl.toFixed(3)} > ${klThreshold}`;
      else if (!(induce >= induceThreshold)) discarded = `induce score ${induce.toFixed(2)} < ${induceThreshold}`;
      scored.push({ key: directionKey(direction), direction, bypass, induce, kl, discarded });
    } finally {
      ablation.dispose();
      addition.dispose();
    }
    options.onProgress?.(i + 1, candidates.length);
  }
  const passing = scored.filter((c) => !c.discarded).sort((a, b) => a.bypass - b.bypass);
  return { candidates: scored, chosen: passing[0], baseline };
}
