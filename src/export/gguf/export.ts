// Stage 6 for llama.cpp: write a checkpoint, abliterated or not, as one GGUF file that llama.cpp, Ollama and
// LM Studio load. The conventions are those of llama.cpp's reference converter (convert_hf_to_gguf.py):
// tensor names, q/k rows of llama and mistral permuted to llama.cpp's interleaved RoPE, Gemma's norm weights
// stored as 1 + w, Phi-3's fused projections as they are, the tied output head left out, RoPE scaling as
// metadata or factor tensors. Where llama.cpp fixes a value that the config may set otherwise (Gemma's
// attention scale), the difference is folded into the weights so the file computes what the checkpoint does.
// Tensors are read, orthogonalised when a direction is given, converted and written one at a time.
import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { headDim, numKvHeads, rotaryDim, type ModelConfig } from "../../config.ts";
import { withLock } from "../../files.ts";
import { checkCheckpointTensors, openCheckpoint, type Checkpoint } from "../../load.ts";
import { slidingLayers, type Architecture } from "../../models/architecture.ts";
import { llama3FrequencyFactors, longropeParameters } from "../../models/rope.ts";
import { roleKeys } from "../../models/tensors.ts";
import type { UnitVector } from "../../projection.ts";
import { planCheckpointEdit, type EditPlan, type OrthogonalizeOptions, type TensorEdit } from "../../pipeline/orthogonalize.ts";
import { DTYPE_BYTES, decodeToFloat32, type FloatDtype } from "../../safetensors/dtype.ts";
import { orthogonalizeStream, STREAM_CHUNK_BYTES } from "../stream.ts";
import { checkExportFile, removeStalePartials } from "../targets.ts";
import { LLAMA_CPP_QUANTS, quantizeWithLlamaCpp, type LlamaCppQuant } from "./quantize.ts";
import { ggufVocab } from "./vocab.ts";
import { bool, f32, fitsType, str, u32, writeGguf, type GgmlType, type GgufTensor, type GgufValue } from "./write.ts";

export const GGUF_TYPES = ["f32", "f16", "bf16", "q8_0"] as const;
export type GgufFileType = (typeof GGUF_TYPES)[number];

/** general.file_type of each choice (llama.cpp's llama_ftype). */
const FILE_TYPE: Record<GgufFileType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
const TENSOR_TYPE: Record<GgufFileType, GgmlType> = { f32: "F32", f16: "F16", q8_0: "Q8_0", bf16: "BF16" };

export interface GgufExportOptions extends OrthogonalizeOptions {
  /**
   * Tensor type of the matrices (norms, biases and RoPE factors stay F32, as llama.cpp's converter keeps
   * them): written here (f32, f16, bf16, q8_0), or a k-quant made by llama.cpp's own quantiser from a float
   * file written first (q4_k_m...).
   */
  type?: GgufFileType | LlamaCppQuant;
  /** Orthogonalise the residual writers against this unit direction (an abliterated GGUF); none: convert as it is. */
  unit?: UnitVector;
  /** Replace an existing file. */
  force?: boolean;
  /** Key-values recorded as `abliterate.*` metadata (direction key, source...). */
  provenance?: Record<string, string | number | boolean>;
  onProgress?: (doneTensors: number, totalTensors: number) => void;
}

export interface GgufExportResult {
  file: string;
  bytes: number;
  tensors: number;
  /** Residual writers orthogonalised. */
  edited: string[];
  /** What the file does differently from the checkpoint, or how it was adapted to llama.cpp, one line each. */
  notes: string[];
}

export class GgufExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GgufExportError";
  }
}

/** llama.cpp's architecture for each supported model_type, and whether its q/k rows need llama.cpp's RoPE permutation. */
const LLAMA_CPP_ARCH: Record<string, { name: string; permuteQK: boolean }> = {
  llama: { name: "llama", permuteQK: true },
  mistral: { name: "llama", permuteQK: true },
  qwen2: { name: "qwen2", permuteQK: false },
  qwen3: { name: "qwen3", permuteQK: false },
  gemma: { name: "gemma", permuteQK: false },
  gemma2: { name: "gemma2", permuteQK: false },
  gemma3_text: { name: "gemma3", permuteQK: false },
  gemma3: { name: "gemma3", permuteQK: false },
  phi3: { name: "phi3", permuteQK: false },
};

