// Stage 7: refusal before and after, and the harmless KL, from greedy completions and last-position logits
// (the engine's, in ../generation.ts) and the measures stages 4 and 7 share (measures.ts).
import type { HookedModel } from "../hooked-model.ts";
import { generateCompletions, lastPositionLogits, type CompletionOptions } from "../generation.ts";
import { meanKl, refusalRate } from "./measures.ts";

export { generateCompletions, lastPositionLogits, type CompletionOptions } from "../generation.ts";
export { answerAgreement, DEFAULT_REFUSAL_SUBSTRINGS, isRefusal, meanKl, refusalRate, type AnswerAgreement } from "./measures.ts";

export interface RefusalEvaluation {
  harmfulRefusalRate: number;
  harmlessRefusalRate: number;
  /** Mean KL(reference || model) on the harmless instructions' last position, when a reference was given. */
  harmlessKl?: number;
  completions: { harmful: string[]; harmless: string[] };
}

export interface EvaluationOptions extends Omit<CompletionOptions, "onProgress"> {
  /** The model before abliteration, for the harmless KL. */
  reference?: HookedModel;
  /** Or its last-position logits on the harmless instructions, computed earlier (so it need not be in memory). */
  referenceLogits?: readonly Float32Array[];
  refusalSubstrings?: readonly string[];
  onProgress?: (stage: string, done: number, total: number) => void;
}

/**
 * Stage 7: refusal rates of a model (substring metric, greedy completions) on harmful and harmless
 * instructions, and its harmless KL divergence from a reference model.
 */
export async function evaluateRefusal(model: HookedModel, sets: { harmful: readonly string[]; harmless: readonly string[] }, options: EvaluationOptions = {}): Promise<RefusalEvaluation> {
  const completions = { harmful: [] as string[], harmless: [] as string[] };
  for (const kind of ["harmful", "harmless"] as const) {
    completions[kind] = await generateCompletions(model, sets[kind], { ...options, onProgress: (d, t) => options.onProgress?.(`generations (${kind})`, d, t) });
  }
  const reference = options.referenceLogits ?? (options.reference ? lastPositionLogits(options.reference, sets.harmless, options) : undefined);
  const harmlessKl = reference ? meanKl(reference, lastPositionLogits(model, sets.harmless, options)) : undefined;
  return {
    harmfulRefusalRate: refusalRate(completions.harmful, options.refusalSubstrings),
    harmlessRefusalRate: refusalRate(completions.harmless, options.refusalSubstrings),
    harmlessKl,
    completions,
  };
}
