// How much memory a model and a run need, estimated from config.json before anything is allocated, so
// that a model that cannot fit fails at once with what would fit, instead of dying in a wasm trap minutes
// later. The wasm backend addresses a 4 GB heap; on it the stock matMul (XNNPACK) also keeps a packed copy
// of every weight it multiplies by. The native BLAS path keeps the matrices outside the heap (in the
// process's memory, where sgemm reads them), so there the heap holds only activations and the machine's RAM
// bounds the model.
import { constants } from "node:buffer";
import { totalmem } from "node:os";
import { headDim, numKvHeads, tiedEmbeddings, type ModelConfig } from "./config.ts";
import type { Architecture } from "./models/architecture.ts";
import { expectedTensors } from "./models/tensors.ts";
import { CACHE_ROOM } from "./models/decoder.ts";
import { paddingScratchFloats } from "./blas/padding.ts";

/** Bytes the wasm backend can address: its heap is 32-bit. */
export const WASM_HEAP_LIMIT_BYTES = 4 * 1024 ** 3;
/** The wasm heap's size before anything is allocated (tfjs-backend-wasm's module): the heap never measures less. */
export const WASM_INITIAL_HEAP_BYTES = 16 * 1024 ** 2;
/**
 * Emscripten grows the heap geometrically: a growth asks for up to 20% more than the old heap (so less than 20%
 * more than what is needed), at most 96 MiB more than requested.
 */
export const wasmHeapGrowth = (bytes: number) => bytes + Math.min(0.2 * bytes, 96 * 1024 ** 2);
/** Share of the heap a plan may use: the allocator needs room to move. */
export const WASM_HEAP_BUDGET = 0.85;

/** Share of the machine's RAM the weights held outside the heap may take. */
export const RAM_BUDGET = 0.8;

/**
 * How linear weights are held: transposed [in, out] (x @ W, XNNPACK's fast path, which packs a copy of W),
 * as stored [out, in] (computed as (W @ x^T)^T: no packed copies, slower on stock wasm), or, on the native
 * BLAS path, as stored outside the wasm heap (`native`: the matrices, embedding and unembedding included).
 */
export type WeightLayout = "transposed" | "stored" | "native";

export interface WeightPlan {
  layout: WeightLayout;
  /** Bytes of every weight as held (float32, or 16 bits for matrices held in their stored precision), once. */
  weightBytes: number;
  /** Bytes of XNNPACK's packed copies (stock wasm with the transposed layout only). */
  packedBytes: number;
  /** Bytes of `weightBytes` held outside the wasm heap (the native layout), bounded by RAM instead. */
  nativeBytes?: number;
}

