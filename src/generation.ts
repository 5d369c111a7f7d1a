// Batched generation and last-position logits: what every stage that reads the model's behaviour runs, a
// batch of left-padded prompts at a time.
import type { FwdHook } from "./hooks.ts";
import type { HookedModel } from "./hooked-model.ts";
import { promptBatches, type Prompts } from "./batches.ts";
import { loadModel } from "./load.ts";
import type * as tf from "@tensorflow/tfjs-core";

export interface CompletionOptions {
  fwdHooks?: readonly FwdHook[];
  maxNewTokens?: number;
  batchSize?: number;
  /** Sample at this temperature instead of greedy decoding (0 or absent: greedy). */
  temperature?: number;
  /** Seed of the sampling; each batch uses seed + the number of prompts before it. */
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Greedy (or sampled) answers of chat-templated instructions or token-id prompts: as text and as token ids (the stop token excluded). */
export async function generateAnswers(
  model: HookedModel,
  instructions: Prompts,
  options: CompletionOptions = {},
): Promise<{ texts: string[]; tokens: number[][] }> {
  const texts: string[] = [];
  const tokens: number[][] = [];
  options.onProgress?.(0, instructions.length);
  for (const { batch } of promptBatches(model, instructions, options.batchSize)) {
    const sampling = options.temperature ? { temperature: options.temperature, seed: (options.seed ?? 0) + texts.length } : {};
    const generation = await model.generate(batch, { maxNewTokens: options.maxNewTokens ?? 32, fwdHooks: options.fwdHooks, ...sampling });
    texts.push(...generation.texts);
    tokens.push(...generation.tokens);
    options.onProgress?.(texts.length, instructions.length);
  }
  return { texts, tokens };
}

/** Greedy (or sampled) completions of chat-templated instructions, or of token-id prompts (the blog's get_generations). */
export async function generateCompletions(model: HookedModel, instructions: Prompts, options: CompletionOptions = {}): Promise<string[]> {
  return (await generateAnswers(model, instructions, options)).texts;
}

/**
 * Another model's answers to the same prompts (a reference: the original, a compliant model): loaded,
 * asked, and freed before this returns, so that only one extra model is ever in memory.
 */
export async function answersOf(
  source: string,
  prompts: Prompts,
  options: CompletionOptions & { onDownload?: (file: string, done: number, total: number | undefined) => void } = {},
): Promise<string[]> {
  const model = await loadModel(source, { onDownload: options.onDownload });
  try {
    return await generateCompletions(model, prompts, options);
  } finally {
    model.dispose();
  }
}

/** Last-position logits of chat-templated instructions (or token-id arrays), one Float32Array each. */
export function lastPositionLogits(
  model: HookedModel,
  prompts: Prompts,
  options: { fwdHooks?: readonly FwdHook[]; batchSize?: number } = {},
): Float32Array[] {
  const out: Float32Array[] = [];
  for (const { batch } of promptBatches(model, prompts, options.batchSize)) {
    const logits = model.forward(batch, { logits: "last", fwdHooks: options.fwdHooks });
    out.push(...lastRows(logits).map((r) => Float32Array.from(r)));
    logits.dispose();
  }
  return out;
}

/** Rows of a [batch, 1, d_vocab] last-position logits tensor. */
export function lastRows(logits: tf.Tensor): Float32Array[] {
  const [batch, pos, vocab] = logits.shape;
  const values = logits.dataSync() as Float32Array;
  return Array.from({ length: batch }, (_, b) => values.subarray((b * pos + pos - 1) * vocab, (b * pos + pos) * vocab));
}