/** A layer tensor's GGUF name (without `blk.N.`), by the checkpoint's name after `model.layers.N.`. */
function layerTensorName(rest: string, arch: Architecture): string | undefined {
  const m = /^(.*)\.(weight|bias)$/.exec(rest);
  if (!m) return undefined;
  const names: Record<string, string> = {
    input_layernorm: "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.qkv_proj": "attn_qkv",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    // With sandwich norms Hugging Face's post_attention_layernorm follows attention; without, it precedes the MLP.
    post_attention_layernorm: arch.sandwichNorms ? "post_attention_norm" : "ffn_norm",
    pre_feedforward_layernorm: "ffn_norm",
    post_feedforward_layernorm: "post_ffw_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.gate_up_proj": "ffn_up", // Phi-3: llama.cpp splits the fused [gate; up] itself
    "mlp.down_proj": "ffn_down",
  };
  const name = names[m[1]];
  return name && `${name}.${m[2]}`;
}

/** The GGUF name of a checkpoint tensor (its key without the architecture's prefix). */
export function ggufTensorName(key: string, arch: Architecture): string {
  const k = key.slice(arch.keyPrefix.length);
  if (k === "model.embed_tokens.weight") return "token_embd.weight";
  if (k === "model.norm.weight") return "output_norm.weight";
  if (k === "lm_head.weight") return "output.weight";
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(k);
  const name = m && layerTensorName(m[2], arch);
  if (!m || !name) throw new GgufExportError(`tensor ${key} has no GGUF name for ${arch.modelType}`);
  return `blk.${m[1]}.${name}`;
}

/**
 * llama.cpp's interleaved RoPE for llama/mistral: within each head, the rows of the first and second halves
 * (Hugging Face's rotate_half layout) are interleaved, as convert_hf_to_gguf.py's `permute` does.
 */
