// Stage 4: rank candidate directions. The blog ranks the unit resid_pre directions by the absolute value of the
// mean of their entries and reads generations; the paper (Arditi et al. 2024, appendix C) selects automatically:
//   bypass score: mean refusal score on harmful prompts with the direction ablated everywhere;
//   induce score: mean refusal score on harmless prompts with the direction added at its layer;
//   KL score:     mean KL(base || ablated) of harmless next-token distributions.
// Discard candidates with KL > 0.1, induce score < 0, or a layer in the last 20% of the model;
// choose the lowest bypass score.
// The same choice at a fraction of the paper's brute force (three passes per candidate per prompt): the layer
// filter is applied before scoring, the unhooked baselines are computed once, every candidate gets its bypass
// score, and KL and induce are computed in ascending order of bypass only until a candidate passes both:
// no candidate after it can win. `exhaustive` scores every candidate in full, for the plots.
// The paper's candidates are resid_pre at every post-instruction token (paperCandidates; `select`'s default, with
// the paper's epsilons 1e-8 in the refusal score and 1e-6 in KL). Other hooks are an extension (what `run` scores:
// every hook at the last token): the layer filter and the induce score then take resid_post@l as resid_pre@l+1
// (candidateBlock), and induce adds the direction at the input of the candidate's block, as the paper does.
import type { FwdHook } from "../hooks.ts";
import type { HookedModel } from "../hooked-model.ts";
import { activationAdditionHooks, directionAblationHooks, withHooks } from "../interventions.ts";
import type { Prompts } from "../batches.ts";
import { directionKey, usableDirections, type Direction, type UsableDirection } from "./directions.ts";
import { lastPositionLogits } from "../generation.ts";
import { meanKl } from "./measures.ts";
import { refusalScore } from "./scores.ts";
import { unitVector, type UnitVector } from "../projection.ts";

