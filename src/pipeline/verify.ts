// Checking an export: the exported model's next-token logits and greedy answers against the source
// model with the direction ablated by hooks, on a few prompts.
import { directionAblationHooks } from "../interventions.ts";
import type { HookedModel } from "../model.ts";
import { generateCompletions, lastPositionLogits } from "./evaluate.ts";

export interface Verification {
  /** Largest |logit difference| at the last position over the prompts. */
  maxAbsLogitDiff: number;
  prompts: number;
  /** Whether greedy answers of the export equal those of the hooked source. */
  sameGreedyAnswers: boolean;
}

export async function verifyExport(source: HookedModel, exported: HookedModel, direction: ArrayLike<number>, prompts: readonly string[], options: { maxNewTokens?: number; batchSize?: number } = {}): Promise<Verification> {
  if (prompts.length === 0) throw new Error("verifyExport: no prompts");
  const ablation = directionAblationHooks(direction, source.nLayers);
  try {
    const batchSize = options.batchSize ?? 8;
    const maxNewTokens = options.maxNewTokens ?? 16;
    const hooked = lastPositionLogits(source, prompts, { fwdHooks: ablation.fwdHooks, batchSize });
    const reloaded = lastPositionLogits(exported, prompts, { batchSize });
    let maxAbsLogitDiff = 0;
    hooked.forEach((row, i) => row.forEach((v, j) => (maxAbsLogitDiff = Math.max(maxAbsLogitDiff, Math.abs(v - reloaded[i][j])))));
    const hookedAnswers = await generateCompletions(source, prompts, { fwdHooks: ablation.fwdHooks, maxNewTokens, batchSize });
    const exportedAnswers = await generateCompletions(exported, prompts, { maxNewTokens, batchSize });
    return { maxAbsLogitDiff, prompts: prompts.length, sameGreedyAnswers: hookedAnswers.every((a, i) => a === exportedAnswers[i]) };
  } finally {
    ablation.dispose();
  }
}