export function permuteRopeRows(values: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const out = new Float32Array(values.length);
  const perHead = rows / heads;
  const half = perHead / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let part = 0; part < 2; part++) {
        const from = h * perHead + part * half + i;
        const to = h * perHead + 2 * i + part;
        out.set(values.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** The attention scale llama.cpp uses for Gemma 2 / 3 (fixed by model size), as the divisor under the square root. */
function llamaCppGemmaScaleDivisor(config: ModelConfig, gguf: string): number {
  const is27B = gguf === "gemma2" ? config.num_hidden_layers === 46 : config.num_hidden_layers === 62;
  return is27B ? config.hidden_size / config.num_attention_heads : headDim(config);
}

/**
 * general.name: the Hub repository's name for a Hub cache snapshot (whose folder is a commit hash), else the
 * folder's. llama.cpp recognises Phi-3 by this name (it then strips whitespace after the special tokens, as
 * Phi-3's tokenizer does), so a phi3 model's name is made to say so.
 */
function modelName(source: string, config: ModelConfig, tokens: readonly string[], notes: string[]): string {
  const hub = /models--[^/]+--([^/]+)\/snapshots\/[^/]+$/.exec(source);
  const name = hub ? hub[1] : basename(source);
  // llama.cpp's Phi-3 handling looks these tokens up (Phi-3's Llama 2 vocabulary has them; Phi-4-mini's has not).
  const phi3Vocabulary = ["<unk>", "<s>", "</s>", "<|endoftext|>"].every((t) => tokens.includes(t));
  if (config.model_type !== "phi3" || /phi-?3/i.test(name) || !phi3Vocabulary) return name;
  notes.push(
    `general.name is phi3-${name}: llama.cpp recognises Phi-3 by name, to strip whitespace after its special tokens as Phi-3's ` +
      `tokenizer does`,
  );
  return `phi3-${name}`;
}

/** Architecture metadata (`{arch}.*`) as llama.cpp reads it. */
function architectureMetadata(config: ModelConfig, arch: Architecture, gguf: string, notes: string[]): Map<string, GgufValue> {
  const m = new Map<string, GgufValue>();
  const k = (key: string, v: GgufValue) => m.set(`${gguf}.${key}`, v);
  k("context_length", u32(config.max_position_embeddings ?? 4096));
  k("embedding_length", u32(config.hidden_size));
  k("block_count", u32(config.num_hidden_layers));
  k("feed_forward_length", u32(config.intermediate_size));
  k("attention.head_count", u32(config.num_attention_heads));
  k("attention.head_count_kv", u32(numKvHeads(config)));
  k("attention.layer_norm_rms_epsilon", f32(config.rms_norm_eps));
  k("attention.key_length", u32(headDim(config)));
  k("attention.value_length", u32(headDim(config)));
  k("rope.freq_base", f32(config.rope_theta));
  k("vocab_size", u32(config.vocab_size));
  k(
    "rope.dimension_count",
    u32(
      gguf === "phi3"
        ? Math.floor((config.partial_rotary_factor ?? 1) * config.hidden_size) / config.num_attention_heads
        : rotaryDim(config),
    ),
  );
  const scaling = config.rope_scaling;
  const ropeType = scaling ? (scaling.rope_type ?? scaling.type) : undefined;
  if (ropeType === "linear") {
    k("rope.scaling.type", str("linear"));
    k("rope.scaling.factor", f32(scaling!.factor!));
  } else if (ropeType === "longrope") {
    const { original, attentionFactor } = longropeParameters(config);
    k("rope.scaling.type", str("longrope"));
    k("rope.scaling.original_context_length", u32(original));
    k("rope.scaling.attn_factor", f32(attentionFactor));
    notes.push(
      `longrope: llama.cpp uses the long factors whenever its context is longer than ${original} tokens (Hugging Face: whenever ` +
        `the sequence is)`,
    );
  }
  const sliding = slidingLayers(config, arch);
  if (gguf === "gemma2" || gguf === "gemma3") {
    // llama.cpp marks layer l sliding when l % period < period - 1: find the period that gives the config's layers.
    const period = [...Array(config.num_hidden_layers + 1).keys()].slice(1).find((p) => sliding.every((s, l) => s === l % p < p - 1));
    if (sliding.some((s) => s)) {
      if (period === undefined)
        throw new GgufExportError(
          `${arch.modelType}: sliding-window layers [${sliding.map((s, l) => (s ? l : -1)).filter((l) => l >= 0)}] follow no ` +
            `period; llama.cpp cannot express them`,
        );
      k("attention.sliding_window", u32(config.sliding_window ?? 4096));
      k("attention.sliding_window_pattern", u32(period));
    }
    if (gguf === "gemma3" && arch.localRopeBase) k("rope.freq_base_swa", f32(arch.localRopeBase(config)));
    if (config.attn_logit_softcapping) k("attn_logit_softcapping", f32(config.attn_logit_softcapping));
    if (config.final_logit_softcapping) k("final_logit_softcapping", f32(config.final_logit_softcapping));
  } else if (gguf === "phi3") {
    k("attention.sliding_window", u32(sliding.some((s) => s) ? config.sliding_window! : 0));
  } else if (
    sliding.some((s) => s) &&
    config.sliding_window != null &&
    config.sliding_window < (config.max_position_embeddings ?? Infinity)
  ) {
    notes.push(
      `llama.cpp's ${gguf} attends to all earlier tokens: the checkpoint's sliding window of ${config.sliding_window} tokens is ` +
        `not kept (the same below that length)`,
    );
  }
  return m;
}

/** Extra tensors llama.cpp reads RoPE scaling from: Llama 3.1's frequency factors, Phi-3's long and short factors. */
function ropeTensors(config: ModelConfig): GgufTensor[] {
  const scaling = config.rope_scaling;
  const type = scaling ? (scaling.rope_type ?? scaling.type) : undefined;
  if (type === "llama3") {
    const factors = Float32Array.from(llama3FrequencyFactors(config, headDim(config)));
    return [{ name: "rope_freqs.weight", shape: [factors.length], type: "F32", values: async () => factors }];
  }
  if (type === "longrope") {
    return (["long", "short"] as const).map((which) => {
      const values = Float32Array.from(scaling![`${which}_factor`]!);
      return { name: `rope_factors_${which}.weight`, shape: [values.length], type: "F32" as const, values: async () => values };
    });
  }
  return [];
}

/** The metadata of the file: llama.cpp's architecture keys, the tokenizer, and what the edit was. */
async function ggufMetadata(
  checkpoint: Checkpoint,
  source: string,
  gguf: string,
  type: GgufFileType,
  options: GgufExportOptions,
  notes: string[],
): Promise<Map<string, GgufValue>> {
  const { config, arch, dir } = checkpoint;
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", str(gguf)],
    ["general.file_type", u32(FILE_TYPE[type])], // llama.cpp's quantiser sets its own
    ["general.quantization_version", u32(2)],
  ]);
  for (const [key, v] of architectureMetadata(config, arch, gguf, notes)) metadata.set(key, v);
  const eos = config.eos_token_id;
  const vocab = await ggufVocab(dir, config.vocab_size, {
    bos: typeof config.bos_token_id === "number" ? config.bos_token_id : undefined,
    eos: Array.isArray(eos) ? eos[0] : (eos ?? undefined),
    pad: config.pad_token_id ?? undefined,
  });
  const tokens = vocab.metadata.get("tokenizer.ggml.tokens") as { values: readonly string[] };
  metadata.set("general.name", str(modelName(source, config, tokens.values, notes)));
  for (const [key, v] of vocab.metadata) metadata.set(key, v);
  notes.push(...vocab.notes);
  if (options.unit) {
    metadata.set("abliterate.source", str(source));
    metadata.set("abliterate.scale", f32(options.scale ?? 1));
    metadata.set("abliterate.skip_embedding", bool(options.skipEmbedding ?? false));
    if (options.layers) metadata.set("abliterate.layers", str(`${options.layers[0]}-${options.layers[1]}`));
    // The variants (#25), where used: the kernels as JSON, the switches as booleans.
    if (options.kernels?.attention || options.kernels?.mlp) metadata.set("abliterate.kernels", str(JSON.stringify(options.kernels)));
    if (options.normPreserving) metadata.set("abliterate.norm_preserving", bool(true));
    if (options.biprojectAgainst) metadata.set("abliterate.biprojected", bool(true));
  }
  for (const [key, v] of Object.entries(options.provenance ?? {}))
    metadata.set(`abliterate.${key}`, typeof v === "string" ? str(v) : typeof v === "boolean" ? bool(v) : f32(v));
  return metadata;
}

