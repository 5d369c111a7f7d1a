// Stage 6's check: the exported model against the source model with the direction ablated by hooks
// (next-token logits and greedy answers on a few prompts), and what the exported model writes to the
// residual stream along the direction.
import { actName } from "../hooks.ts";
import type { HookedModel } from "../hooked-model.ts";
import { directionAblationHooks, withHooks } from "../interventions.ts";
import { checkWidth, dot, type UnitVector } from "../projection.ts";
import { promptBatches, type Prompts } from "./batches.ts";
import { generateCompletions, lastPositionLogits } from "./evaluate.ts";

/** Largest |logit difference| accepted between an export and the hooked source (float32 arithmetic). */
export const VERIFY_TOLERANCE = 1e-3;

export interface Verification {
  /** Largest |logit difference| at the last position over the prompts. */
  maxAbsLogitDiff: number;
  prompts: number;
  /** Whether greedy answers of the export equal those of the hooked source. */
  sameGreedyAnswers: boolean;
  tolerance: number;
  /** maxAbsLogitDiff within the tolerance and the same greedy answers. */
  passed: boolean;
}

/** Largest |a - b| over rows of equal length. */
export function maxAbsDifference(a: readonly ArrayLike<number>[], b: readonly ArrayLike<number>[]): number {
  if (a.length !== b.length) throw new Error(`maxAbsDifference: ${a.length} rows against ${b.length}`);
  let max = 0;
  a.forEach((row, i) => {
    if (row.length !== b[i].length) throw new Error(`maxAbsDifference: row ${i} has ${row.length} values against ${b[i].length}`);
    for (let j = 0; j < row.length; j++) {
      const d = Math.abs(row[j] - b[i][j]);
      if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
    }
  });
  return max;
}

export async function verifyExport(source: HookedModel, exported: HookedModel, unit: UnitVector, prompts: readonly string[], options: { maxNewTokens?: number; batchSize?: number } = {}): Promise<Verification> {
  if (prompts.length === 0) throw new Error("verifyExport: no prompts");
  const batchSize = options.batchSize ?? 8;
  const maxNewTokens = options.maxNewTokens ?? 16;
  const { hooked, hookedAnswers } = await withHooks(directionAblationHooks(source, unit), async (fwdHooks) => ({
    hooked: lastPositionLogits(source, prompts, { fwdHooks, batchSize }),
    hookedAnswers: await generateCompletions(source, prompts, { fwdHooks, maxNewTokens, batchSize }),
  }));
  const maxAbsLogitDiff = maxAbsDifference(hooked, lastPositionLogits(exported, prompts, { batchSize }));
  const exportedAnswers = await generateCompletions(exported, prompts, { maxNewTokens, batchSize });
  const sameGreedyAnswers = hookedAnswers.every((a, i) => a === exportedAnswers[i]);
  return { maxAbsLogitDiff, prompts: prompts.length, sameGreedyAnswers, tolerance: VERIFY_TOLERANCE, passed: maxAbsLogitDiff <= VERIFY_TOLERANCE && sameGreedyAnswers };
}

/**
 * The largest |r . w| / |w| over everything the model writes to the residual stream (the embedding,
 * every layer's hook_attn_out and hook_mlp_out) at every real token of the prompts: zero, up to float32
 * rounding, once the weights are orthogonalised against r.
 */
export function residualWriteComponent(model: HookedModel, unit: UnitVector, prompts: Prompts, options: { batchSize?: number } = {}): number {
  checkWidth(unit, model.dModel);
  const names = [actName("embed"), ...Array.from({ length: model.nLayers }, (_, l) => [actName("attn_out", l), actName("mlp_out", l)]).flat()];
  let max = 0;
  for (const { batch } of promptBatches(model, prompts, options.batchSize)) {
    const { logits, cache } = model.runWithCache(batch, { namesFilter: names, logits: "last" });
    logits.dispose();
    try {
      for (const name of names) {
        const values = cache.get(name).dataSync(); // [batch, pos, d_model]
        const pos = batch.inputIds[0].length;
        for (let b = 0; b < batch.inputIds.length; b++) {
          for (let t = 0; t < pos; t++) {
            if (!batch.attentionMask[b][t]) continue;
            const w = values.subarray((b * pos + t) * model.dModel, (b * pos + t + 1) * model.dModel);
            const norm = Math.sqrt(dot(w, w));
            if (norm > 0) max = Math.max(max, Math.abs(dot(w, unit)) / norm);
          }
        }
      }
    } finally {
      cache.dispose();
    }
  }
  return max;
}
