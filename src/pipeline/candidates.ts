// Stage 4, read by generation: each candidate direction ablated everywhere while the model answers
// held-out harmful instructions (does it stop refusing?) and harmless ones (what does it cost?).
import type { HookedModel } from "../hooked-model.ts";
import { directionAblationHooks, withHooks } from "../interventions.ts";
import { directionKey, type UsableDirection } from "./directions.ts";
import { generateCompletions, lastPositionLogits } from "../generation.ts";
import { answerAgreement, meanKl, refusalRate } from "./measures.ts";

export interface CandidateEvaluation {
  key: string;
  layer: number;
  hook: string;
  /** Harmful refusal rate (substring metric) with the direction ablated. */
  refusalRate: number;
  /** Mean harmless KL(original || ablated) at the last position. */
  kl: number;
  /** With `compliantAnswers`: the share of harmful answers whose first 8 tokens are the compliant reference's. */
  coherentCompliance?: number;
  samples: { instruction: string; completion: string }[];
}

export interface CandidateOptions {
  harmful: readonly string[];
  harmless: readonly string[];
  maxNewTokens?: number;
  batchSize?: number;
  refusalSubstrings?: readonly string[];
  /** Completions kept per candidate (default 4). */
  samples?: number;
  /** A compliant model's answers to the same harmful instructions: each candidate's coherent compliance is measured against them. */
  compliantAnswers?: readonly string[];
  onProgress?: (done: number, total: number) => void;
}

export async function evaluateCandidates(
  model: HookedModel,
  candidates: readonly UsableDirection[],
  options: CandidateOptions,
): Promise<CandidateEvaluation[]> {
  const { batchSize, maxNewTokens } = options;
  if (options.compliantAnswers && options.compliantAnswers.length !== options.harmful.length) {
    throw new Error(
      `evaluateCandidates: ${options.compliantAnswers.length} compliant answers for ${options.harmful.length} harmful instructions`,
    );
  }
  options.onProgress?.(0, candidates.length);
  const base = lastPositionLogits(model, options.harmless, { batchSize });
  const out: CandidateEvaluation[] = [];
  for (const [i, d] of candidates.entries()) {
    const evaluation = await withHooks(directionAblationHooks(model, d.unit), async (fwdHooks) => {
      const completions = await generateCompletions(model, options.harmful, { fwdHooks, maxNewTokens, batchSize });
      return {
        key: directionKey(d),
        layer: d.layer,
        hook: d.hook,
        refusalRate: refusalRate(completions, options.refusalSubstrings),
        kl: meanKl(base, lastPositionLogits(model, options.harmless, { fwdHooks, batchSize })),
        ...(options.compliantAnswers
          ? { coherentCompliance: answerAgreement(completions, options.compliantAnswers, model.tokenizer).firstTokens }
          : {}),
        samples: options.harmful.slice(0, options.samples ?? 4).map((instruction, j) => ({ instruction, completion: completions[j] })),
      };
    });
    out.push(evaluation);
    options.onProgress?.(i + 1, candidates.length);
  }
  return out;
}

/**
 * The blog's choice by reading generations, automated the way a careful reader would make it: among
 * candidates whose harmless KL is at most `maxKl`, the lowest refusal rate (ties: lower KL).
 */
export function chooseByGeneration(evaluations: readonly CandidateEvaluation[], maxKl = 0.1): CandidateEvaluation {
  if (evaluations.length === 0) throw new Error("chooseByGeneration: no candidates were evaluated");
  const safe = evaluations.filter((e) => e.kl <= maxKl);
  return [...(safe.length > 0 ? safe : evaluations)].sort((a, b) => a.refusalRate - b.refusalRate || a.kl - b.kl)[0];
}