/**
 * The file's tensors in llama.cpp's names and conventions, each produced a piece of whole rows at a time when
 * the writer reaches it (memory holds one piece, not a decoded tensor): residual writers through the streamed
 * edit of the plan, as float32; the rest decoded and converted (q/k rows permuted a head at a time, Gemma's norms
 * as 1 + w, Gemma's query scale).
 */
function ggufTensors(
  checkpoint: Checkpoint,
  plan: EditPlan,
  target: { name: string; permuteQK: boolean },
  type: GgufFileType,
  notes: string[],
): GgufTensor[] {
  const { config, arch, weights } = checkpoint;
  const keys = roleKeys(arch);
  const gemma = arch.normOffset === 1;
  // Gemma 2 and 3: llama.cpp scales attention by 1/sqrt(head_dim) (by model size for the 27B); a config's
  // query_pre_attn_scalar that differs is folded into q (into q_norm's weight where q is normalised).
  const qScale =
    target.name === "gemma2" || target.name === "gemma3"
      ? Math.sqrt(llamaCppGemmaScaleDivisor(config, target.name) / (config.query_pre_attn_scalar ?? headDim(config)))
      : 1;
  if (qScale !== 1)
    notes.push(
      `queries scaled by ${qScale.toPrecision(6)}: llama.cpp's ${target.name} divides attention scores by ` +
        `sqrt(${llamaCppGemmaScaleDivisor(config, target.name)}), the checkpoint by sqrt(query_pre_attn_scalar ` +
        `${config.query_pre_attn_scalar})`,
    );
  const rowsOf = async function* (key: string, transform?: { heads?: number; map?: (w: number) => number }): AsyncGenerator<Float32Array> {
    const info = weights.info(key);
    const dtype = info.dtype as FloatDtype;
    const rows = info.shape[0];
    const cols = info.shape.slice(1).reduce((a, b) => a * b, 1);
    const rowBytes = cols * DTYPE_BYTES[dtype];
    const perHead = transform?.heads ? rows / transform.heads : 1;
    const rowsPerPiece = Math.max(perHead, Math.floor(STREAM_CHUNK_BYTES / rowBytes / perHead) * perHead);
    for (let first = 0; first < rows; first += rowsPerPiece) {
      const n = Math.min(rowsPerPiece, rows - first);
      let values = decodeToFloat32(await weights.readRange(key, first * rowBytes, (first + n) * rowBytes), dtype);
      if (transform?.heads) values = permuteRopeRows(values, n, cols, n / perHead);
      if (transform?.map) values = values.map(transform.map);
      yield values;
    }
  };
  const edited = async function* (key: string, edit: TensorEdit): AsyncGenerator<Float32Array> {
    const info = weights.info(key);
    const read = (start: number, end: number, into: Uint8Array) => weights.readRange(key, start, end, into);
    const dtype = info.dtype as FloatDtype;
    const pieces = orthogonalizeStream(edit.kind!, dtype, info.shape, edit.vector!, edit.scale, read, STREAM_CHUNK_BYTES, {
      float32: true,
      normPreserving: edit.normPreserving,
    });
    for await (const piece of pieces) yield new Float32Array(piece.buffer, piece.byteOffset, piece.length / 4);
  };
  const produce = (key: string): AsyncIterable<Float32Array> => {
    const edit = plan.edits.get(key);
    if (edit) return edited(key, edit);
    const rest = key.slice(arch.keyPrefix.length);
    const layer = /^model\.layers\.\d+\.(.+)$/.exec(rest)?.[1];
    const q = layer === "self_attn.q_proj.weight" || layer === "self_attn.q_proj.bias";
    const k = layer === "self_attn.k_proj.weight" || layer === "self_attn.k_proj.bias";
    const heads = target.permuteQK && q ? config.num_attention_heads : target.permuteQK && k ? numKvHeads(config) : undefined;
    const scaled = qScale !== 1 && (arch.qkNorm ? layer === "self_attn.q_norm.weight" : q);
    const plusOne = gemma && rest.endsWith("norm.weight");
    const plusOneScaled = (w: number) => Math.fround(w + 1) * qScale;
    const map = plusOne && scaled ? plusOneScaled : plusOne ? (w: number) => w + 1 : scaled ? (w: number) => w * qScale : undefined;
    return rowsOf(key, { heads, map });
  };
  const typeFor = (name: string, shape: readonly number[]): GgmlType => {
    if (shape.length < 2 || name.endsWith("_norm.weight")) return "F32";
    const t = TENSOR_TYPE[type];
    if (fitsType(t, shape)) return t;
    notes.push(`${name} [${shape}] stored as F16: rows of ${shape[shape.length - 1]} are not whole ${t} blocks`);
    return "F16";
  };
  const outside = weights.names.filter((key) => !key.startsWith(arch.keyPrefix));
  if (outside.length > 0)
    notes.push(
      `the language model only: ${outside.length} tensors outside ${arch.keyPrefix} (the vision tower and projector) are left ` +
        `out; llama.cpp reads those from a separate mmproj file`,
    );
  const tensors: GgufTensor[] = [...ropeTensors(config)];
  for (const key of weights.names) {
    if (!key.startsWith(arch.keyPrefix)) continue; // a multimodal checkpoint's vision tower
    if (key === keys.unembedding && plan.untie) continue; // a tied checkpoint's stored copy: see below
    const name = ggufTensorName(key, arch);
    const shape = weights.info(key).shape;
    tensors.push({ name, shape, type: typeFor(name, shape), values: () => produce(key) });
  }
  if (plan.headDiffers) {
    // Untie, as the safetensors export does: the output head keeps the original embedding.
    if (target.name === "gemma" || target.name === "gemma2")
      notes.push(
        `llama.cpp's ${target.name} always uses the token embedding as its output head: the orthogonalised embedding serves as ` +
          `both (the safetensors export unties them; --skip-embedding keeps the head exact)`,
      );
    else {
      const shape = weights.info(keys.embedding).shape;
      tensors.push({ name: "output.weight", shape, type: typeFor("output.weight", shape), values: () => rowsOf(keys.embedding) });
    }
  }
  return tensors;
}

