// How much memory a model and a run need, estimated from config.json before anything is allocated, so
// that a model that cannot fit fails at once with what would fit, instead of dying in a wasm trap minutes
// later. The wasm backend addresses a 4 GB heap; on it the stock matMul (XNNPACK) also keeps a packed copy
// of every weight it multiplies by, which the native BLAS path does not.
import { headDim, numKvHeads, tiedEmbeddings, type ModelConfig } from "./config.ts";
import type { Architecture } from "./models/architecture.ts";
import { expectedTensors } from "./models/tensors.ts";

/** Bytes the wasm backend can address: its heap is 32-bit. */
export const WASM_HEAP_LIMIT_BYTES = 4 * 1024 ** 3;
/** Share of the heap a plan may use: the allocator needs room to move. */
export const WASM_HEAP_BUDGET = 0.85;

/**
 * How linear weights are held: transposed [in, out] (x @ W, XNNPACK's fast path, which packs a copy of W),
 * or as stored [out, in] (computed as (W @ x^T)^T: no packed copies, slower on stock wasm).
 */
export type WeightLayout = "transposed" | "stored";

export interface WeightPlan {
  layout: WeightLayout;
  /** float32 bytes of every weight, held once. */
  weightBytes: number;
  /** Bytes of XNNPACK's packed copies (stock wasm with the transposed layout only). */
  packedBytes: number;
}

export interface MemoryEstimate extends WeightPlan {
  /** Peak of one forward pass's intermediates (one layer at a time), logits included. */
  activationBytes: number;
  /** Keys and values of every layer during generation. */
  kvCacheBytes: number;
  totalBytes: number;
  /** What the backend can hold (the wasm heap's budget), or undefined where the process's own RAM is the limit. */
  budgetBytes?: number;
}

export interface RunShape {
  batch: number;
  /** Longest prompt, in tokens. */
  promptTokens: number;
  /** Tokens generated after the prompt (0 when only logits are computed). */
  newTokens: number;
  /** Logits computed at every position (training, full-sequence logits) or at the last only. */
  logits: "all" | "last";
  /** The run unties a tied embedding (an edit in memory, an export): one more copy of it. */
  untie?: boolean;
}

const gb = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GB`;

/** Weights and their layout for a backend: the fastest layout that fits the wasm heap, if any. */
export function planWeights(config: ModelConfig, arch: Architecture, backend: { name: string; blas?: unknown }): WeightPlan {
  let floats = 0;
  let linear = 0;
  for (const e of expectedTensors(arch, config)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    floats += n;
    if (e.linear) linear += n;
  }
  const weightBytes = 4 * floats;
  const forced = process.env.ABLITERATE_WEIGHT_LAYOUT; // for tests of both layouts
  if (forced === "stored") return { layout: "stored", weightBytes, packedBytes: 0 };
  if (backend.name !== "wasm" || backend.blas) return { layout: "transposed", weightBytes, packedBytes: 0 };
  const packed = { layout: "transposed" as const, weightBytes, packedBytes: 4 * linear };
  // Keep a quarter of the budget for activations when choosing the fast layout.
  return weightBytes + packed.packedBytes <= 0.75 * WASM_HEAP_BUDGET * WASM_HEAP_LIMIT_BYTES ? packed : { layout: "stored", weightBytes, packedBytes: 0 };
}

/** Peak bytes of one run of the model on `shape`, for the planned weights. */
export function estimateMemory(config: ModelConfig, arch: Architecture, plan: WeightPlan, shape: RunShape, backend: { name: string }): MemoryEstimate {
  const d = config.hidden_size;
  const dMlp = config.intermediate_size;
  const h = config.num_attention_heads;
  const kv = numKvHeads(config);
  const hd = headDim(config);
  const v = config.vocab_size;
  const b = shape.batch;
  const p = shape.promptTokens;
  const keys = p + shape.newTokens;
  // One layer's intermediates at the longest step (the prompt), float32: the residual stream in and out,
  // q/k/v with their RoPE copies, scores, masked scores and pattern, the merged heads, the MLP's four tensors.
  const layer = 2 * b * p * d + 2 * b * p * (h + 2 * kv) * hd + 3 * b * h * p * keys + 2 * b * p * h * hd + (arch.fusedProjections ? 5 : 4) * b * p * dMlp;
  const masks = 2 * b * p * keys + 4 * b * p * hd;
  const logitRows = shape.logits === "all" ? b * p : b;
  const logits = 3 * logitRows * v; // E @ h^T, its transpose, and the copy read out
  const activationBytes = 4 * (layer + masks + logits);
  const kvCacheBytes = shape.newTokens > 0 ? 4 * 2 * config.num_hidden_layers * b * kv * hd * keys : 0;
  const untiedBytes = shape.untie && tiedEmbeddings(config) ? 4 * v * d : 0;
  // The allocator's fragmentation: a quarter more than the tensors themselves.
  const totalBytes = Math.ceil(1.25 * (plan.weightBytes + untiedBytes + plan.packedBytes + activationBytes + kvCacheBytes));
  return { ...plan, activationBytes, kvCacheBytes, totalBytes, budgetBytes: backend.name === "wasm" ? WASM_HEAP_BUDGET * WASM_HEAP_LIMIT_BYTES : undefined };
}

/** Throw, saying what would fit, when the estimate exceeds the backend's budget. */
export function checkMemory(source: string, config: ModelConfig, arch: Architecture, plan: WeightPlan, shape: RunShape, backend: { name: string; blas?: unknown }): MemoryEstimate {
  const estimate = estimateMemory(config, arch, plan, shape, backend);
  if (estimate.budgetBytes === undefined || estimate.totalBytes <= estimate.budgetBytes) return estimate;
  const parts = `weights ${gb(estimate.weightBytes)}${estimate.packedBytes ? `, XNNPACK's packed copies ${gb(estimate.packedBytes)}` : ""}, activations ${gb(estimate.activationBytes)}${estimate.kvCacheBytes ? `, KV cache ${gb(estimate.kvCacheBytes)}` : ""}, with a quarter more for the allocator`;
  let batch = shape.batch;
  while (batch > 1 && estimateMemory(config, arch, plan, { ...shape, batch }, backend).totalBytes > estimate.budgetBytes) batch = Math.floor(batch / 2);
  const smaller = batch < shape.batch && estimateMemory(config, arch, plan, { ...shape, batch }, backend).totalBytes <= estimate.budgetBytes;
  const advice = smaller
    ? `a batch size of ${batch} fits (--batch-size ${batch})`
    : `even one prompt does not fit: use a smaller model${plan.packedBytes > 0 ? ", or install a BLAS library (libopenblas0-pthread) so that weights need no packed copies" : ""}, or a machine where @tensorflow/tfjs-node installs`;
  throw new Error(`${source}: a batch of ${shape.batch} prompt${shape.batch === 1 ? "" : "s"} of up to ${shape.promptTokens} tokens${shape.newTokens ? ` with ${shape.newTokens} new tokens` : ""} needs about ${gb(estimate.totalBytes)} (${parts}), more than the ${gb(estimate.budgetBytes)} the wasm backend's 4 GB heap allows; ${advice}`);
}