export interface MemoryEstimate extends WeightPlan {
  /** Peak of one forward pass's intermediates (one layer at a time), logits included. */
  activationBytes: number;
  /** Keys and values of every layer during generation. */
  kvCacheBytes: number;
  totalBytes: number;
  /** What the backend can hold (the wasm heap's budget), or undefined where the process's own RAM is the limit. */
  budgetBytes?: number;
  /** Bytes held outside the heap at the peak (native weights, the untied unembedding when one is made, and the
   * scratch of padded small products). */
  nativeBytes: number;
  /** What the machine's RAM allows for them. */
  ramBudgetBytes: number;
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
export function planWeights(
  config: ModelConfig,
  arch: Architecture,
  backend: { name: string; blas?: unknown },
  layout?: WeightLayout,
  /** On the native layout, whether a matrix is held in its checkpoint's 16 bits (the `stored` precision). */
  half: (key: string) => boolean = () => false,
): WeightPlan {
  let floats = 0;
  let linear = 0;
  let matrices = 0;
  let matrixBytes = 0;
  for (const e of expectedTensors(arch, config)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    floats += n;
    if (e.linear) linear += n;
    if (heldNatively(e)) {
      matrices += n;
      matrixBytes += (half(e.key) ? 2 : 4) * n;
    }
  }
  const weightBytes = 4 * floats;
  const forced = layout ?? (process.env.ABLITERATE_WEIGHT_LAYOUT || undefined); // the option, else the environment (tests of every layout)
  const from = layout ? "the layout option" : "ABLITERATE_WEIGHT_LAYOUT";
  if (forced !== undefined && !["transposed", "stored", "native"].includes(forced))
    throw new Error(`${from} must be transposed, stored or native, got "${forced}"`);
  const native = backend.name === "wasm" && Boolean(backend.blas);
  if (forced === "native" && !native)
    throw new Error(
      `${from} "native" needs the native BLAS path on the wasm backend; the backend is ` +
        `${backend.name}${backend.name === "wasm" ? " without a BLAS library" : ""}`,
    );
  if (forced === "stored") return { layout: "stored", weightBytes, packedBytes: 0 };
  if (native && forced !== "transposed")
    return { layout: "native", weightBytes: weightBytes - 4 * matrices + matrixBytes, packedBytes: 0, nativeBytes: matrixBytes };
  if (backend.name !== "wasm" || backend.blas) return { layout: "transposed", weightBytes, packedBytes: 0 };
  const packed = { layout: "transposed" as const, weightBytes, packedBytes: 4 * linear };
  // Keep a quarter of the budget for activations when choosing the fast layout.
  return weightBytes + packed.packedBytes <= 0.75 * WASM_HEAP_BUDGET * WASM_HEAP_LIMIT_BYTES
    ? packed
    : { layout: "stored", weightBytes, packedBytes: 0 };
}

/** Peak bytes of one run of the model on `shape`, for the planned weights. */
export function estimateMemory(
  config: ModelConfig,
  arch: Architecture,
  plan: WeightPlan,
  shape: RunShape,
  backend: { name: string },
): MemoryEstimate {
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
  const layer =
    2 * b * p * d +
    2 * b * p * (h + 2 * kv) * hd +
    3 * b * h * p * keys +
    2 * b * p * h * hd +
    (arch.fusedProjections ? 5 : 4) * b * p * dMlp;
  const masks = 2 * b * p * keys + 4 * b * p * hd;
  const logitRows = shape.logits === "all" ? b * p : b;
  const logits = 3 * logitRows * v; // E @ h^T, its transpose, and the copy read out
  const activationBytes = 4 * (layer + masks + logits);
  // The cache grows CACHE_ROOM positions ahead of the keys it holds.
  const kvCacheBytes = shape.newTokens > 0 ? 4 * 2 * config.num_hidden_layers * b * kv * hd * (keys + CACHE_ROOM) : 0;
  const untiedBytes = shape.untie && tiedEmbeddings(config) ? 4 * v * d : 0;
  const outside = plan.nativeBytes ?? 0;
  const nativeBytes = outside > 0 ? outside + untiedBytes + 4 * paddingScratch(config, arch, shape) : 0;
  const heapWeights = plan.weightBytes - outside + (outside > 0 ? 0 : untiedBytes);
  // The allocator's fragmentation: a quarter more than the tensors themselves; on wasm, the heap's growth step
  // on top, and never less than the heap it starts with.
  const live = 1.25 * (heapWeights + plan.packedBytes + activationBytes + kvCacheBytes);
  const totalBytes = Math.ceil(backend.name === "wasm" ? Math.max(WASM_INITIAL_HEAP_BYTES, wasmHeapGrowth(live)) : live);
  return {
    ...plan,
    activationBytes,
    kvCacheBytes,
    totalBytes,
    budgetBytes: backend.name === "wasm" ? WASM_HEAP_BUDGET * WASM_HEAP_LIMIT_BYTES : undefined,
    nativeBytes,
    ramBudgetBytes: RAM_BUDGET * totalmem(),
  };
}

/**
 * The native path's scratch for products of a few rows padded for sgemm (blas/padding.ts), kept at its largest:
 * every weight times the prompt's rows and, when generating, one step's rows; the unembedding times the rows
 * whose logits are read.
 */
function paddingScratch(config: ModelConfig, arch: Architecture, shape: RunShape): number {
  const rows = [shape.batch * shape.promptTokens, ...(shape.newTokens > 0 ? [shape.batch] : [])];
  const logitRows = [shape.logits === "all" ? shape.batch * shape.promptTokens : shape.batch, ...rows.slice(1)];
  const products: [number, number, number][] = [
    ...expectedTensors(arch, config)
      .filter((e) => e.linear)
      .flatMap((e) => rows.map((m): [number, number, number] => [m, e.shape[0], e.shape[1]])),
    ...logitRows.map((m): [number, number, number] => [m, config.vocab_size, config.hidden_size]),
  ];
  return Math.max(0, ...products.map(([m, n, k]) => paddingScratchFloats(m, n, k)));
}

/** Whether the native layout keeps this tensor outside the heap: the matrices (linear weights, embedding, unembedding). */
export function heldNatively(e: { shape: readonly number[]; linear: boolean }): boolean {
  return e.linear || e.shape.length === 2;
}

/** Throw, saying what would fit, when the estimate exceeds the backend's budget. */
export function checkMemory(
  source: string,
  config: ModelConfig,
  arch: Architecture,
  plan: WeightPlan,
  shape: RunShape,
  backend: { name: string; blas?: unknown },
): MemoryEstimate {
  for (const e of expectedTensors(arch, config)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    if (n > constants.MAX_LENGTH)
      throw new Error(
        `${source}: ${e.key} would have ${n} values (shape [${e.shape.join(", ")}] from config.json), more than the ` +
          `${constants.MAX_LENGTH} one array holds in this Node.js; use a smaller model`,
      );
  }
  const estimate = estimateMemory(config, arch, plan, shape, backend);
  if (estimate.nativeBytes > estimate.ramBudgetBytes) {
    const float32 = expectedTensors(arch, config)
      .filter(heldNatively)
      .reduce((bytes, e) => bytes + 4 * e.shape.reduce((a, b) => a * b, 1), 0);
    const held = (plan.nativeBytes ?? 0) < float32 ? "with its matrices in their stored 16 bits" : "in float32";
    throw new Error(
      `${source}: its weights need about ${gb(estimate.nativeBytes)} of RAM ${held} (held outside the wasm heap on the native ` +
        `BLAS path${shape.untie && tiedEmbeddings(config) ? ", with the untied unembedding an edit makes" : ""}), more than the ` +
        `${gb(estimate.ramBudgetBytes)} (${Math.round(RAM_BUDGET * 100)}%) of this machine's ${gb(totalmem())}; use a smaller model or a ` +
        `machine with more memory`,
    );
  }
  if (estimate.budgetBytes === undefined || estimate.totalBytes <= estimate.budgetBytes) return estimate;
  const heapWeights = estimate.weightBytes - (estimate.nativeBytes > 0 ? (plan.nativeBytes ?? 0) : 0);
  const parts =
    `weights ${gb(heapWeights)}${
      estimate.nativeBytes ? ` in the heap (${gb(estimate.nativeBytes)} more held outside ` + `it)` : ""
    }${estimate.packedBytes ? `, XNNPACK's packed copies ${gb(estimate.packedBytes)}` : ""}, activations ` +
    `${gb(estimate.activationBytes)}${estimate.kvCacheBytes ? `, KV cache ${gb(estimate.kvCacheBytes)}` : ""}, with a quarter more for ` +
    `the allocator and the heap's growth step`;
  let batch = shape.batch;
  while (batch > 1 && estimateMemory(config, arch, plan, { ...shape, batch }, backend).totalBytes > estimate.budgetBytes)
    batch = Math.floor(batch / 2);
  const smaller =
    batch < shape.batch && estimateMemory(config, arch, plan, { ...shape, batch }, backend).totalBytes <= estimate.budgetBytes;
  const advice = smaller
    ? `a batch size of ${batch} fits (--batch-size ${batch})`
    : `even one prompt does not fit: use a smaller model or shorter prompts${
        backend.blas ? "" : ", or install a BLAS library " + "(libopenblas0-pthread) so that the weights are held outside the heap"
      }, or the tensorflow backend, whose memory is the machine's (--backend node: @tensorflow/tfjs-node, which ` +
      `npm run backend:tfjs-node builds offline)`;
  throw new Error(
    `${source}: a batch of ${shape.batch} prompt${shape.batch === 1 ? "" : "s"} of up to ` +
      `${shape.promptTokens} tokens${shape.newTokens ? ` with ${shape.newTokens} new tokens` : ""} needs about ` +
      `${gb(estimate.totalBytes)} (${parts}), more than the ${gb(estimate.budgetBytes)} the wasm backend's 4 GB heap allows; ${advice}`,
  );
}