/**
 * Write the file under its lock: directly, or for a k-quant a float file first (hidden beside the output,
 * removed afterwards) that llama.cpp's quantiser turns into the output. Returns the file's size.
 */
async function writeGgufFile(
  out: string,
  metadata: Map<string, GgufValue>,
  tensors: GgufTensor[],
  type: GgufFileType,
  quant: LlamaCppQuant | undefined,
  options: GgufExportOptions,
  notes: string[],
): Promise<number> {
  let done = 0;
  const steps = quant ? tensors.length + 1 : tensors.length; // tensors written, then the quantisation
  options.onProgress?.(0, steps);
  const onTensor = () => options.onProgress?.(++done, steps);
  const write = async () => {
    for (const name of await removeStalePartials(out)) notes.push(`removed ${join(dirname(out), name)}, left by an interrupted export`);
    if (!quant) return writeGguf(out, metadata, tensors, { overwrite: options.force, onTensor });
    const float = join(dirname(out), `.${basename(out)}.${type}-${process.pid}.gguf`);
    try {
      await writeGguf(float, metadata, tensors, { overwrite: true, onTensor });
      const partial = join(dirname(out), `.${basename(out)}.partial-${process.pid}-${Date.now()}`);
      try {
        await quantizeWithLlamaCpp(float, partial, quant);
        await rename(partial, out);
      } finally {
        await rm(partial, { force: true });
      }
      options.onProgress?.(steps, steps);
      notes.push(
        `quantised to ${quant} by llama.cpp's llama_model_quantize from a ${type} file (tensors whose rows are not whole ` +
          `blocks fall back to llama.cpp's choice)`,
      );
      return (await stat(out)).size;
    } finally {
      await rm(float, { force: true });
    }
  };
  return withLock(`${out}.lock`, write, {
    busy: (pid) => `another export (process ${pid}) is writing ${out}; wait for it to finish or choose another file`,
  });
}

