// Stage 4: rank candidate directions. The blog ranks by the mean absolute value of the direction and
// inspects generations; the paper (Arditi et al. 2024, appendix C) selects automatically:
//   bypass score: mean refusal score on harmful prompts with the direction ablated everywhere;
//   induce score: mean refusal score on harmless prompts with the direction added at its layer;
//   KL score:     mean KL(base || ablated) of harmless next-token distributions.
// Discard candidates with KL > 0.1, induce score < 0, or a layer in the last 20% of the model;
// choose the lowest bypass score.
import type { HookedModel } from "../hooked-model.ts";
import { activationAdditionHooks, directionAblationHooks, withHooks } from "../interventions.ts";
import type { Prompts } from "./batches.ts";
import { directionKey, type Direction, type UsableDirection } from "./directions.ts";
import { lastPositionLogits, meanKl } from "./evaluate.ts";
import { refusalScore } from "./scores.ts";

export interface CandidateScores {
  key: string;
  direction: UsableDirection;
  bypass: number;
  induce: number;
  kl: number;
  /** Why the candidate was discarded, or undefined when it passed the filters. */
  discarded?: string;
}

export interface SelectionFilters {
  /** Discard candidates whose harmless KL exceeds this (0.1). */
  klThreshold: number;
  /** Discard candidates whose induce score is below this (0). */
  induceThreshold: number;
  /** Discard layers at or after (1 - fraction) * n_layers (0.2). */
  pruneLayerFraction: number;
}

export const DEFAULT_SELECTION_FILTERS: SelectionFilters = { klThreshold: 0.1, induceThreshold: 0, pruneLayerFraction: 0.2 };

export interface SelectionOptions extends Partial<SelectionFilters> {
  refusalTokens: readonly number[];
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Selection {
  candidates: CandidateScores[];
  /** The lowest bypass score among the candidates that passed the filters. */
  chosen?: CandidateScores;
  baseline: { harmfulRefusalScore: number; harmlessRefusalScore: number };
  filters: SelectionFilters;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The blog's ranking: candidates sorted by |mean of the direction's values|, largest first. */
export function rankByMeanAbs<D extends Direction>(directions: readonly D[]): D[] {
  const score = (d: Direction) => Math.abs(d.raw.reduce((a, b) => a + b, 0) / d.raw.length);
  return [...directions].sort((a, b) => score(b) - score(a));
}

export function scoreCandidates(model: HookedModel, candidates: readonly UsableDirection[], harmful: Prompts, harmless: Prompts, options: SelectionOptions): Selection {
  if (harmful.length === 0 || harmless.length === 0) throw new Error("selection needs harmful and harmless validation instructions");
  const filters: SelectionFilters = {
    klThreshold: options.klThreshold ?? DEFAULT_SELECTION_FILTERS.klThreshold,
    induceThreshold: options.induceThreshold ?? DEFAULT_SELECTION_FILTERS.induceThreshold,
    pruneLayerFraction: options.pruneLayerFraction ?? DEFAULT_SELECTION_FILTERS.pruneLayerFraction,
  };
  const maxLayer = Math.floor(model.nLayers * (1 - filters.pruneLayerFraction));
  const batchSize = options.batchSize;
  const score = (rows: Float32Array[]) => mean(rows.map((r) => refusalScore(r, options.refusalTokens)));
  const baseHarmless = lastPositionLogits(model, harmless, { batchSize });
  const baseline = { harmfulRefusalScore: score(lastPositionLogits(model, harmful, { batchSize })), harmlessRefusalScore: score(baseHarmless) };
  const scored: CandidateScores[] = [];
  for (const [i, direction] of candidates.entries()) {
    const { bypass, kl } = withHooks(directionAblationHooks(model, direction.unit), (fwdHooks) => ({
      bypass: score(lastPositionLogits(model, harmful, { fwdHooks, batchSize })),
      kl: meanKl(baseHarmless, lastPositionLogits(model, harmless, { fwdHooks, batchSize })),
    }));
    const induce = withHooks(activationAdditionHooks(model, direction.raw, direction.layer, 1, direction.hook), (fwdHooks) => score(lastPositionLogits(model, harmless, { fwdHooks, batchSize })));
    let discarded: string | undefined;
    if (direction.layer >= maxLayer) discarded = `layer ${direction.layer} is in the last ${Math.round(100 * filters.pruneLayerFraction)}% of the model`;
    else if (!(kl <= filters.klThreshold)) discarded = `KL ${kl.toFixed(3)} > ${filters.klThreshold}`;
    else if (!(induce >= filters.induceThreshold)) discarded = `induce score ${induce.toFixed(2)} < ${filters.induceThreshold}`;
    scored.push({ key: directionKey(direction), direction, bypass, induce, kl, discarded });
    options.onProgress?.(i + 1, candidates.length);
  }
  const passing = scored.filter((c) => !c.discarded).sort((a, b) => a.bypass - b.bypass);
  return { candidates: scored, chosen: passing[0], baseline, filters };
}

/** Candidates best first: those that passed the filters by bypass score, then the discarded ones. */
export function rankedCandidates(selection: Selection): CandidateScores[] {
  return [...selection.candidates].sort((a, b) => Number(!!a.discarded) - Number(!!b.discarded) || a.bypass - b.bypass);
}

/** The chosen candidate, or an error that states the filters and why the best candidates failed them. */
export function chosenCandidate(selection: Selection): CandidateScores {
  if (selection.chosen) return selection.chosen;
  const { klThreshold, induceThreshold, pruneLayerFraction } = selection.filters;
  const best = rankedCandidates(selection).slice(0, 3).map((c) => `${c.key}: ${c.discarded}`).join("; ");
  throw new Error(`no candidate direction passed the selection filters (KL <= ${klThreshold}, induce >= ${induceThreshold}, layer in the first ${Math.round(100 * (1 - pruneLayerFraction))}%): ${best}`);
}