export interface CandidateScores {
  key: string;
  direction: UsableDirection;
  /** NaN where a score was not needed (see the discard reason). */
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
  /** Epsilon inside the refusal score's logarithms (the paper's code: 1e-8; default 0, the exact log-odds). */
  refusalEpsilon?: number;
  /** Epsilon inside the KL score's logarithms (the paper's code: 1e-6; default 0, the exact KL). */
  klEpsilon?: number;
  batchSize?: number;
  /** Score every candidate in full (three passes per prompt each), as the paper does, instead of stopping early. */
  exhaustive?: boolean;
  /** Score at most this many candidates (those of largest norm), to cap the time selection takes. */
  maxCandidates?: number;
  /** How many candidates that pass the filters to find, best first, before stopping early (default 1). */
  keep?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Selection {
  candidates: CandidateScores[];
  /** The lowest bypass score among the candidates that passed the filters. */
  chosen?: CandidateScores;
  baseline: { harmfulRefusalScore: number; harmlessRefusalScore: number };
  filters: SelectionFilters;
  /** Forward passes of one prompt each that the selection ran, and its wall time. */
  passes: number;
  seconds: number;
  exhaustive: boolean;
  /** The candidate set and scores it ran with, where the caller said (paperCandidates: "paper"). */
  mode?: "paper" | "extended";
}

/**
 * The block a candidate belongs to: the layer whose input it is. resid_pre@l and resid_mid@l belong to block l;
 * resid_post@l is resid_pre@l+1, the input of block l + 1. The paper's candidates are all resid_pre; extended to
 * the other hooks this way, the layer filter and the induce score treat a resid_post direction as the next block's.
 */
export const candidateBlock = (d: Pick<Direction, "hook" | "layer">) => (d.hook === "resid_post" ? d.layer + 1 : d.layer);

/**
 * The paper's post-instruction tokens: what the chat template puts after the instruction (e.g. Llama 3's
 * "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", 5 tokens), encoded alone as the paper's code does
 * (tokenizer.encode(template.split("{instruction}")[-1])). Returns their token offsets, -n to -1.
 */
export function postInstructionOffsets(model: Pick<HookedModel, "tokenizer">): number[] {
  const marker = "\u0000INSTRUCTION\u0000";
  const text = model.tokenizer.formatInstruction(marker);
  const at = text.lastIndexOf(marker);
  if (at < 0) throw new Error("the chat template does not place the instruction in its output: no post-instruction tokens to find");
  const n = model.tokenizer.encode(text.slice(at + marker.length)).length;
  if (n === 0)
    throw new Error("the chat template puts nothing after the instruction: the paper's post-instruction tokens need at least one");
  return Array.from({ length: n }, (_, i) => i - n);
}

/**
 * The paper's candidate set: the resid_pre direction of every layer at every post-instruction token offset, the
 * unusable ones (no difference of means) left out. A directions file without every offset is refused, naming them.
 */
export function paperCandidates<D extends Direction>(
  directions: readonly D[],
  offsets: readonly number[],
  source: string,
): UsableDirection[] {
  const missing = offsets.filter((o) => !directions.some((d) => d.hook === "resid_pre" && d.tokenOffset === o));
  if (missing.length > 0)
    throw new Error(
      `${source} has no resid_pre directions at token offset${missing.length > 1 ? "s" : ""} ${missing.join(", ")}: the paper's ` +
        `candidates are every post-instruction token (${offsets.join(", ")}); compute them with abliterate directions --paper ` +
        `(or --token-offsets ${offsets.join(",")})`,
    );
  return usableDirections(directions.filter((d) => d.hook === "resid_pre" && offsets.includes(d.tokenOffset)));
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * A variant of the blog's ranking: every given candidate (any hook point, layer and token), raw (unnormalised),
 * sorted by |mean of its entries|, largest first. `blogRanking` is the blog's own.
 */
export function rankRawByMeanAbs<D extends Direction>(directions: readonly D[]): D[] {
  const score = (d: Direction) => Math.abs(d.raw.reduce((a, b) => a + b, 0) / d.raw.length);
  return [...directions].sort((a, b) => score(b) - score(a));
}

/** The refusal substrings the blog reads its candidates' generations with (its `blacklist`). */
export const BLOG_REFUSAL_BLACKLIST = ["I cannot", "I can't"];

/**
 * The blog's ranking, as its code does it: the last token's `resid_pre` directions of layers 1 to L-1 (layer
 * 0's is left out), each normalised to a unit vector, sorted by the absolute value of the mean of its entries,
 * largest first. Zero directions (no difference to normalise) are left out.
 */
export function blogRanking<D extends Direction>(directions: readonly D[]): (D & { unit: UnitVector })[] {
  const candidates = directions.filter((d) => d.hook === "resid_pre" && d.layer >= 1 && d.tokenOffset === -1 && d.norm > 0);
  if (candidates.length === 0)
    throw new Error("blogRanking: no non-zero resid_pre direction of layer 1 or later at the last token (offset -1) among the candidates");
  const ranked = candidates.map((d) => {
    const unit = unitVector(d.raw, directionKey(d));
    return { d: { ...d, unit }, score: Math.abs(unit.reduce((a, b) => a + b, 0) / unit.length) };
  });
  return ranked.sort((a, b) => b.score - a.score).map((r) => r.d);
}

export function scoreCandidates(
  model: HookedModel,
  candidates: readonly UsableDirection[],
  harmful: Prompts,
  harmless: Prompts,
  options: SelectionOptions,
): Selection {
  if (harmful.length === 0 || harmless.length === 0) throw new Error("selection needs harmful and harmless validation instructions");
  if (options.maxCandidates !== undefined && !(Number.isInteger(options.maxCandidates) && options.maxCandidates > 0))
    throw new Error(`maxCandidates must be a positive integer, got ${options.maxCandidates}`);
  const started = performance.now();
  const filters: SelectionFilters = {
    klThreshold: options.klThreshold ?? DEFAULT_SELECTION_FILTERS.klThreshold,
    induceThreshold: options.induceThreshold ?? DEFAULT_SELECTION_FILTERS.induceThreshold,
    pruneLayerFraction: options.pruneLayerFraction ?? DEFAULT_SELECTION_FILTERS.pruneLayerFraction,
  };
  const maxLayer = Math.floor(model.nLayers * (1 - filters.pruneLayerFraction));
  const batchSize = options.batchSize;
  let passes = 0;
  const logits = (prompts: Prompts, fwdHooks?: readonly FwdHook[]) => {
    passes += prompts.length;
    return lastPositionLogits(model, prompts, { fwdHooks, batchSize });
  };
  const score = (rows: Float32Array[]) => mean(rows.map((r) => refusalScore(r, options.refusalTokens, options.refusalEpsilon)));
  const baseHarmless = logits(harmless);
  const baseline = { harmfulRefusalScore: score(logits(harmful)), harmlessRefusalScore: score(baseHarmless) };
  const scores = new Map<UsableDirection, CandidateScores>();
  const record = (direction: UsableDirection, discarded?: string) => {
    const c: CandidateScores = { key: directionKey(direction), direction, bypass: NaN, induce: NaN, kl: NaN, discarded };
    scores.set(direction, c);
    return c;
  };
  // The layer filter first: those candidates are never scored. The paper keeps layers l < floor(L (1 - fraction)):
  // rounded to whole layers, the pruned tail can be more than the fraction (2 of 6 layers for 20%), said as such.
  const share = Math.round(100 * filters.pruneLayerFraction);
  const tail = `layers ${maxLayer}-${model.nLayers - 1} of ${model.nLayers} (the last ${share}%, rounded to whole layers)`;
  const subject = (d: UsableDirection) =>
    d.hook === "resid_post" ? `resid_post of layer ${d.layer} is the input of block ${candidateBlock(d)}, which` : `layer ${d.layer}`;
  const pruned = (d: UsableDirection) =>
    candidateBlock(d) >= model.nLayers
      ? `resid_post of the last layer is the model's output, the input of no block: pruned with ${tail}`
      : `${subject(d)} is in the pruned tail: ${tail}`;
  const eligible: UsableDirection[] = [];
  for (const d of candidates) {
    if (candidateBlock(d) >= maxLayer) record(d, pruned(d));
    else eligible.push(d);
  }
  const capped =
    options.maxCandidates !== undefined && eligible.length > options.maxCandidates
      ? [...eligible].sort((a, b) => b.norm - a.norm).slice(0, options.maxCandidates)
      : eligible;
  for (const d of eligible)
    if (!capped.includes(d)) record(d, `not scored: beyond the ${options.maxCandidates} candidates of largest norm (maxCandidates)`);
  const steps = options.exhaustive ? 3 * capped.length : capped.length + 2 * Math.min(capped.length, options.keep ?? 1);
  let done = 0;
  const tick = () => options.onProgress?.(++done, Math.max(done, steps));
  options.onProgress?.(0, steps);
  // Bypass of every candidate.
  for (const d of capped) {
    const c = record(d);
    c.bypass = withHooks(directionAblationHooks(model, d.unit), (fwdHooks) => score(logits(harmful, fwdHooks)));
    tick();
  }
  // KL and induce, in ascending order of bypass, until one passes both (or for every candidate when exhaustive).
  const passed: CandidateScores[] = [];
  for (const d of [...capped].sort((a, b) => scores.get(a)!.bypass - scores.get(b)!.bypass)) {
    const c = scores.get(d)!;
    if (passed.length >= (options.keep ?? 1) && !options.exhaustive) {
      const last = passed[passed.length - 1];
      c.discarded = `not needed: bypass ${c.bypass.toFixed(2)} is above ${last.key}'s ${last.bypass.toFixed(2)}, which passed`;
      continue;
    }
    c.kl = withHooks(directionAblationHooks(model, d.unit), (fwdHooks) =>
      meanKl(baseHarmless, logits(harmless, fwdHooks), options.klEpsilon),
    );
    tick();
    const klFails = !(c.kl <= filters.klThreshold);
    if (!klFails || options.exhaustive) {
      // The paper adds the raw direction at the input of its block only (resid_pre of candidateBlock).
      c.induce = withHooks(activationAdditionHooks(model, d.raw, candidateBlock(d), 1, "resid_pre"), (fwdHooks) =>
        score(logits(harmless, fwdHooks)),
      );
      tick();
    }
    if (klFails) c.discarded = `KL ${c.kl.toFixed(3)} > ${filters.klThreshold}`;
    else if (!(c.induce >= filters.induceThreshold)) c.discarded = `induce score ${c.induce.toFixed(2)} < ${filters.induceThreshold}`;
    else passed.push(c);
  }
  return {
    candidates: candidates.map((d) => scores.get(d)!),
    chosen: passed[0],
    baseline,
    filters,
    passes,
    seconds: (performance.now() - started) / 1000,
    exhaustive: options.exhaustive ?? false,
  };
}

/** A candidate's three scores and its block (candidateBlock), as the paper's filter reads them. */
export interface ScoredCandidate {
  key: string;
  block: number;
  bypass: number;
  induce: number;
  kl: number;
}

/**
 * The paper's choice on scores already computed (select_direction.py's filter_fn, then the lowest bypass): a
 * candidate is discarded when a score is NaN, its block is at or past floor(L (1 - pruneLayerFraction)), its KL is
 * above klThreshold, or its induce score is below induceThreshold, in that order; of the rest the lowest bypass
 * wins, the first in the order given on a tie. scoreCandidates reaches the same choice without computing every
 * score (the tests check one against the other).
 */
export function paperChoice(
  scores: readonly ScoredCandidate[],
  filters: SelectionFilters,
  nLayers: number,
): { chosen?: ScoredCandidate; discarded: Map<string, string> } {
  const maxBlock = Math.floor(nLayers * (1 - filters.pruneLayerFraction));
  const discarded = new Map<string, string>();
  let chosen: ScoredCandidate | undefined;
  for (const c of scores) {
    const why = [c.bypass, c.induce, c.kl].some(Number.isNaN)
      ? "a score is NaN"
      : c.block >= maxBlock
        ? `block ${c.block} is in the last ${Math.round(100 * filters.pruneLayerFraction)}% (blocks ${maxBlock}-${nLayers - 1})`
        : c.kl > filters.klThreshold
          ? `KL ${c.kl} > ${filters.klThreshold}`
          : c.induce < filters.induceThreshold
            ? `induce score ${c.induce} < ${filters.induceThreshold}`
            : undefined;
    if (why) discarded.set(c.key, why);
    else if (!chosen || c.bypass < chosen.bypass) chosen = c;
  }
  return { chosen, discarded };
}

/** Candidates best first: those that passed the filters by bypass score, then the discarded ones (unscored last). */
export function rankedCandidates(selection: Selection): CandidateScores[] {
  const bypass = (c: CandidateScores) => (Number.isNaN(c.bypass) ? Infinity : c.bypass);
  return [...selection.candidates].sort((a, b) => Number(!!a.discarded) - Number(!!b.discarded) || bypass(a) - bypass(b));
}

/** The chosen candidate, or an error that states the filters and why the best candidates failed them. */
export function chosenCandidate(selection: Selection): CandidateScores {
  if (selection.chosen) return selection.chosen;
  const { klThreshold, induceThreshold, pruneLayerFraction } = selection.filters;
  const best = rankedCandidates(selection)
    .slice(0, 3)
    .map((c) => `${c.key}: ${c.discarded}`)
    .join("; ");
  throw new Error(
    `no candidate direction passed the selection filters (KL <= ${klThreshold}, induce >= ${induceThreshold}, layer in the first ` +
      `${Math.round(100 * (1 - pruneLayerFraction))}%): ${best}`,
  );
}

/**
 * The paper's filtering of the instruction sets before the means are taken: keep the harmful instructions the
 * model refuses (refusal score above 0) and the harmless ones it does not (score below 0), judged by the
 * refusal score at the last position, so that the difference of means compares refusing with answering.
 */
export function filterByRefusalScore(
  model: HookedModel,
  sets: { harmful: readonly string[]; harmless: readonly string[] },
  options: { refusalTokens: readonly number[]; epsilon?: number; batchSize?: number },
): { harmful: string[]; harmless: string[]; dropped: { harmful: number; harmless: number } } {
  const scores = (prompts: readonly string[]) =>
    lastPositionLogits(model, prompts, { batchSize: options.batchSize }).map((row) =>
      refusalScore(row, options.refusalTokens, options.epsilon),
    );
  const [harmfulScores, harmlessScores] = [scores(sets.harmful), scores(sets.harmless)];
  const harmful = sets.harmful.filter((_, i) => harmfulScores[i] > 0);
  const harmless = sets.harmless.filter((_, i) => harmlessScores[i] < 0);
  if (harmful.length === 0)
    throw new Error(
      `filterByRefusalScore: the model refuses none of the ${sets.harmful.length} harmful instructions (refusal score > 0): are ` +
        `the refusal tokens right for this model?`,
    );
  if (harmless.length === 0) throw new Error(`filterByRefusalScore: the model refuses all ${sets.harmless.length} harmless instructions`);
  return {
    harmful,
    harmless,
    dropped: { harmful: sets.harmful.length - harmful.length, harmless: sets.harmless.length - harmless.length },
  };
}