/**
 * Write the checkpoint at `from` (a folder or Hub id, or an opened Checkpoint, left open) as the GGUF file
 * `outFile`, orthogonalised against `options.unit` when given.
 */
export async function exportGguf(from: string | Checkpoint, outFile: string, options: GgufExportOptions = {}): Promise<GgufExportResult> {
  const requested = options.type ?? "f16";
  const quant = Object.hasOwn(LLAMA_CPP_QUANTS, requested) ? (requested as LlamaCppQuant) : undefined;
  if (!quant && !GGUF_TYPES.includes(requested as GgufFileType))
    throw new GgufExportError(
      `GGUF type ${JSON.stringify(requested)} is not supported (written here: ${GGUF_TYPES.join(", ")}; by llama.cpp's ` +
        `quantiser: ${Object.keys(LLAMA_CPP_QUANTS).join(", ")})`,
    );
  const checkpoint = typeof from === "string" ? await openCheckpoint(from) : from;
  try {
    const { config, arch, weights, dir } = checkpoint;
    const target = LLAMA_CPP_ARCH[config.model_type];
    if (!target)
      throw new GgufExportError(
        `${dir}: model_type ${config.model_type} has no GGUF conversion (supported: ${Object.keys(LLAMA_CPP_ARCH).join(", ")})`,
      );
    const { source, out } = await checkExportFile(dir, outFile, options.force);
    checkCheckpointTensors(checkpoint);
    // A k-quant is made from a float file in the source's precision (F32, or BF16/F16 for 16-bit checkpoints).
    const dtypes = new Set(weights.names.map((n) => weights.info(n).dtype));
    const type: GgufFileType = quant ? (dtypes.has("F32") ? "f32" : dtypes.has("BF16") ? "bf16" : "f16") : (requested as GgufFileType);
    const plan = await planCheckpointEdit(checkpoint, options.unit, options);
    const notes: string[] = [];
    const metadata = await ggufMetadata(checkpoint, source, target.name, type, options, notes);
    const tensors = ggufTensors(checkpoint, plan, target, type, notes);
    const bytes = await writeGgufFile(out, metadata, tensors, type, quant, options, notes);
    const edited = [...plan.edits.keys()].filter((k) => k.startsWith(arch.keyPrefix));
    return { file: out, bytes, tensors: tensors.length, edited, notes };
  } finally {
    if (typeof from === "string") await checkpoint.close();
  }
}
