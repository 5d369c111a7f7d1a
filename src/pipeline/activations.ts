// Stage 2: run the model on chat-templated instructions and accumulate, per hook point and position,
// the mean residual-stream activation. Means are accumulated in float64 batch by batch, so memory
// does not grow with the number of prompts.
import { actName, RESID_HOOKS, type ResidHook } from "../hooks.ts";
import type { HookedModel } from "../model.ts";
import { padLeft, type Batch } from "../tokenizer.ts";

export interface MeanActivations {
  /** Hook kinds recorded, e.g. resid_pre, resid_mid, resid_post. */
  hooks: ResidHook[];
  /** Positions recorded, counted from the end (-1 is the last token). */
  positions: number[];
  nLayers: number;
  dModel: number;
  /** Number of prompts averaged. */
  count: number;
  /** means.get(hookName)[positionIndex] is a [d_model] float64 mean. */
  means: Map<string, Float64Array[]>;
}

export interface CollectOptions {
  batchSize?: number;
  hooks?: readonly ResidHook[];
  /** Positions from the end, default [-1] (the last token). The paper also uses every post-instruction token. */
  positions?: readonly number[];
  /** Called after each batch with prompts done, total and tokens processed. */
  onProgress?: (done: number, total: number, tokens: number) => void;
  system?: string;
}

/**
 * Mean activations over `instructions`: strings are chat-templated with the model's template,
 * token-id arrays are used as they are.
 */
export async function collectMeanActivations(model: HookedModel, instructions: readonly string[] | readonly number[][], options: CollectOptions = {}): Promise<MeanActivations> {
  if (instructions.length === 0) throw new Error("collectMeanActivations: no instructions were given");
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  const hooks = [...(options.hooks ?? RESID_HOOKS)];
  const positions = [...(options.positions ?? [-1])];
  for (const p of positions) if (!Number.isInteger(p) || p >= 0) throw new Error(`positions count from the end and must be negative integers (-1 is the last token), got ${p}`);
  const names: string[] = [];
  for (let l = 0; l < model.nLayers; l++) for (const h of hooks) names.push(actName(h, l));
  const sums = new Map(names.map((n) => [n, positions.map(() => new Float64Array(model.dModel))]));
  let tokens = 0;
  for (let start = 0; start < instructions.length; start += batchSize) {
    const batch: Batch = toBatch(model, instructions.slice(start, start + batchSize), options.system);
    const shortest = Math.min(...batch.attentionMask.map((m) => m.reduce((a, b) => a + b, 0)));
    if (-Math.min(...positions) > shortest) throw new Error(`position ${Math.min(...positions)} reaches before the start of a prompt of ${shortest} tokens`);
    const { logits, cache } = model.runWithCache(batch, { namesFilter: names, positions, logits: "last" });
    logits.dispose();
    try {
      for (const name of names) {
        const values = cache.get(name).dataSync(); // [batch, positions, d_model]
        const perPosition = sums.get(name)!;
        const rows = batch.inputIds.length;
        for (let b = 0; b < rows; b++) {
          for (let p = 0; p < positions.length; p++) {
            const sum = perPosition[p];
            const offset = (b * positions.length + p) * model.dModel;
            for (let i = 0; i < model.dModel; i++) sum[i] += values[offset + i];
          }
        }
      }
    } finally {
      cache.dispose();
    }
    tokens += batch.attentionMask.flat().reduce((a, b) => a + b, 0);
    options.onProgress?.(Math.min(start + batchSize, instructions.length), instructions.length, tokens);
  }
  for (const perPosition of sums.values()) for (const sum of perPosition) for (let i = 0; i < sum.length; i++) sum[i] /= instructions.length;
  return { hooks, positions, nLayers: model.nLayers, dModel: model.dModel, count: instructions.length, means: sums };
}

/** Chat-template and tokenise strings; pad token-id arrays as they are. */
export function toBatch(model: HookedModel, items: readonly string[] | readonly number[][], system?: string): Batch {
  if (items.length > 0 && typeof items[0] !== "string") return padLeft(items as number[][], model.padId);
  return model.tokenizeInstructions(items as string[], system);
}
