// Stage 2: run the model on chat-templated instructions and accumulate, per hook point and token
// offset, the mean residual-stream activation. Means are accumulated in float64 batch by batch, so
// memory does not grow with the number of prompts.
import { actName, RESID_HOOKS, type ResidHook } from "../hooks.ts";
import type { HookedModel } from "../hooked-model.ts";
import { SafetensorsFile } from "../safetensors/read.ts";
import { floatTensor, writeSafetensors } from "../safetensors/write.ts";
import { promptBatches, type Prompts } from "../batches.ts";

export interface MeanActivations {
  /** Hook kinds recorded, e.g. resid_pre, resid_mid, resid_post. */
  hooks: ResidHook[];
  /** Token offsets recorded, counted from the end of each prompt (-1 is the last token). */
  tokenOffsets: number[];
  nLayers: number;
  dModel: number;
  /** Number of prompts averaged. */
  count: number;
  /** means.get(hookName)[offsetIndex] is a [d_model] float64 mean. */
  means: Map<string, Float64Array[]>;
}

export interface CollectOptions {
  batchSize?: number;
  hooks?: readonly ResidHook[];
  /**
   * Token offsets from the end of each prompt, default [-1] (the last token). The paper also records
   * every post-instruction token (the template's tokens after the instruction) and treats each as a candidate.
   */
  tokenOffsets?: readonly number[];
  /** Called when the work starts (0 done) and after each batch with prompts done, total, and the tokens processed so far and their rate. */
  onProgress?: (done: number, total: number, detail: string) => void;
  system?: string;
}

/** Mean activations over the prompts at every layer, for each chosen hook point and token offset. */
export async function collectMeanActivations(model: HookedModel, prompts: Prompts, options: CollectOptions = {}): Promise<MeanActivations> {
  if (prompts.length === 0) throw new Error("collectMeanActivations: no instructions were given");
  const hooks = [...(options.hooks ?? RESID_HOOKS)];
  const tokenOffsets = [...(options.tokenOffsets ?? [-1])];
  for (const p of tokenOffsets)
    if (!Number.isInteger(p) || p >= 0)
      throw new Error(`token offsets count from the end and must be negative integers (-1 is the last token), got ${p}`);
  const names: string[] = [];
  for (let l = 0; l < model.nLayers; l++) for (const h of hooks) names.push(actName(h, l));
  const sums = new Map(names.map((n) => [n, tokenOffsets.map(() => new Float64Array(model.dModel))]));
  let tokens = 0;
  const started = performance.now();
  options.onProgress?.(0, prompts.length, "0 tokens");
  for (const { start, batch } of promptBatches(model, prompts, options.batchSize, options.system)) {
    const shortest = Math.min(...batch.attentionMask.map((m) => m.reduce((a, b) => a + b, 0)));
    if (-Math.min(...tokenOffsets) > shortest)
      throw new Error(`token offset ${Math.min(...tokenOffsets)} reaches before the start of a prompt of ${shortest} tokens`);
    const { logits, cache } = model.runWithCache(batch, { namesFilter: names, cachePositions: tokenOffsets, logits: "last" });
    logits.dispose();
    try {
      for (const name of names) {
        const values = cache.get(name).dataSync(); // [batch, offsets, d_model]
        const perOffset = sums.get(name)!;
        for (let b = 0; b < batch.inputIds.length; b++) {
          for (let p = 0; p < tokenOffsets.length; p++) {
            const sum = perOffset[p];
            const offset = (b * tokenOffsets.length + p) * model.dModel;
            for (let i = 0; i < model.dModel; i++) sum[i] += values[offset + i];
          }
        }
      }
    } finally {
      cache.dispose();
    }
    tokens += batch.attentionMask.flat().reduce((a, b) => a + b, 0);
    const seconds = (performance.now() - started) / 1000;
    options.onProgress?.(
      Math.min(start + batch.inputIds.length, prompts.length),
      prompts.length,
      `${tokens} tokens, ${(tokens / seconds).toFixed(0)} tokens/s`,
    );
  }
  for (const perOffset of sums.values()) for (const sum of perOffset) for (let i = 0; i < sum.length; i++) sum[i] /= prompts.length;
  return { hooks, tokenOffsets, nLayers: model.nLayers, dModel: model.dModel, count: prompts.length, means: sums };
}

/** The norm of each mean at one hook kind and token offset, by layer: how large the residual stream is. */
export function meanNorms(means: MeanActivations, hook: ResidHook, tokenOffset = -1): number[] {
  const p = means.tokenOffsets.indexOf(tokenOffset);
  if (p < 0) throw new Error(`token offset ${tokenOffset} was not recorded (recorded: ${means.tokenOffsets.join(", ")})`);
  return Array.from({ length: means.nLayers }, (_, l) => {
    const m = means.means.get(actName(hook, l));
    if (!m) throw new Error(`${actName(hook, l)} was not recorded`);
    return Math.sqrt(m[p].reduce((s, x) => s + x * x, 0));
  });
}

/** Save mean activations as safetensors (one [offsets, d_model] tensor per hook point). */
export async function saveMeanActivations(path: string, means: MeanActivations, options: { overwrite?: boolean } = {}): Promise<void> {
  const tensors = [...means.means].map(([name, perOffset]) => {
    const values = new Float32Array(perOffset.length * means.dModel);
    perOffset.forEach((m, p) => values.set(m, p * means.dModel));
    return floatTensor(name, values, [perOffset.length, means.dModel]);
  });
  await writeSafetensors(
    path,
    tensors,
    {
      format: "abliterate-means",
      hooks: JSON.stringify(means.hooks),
      tokenOffsets: JSON.stringify(means.tokenOffsets),
      count: String(means.count),
      nLayers: String(means.nLayers),
    },
    options,
  );
}

export async function loadMeanActivations(path: string): Promise<MeanActivations> {
  const file = await SafetensorsFile.open(path);
  try {
    const meta = file.header.metadata;
    if (meta.format !== "abliterate-means")
      throw new Error(`${path}: not a mean-activations file written by abliterate (metadata.format is ${JSON.stringify(meta.format)})`);
    const tokenOffsets = JSON.parse(meta.tokenOffsets) as number[];
    const means = new Map<string, Float64Array[]>();
    let dModel = 0;
    for (const name of file.names) {
      dModel = file.info(name).shape[1];
      const values = await file.readFloat32(name);
      means.set(
        name,
        tokenOffsets.map((_, p) => Float64Array.from(values.subarray(p * dModel, (p + 1) * dModel))),
      );
    }
    return { hooks: JSON.parse(meta.hooks), tokenOffsets, nLayers: Number(meta.nLayers), dModel, count: Number(meta.count), means };
  } finally {
    await file.close();
  }
}
