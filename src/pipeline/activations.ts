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
  /** Called after each batch with prompts done, total, and the tokens processed so far and their rate. */
  onProgress?: (done: number, total: number, detail: string) => void;
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
  const started = performance.now();
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
    const seconds = (performance.now() - started) / 1000;
    options.onProgress?.(Math.min(start + batchSize, instructions.length), instructions.length, `${tokens} tokens, ${(tokens / seconds).toFixed(0)} tokens/s`);
  }
  for (const perPosition of sums.values()) for (const sum of perPosition) for (let i = 0; i < sum.length; i++) sum[i] /= instructions.length;
  return { hooks, positions, nLayers: model.nLayers, dModel: model.dModel, count: instructions.length, means: sums };
}

/** Chat-template and tokenise strings; pad token-id arrays as they are. */
export function toBatch(model: HookedModel, items: readonly string[] | readonly number[][], system?: string): Batch {
  if (items.length > 0 && typeof items[0] !== "string") return padLeft(items as number[][], model.padId);
  return model.tokenizeInstructions(items as string[], system);
}

/** Save mean activations as safetensors (one [positions, d_model] tensor per hook point). */
export async function saveMeanActivations(path: string, means: MeanActivations, options: { overwrite?: boolean } = {}): Promise<void> {
  const { floatTensor, writeSafetensors } = await import("../safetensors/write.ts");
  const tensors = [...means.means].map(([name, perPosition]) => {
    const values = new Float32Array(perPosition.length * means.dModel);
    perPosition.forEach((m, p) => values.set(m, p * means.dModel));
    return floatTensor(name, values, [perPosition.length, means.dModel]);
  });
  await writeSafetensors(path, tensors, { format: "abliterate-means", hooks: JSON.stringify(means.hooks), positions: JSON.stringify(means.positions), count: String(means.count), nLayers: String(means.nLayers) }, options);
}

export async function loadMeanActivations(path: string): Promise<MeanActivations> {
  const { SafetensorsFile } = await import("../safetensors/read.ts");
  const file = await SafetensorsFile.open(path);
  try {
    const meta = file.header.metadata;
    if (meta.format !== "abliterate-means") throw new Error(`${path}: not a mean-activations file written by abliterate (metadata.format is ${JSON.stringify(meta.format)})`);
    const positions = JSON.parse(meta.positions) as number[];
    const means = new Map<string, Float64Array[]>();
    let dModel = 0;
    for (const name of file.names) {
      const info = file.info(name);
      dModel = info.shape[1];
      const values = await file.readFloat32(name);
      means.set(name, positions.map((_, p) => Float64Array.from(values.subarray(p * dModel, (p + 1) * dModel))));
    }
    return { hooks: JSON.parse(meta.hooks), positions, nLayers: Number(meta.nLayers), dModel, count: Number(meta.count), means };
  } finally {
    await file.close();
  }
}
