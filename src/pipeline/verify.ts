// Stage 6's check of an export, on a few prompts: its next-token logits and greedy answers against a
// reference computed from the source, and what it writes to the residual stream along the direction.
// The reference is the source under the ablation hooks where weight orthogonalisation and the hooks are
// the same intervention (a full edit of a pre-norm model); otherwise (sandwich norms, where the post-norm
// sees a different input; partial edits) it is the source orthogonalised in memory with the same options.
import { actName } from "../hooks.ts";
import type { HookedModel } from "../hooked-model.ts";
import { directionAblationHooks, withHooks } from "../interventions.ts";
import { checkWidth, dot, type UnitVector } from "../projection.ts";
import { promptBatches, type Prompts } from "./batches.ts";
import { generateCompletions, lastPositionLogits } from "./evaluate.ts";
import { isFullEdit, orthogonalizeModel, type OrthogonalizeOptions } from "./orthogonalize.ts";

/** Largest |logit difference| accepted between an export and its reference (float32 arithmetic). */
export const VERIFY_TOLERANCE = 1e-3;
/** Largest |r . w| / |w| accepted in what a fully orthogonalised model writes to the residual stream. */
export const WRITE_COMPONENT_TOLERANCE = 1e-4;

export interface Verification {
  /** What the export was compared with. */
  reference: "ablation hooks" | "in-memory orthogonalisation";
  prompts: number;
  /** Largest |logit difference| at the last position over the prompts. */
  maxAbsLogitDiff: number;
  /** Whether the export's greedy answers equal the reference's. */
  sameGreedyAnswers: boolean;
  /** Full edits only: the largest |r . w| / |w| over every residual write of the export (should be ~1e-7). */
  writeComponent?: number;
  tolerance: number;
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

export async function verifyExport(source: HookedModel, exported: HookedModel, unit: UnitVector, prompts: readonly string[], options: { maxNewTokens?: number; batchSize?: number; orthogonalize?: OrthogonalizeOptions } = {}): Promise<Verification> {
  if (prompts.length === 0) throw new Error("verifyExport: no prompts");
  const batchSize = options.batchSize ?? 8;
  const maxNewTokens = options.maxNewTokens ?? 16;
  const edit = options.orthogonalize ?? {};
  const full = isFullEdit(edit, source.nLayers);
  const byHooks = full && !source.arch.sandwichNorms;
  let expected: { logits: Float32Array[]; answers: string[] };
  if (byHooks) {
    expected = await withHooks(directionAblationHooks(source, unit), async (fwdHooks) => ({
      logits: lastPositionLogits(source, prompts, { fwdHooks, batchSize }),
      answers: await generateCompletions(source, prompts, { fwdHooks, maxNewTokens, batchSize }),
    }));
  } else {
    const edited = source.clone();
    try {
      orthogonalizeModel(edited, unit, edit);
      expected = { logits: lastPositionLogits(edited, prompts, { batchSize }), answers: await generateCompletions(edited, prompts, { maxNewTokens, batchSize }) };
    } finally {
      edited.dispose();
    }
  }
  const maxAbsLogitDiff = maxAbsDifference(expected.logits, lastPositionLogits(exported, prompts, { batchSize }));
  const answers = await generateCompletions(exported, prompts, { maxNewTokens, batchSize });
  const sameGreedyAnswers = expected.answers.every((a, i) => a === answers[i]);
  const writeComponent = full && !edit.naive ? residualWriteComponent(exported, unit, prompts, { batchSize }) : undefined;
  return {
    reference: byHooks ? "ablation hooks" : "in-memory orthogonalisation",
    prompts: prompts.length,
    maxAbsLogitDiff,
    sameGreedyAnswers,
    writeComponent,
    tolerance: VERIFY_TOLERANCE,
    passed: maxAbsLogitDiff <= VERIFY_TOLERANCE && sameGreedyAnswers && (writeComponent === undefined || writeComponent <= WRITE_COMPONENT_TOLERANCE),
  };
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
