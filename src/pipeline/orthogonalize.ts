// Stage 5: make the ablation permanent. Every matrix that writes to the residual stream is
// orthogonalised against the unit direction r, so nothing the model writes has a component along r:
//   token embedding E [vocab, d_model]:        E <- E - (E r) r^T
//   o_proj, down_proj W [d_model, in] (HF):    W <- W - r (r^T W)
//   their biases b [d_model]:                  b <- b - (b . r) r
// With `scale` s < 1 only a fraction s of the component is removed.
import * as tf from "@tensorflow/tfjs-core";
import type { HookedModel } from "../model.ts";
import { normalize } from "../interventions.ts";
import { decodeToFloat32, DTYPE_BYTES, encodeFromFloat32, type FloatDtype } from "../safetensors/dtype.ts";

export interface OrthogonalizeOptions {
  /** Layers whose o_proj and down_proj are edited, [first, last] inclusive (default: all). */
  layers?: readonly [number, number];
  /** Leave the token embedding as it is. */
  skipEmbedding?: boolean;
  /** Fraction of the component removed, between 0 and 1 (default 1). */
  scale?: number;
}

export type WriterKind = "embedding" | "weight" | "bias";

/** Whether a checkpoint tensor writes to the residual stream and is to be edited, and how. */
export function residualWriterKind(key: string, nLayers: number, options: OrthogonalizeOptions = {}): WriterKind | undefined {
  if (key === "model.embed_tokens.weight") return options.skipEmbedding ? undefined : "embedding";
  const m = /^model\.layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)\.(weight|bias)$/.exec(key);
  if (!m) return undefined;
  const layer = Number(m[1]);
  const [first, last] = options.layers ?? [0, nLayers - 1];
  if (layer < first || layer > last) return undefined;
  return m[3] === "weight" ? "weight" : "bias";
}

export function checkOrthogonalizeOptions(options: OrthogonalizeOptions, nLayers: number): void {
  const scale = options.scale ?? 1;
  if (!(scale >= 0 && scale <= 1)) throw new Error(`scale must be between 0 and 1, got ${scale}`);
  if (options.layers) {
    const [first, last] = options.layers;
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 0 || last >= nLayers || first > last) {
      throw new Error(`layer range [${first}, ${last}] is not within [0, ${nLayers - 1}]`);
    }
  }
}

/**
 * Orthogonalise one tensor, given as stored in a Hugging Face checkpoint (row-major float32),
 * against the unit direction. Computed in float64, rounded once.
 */
export function orthogonalizeTensor(kind: WriterKind, values: Float32Array, shape: readonly number[], unit: ArrayLike<number>, scale = 1): Float32Array {
  const d = unit.length;
  const out = new Float32Array(values.length);
  if (kind === "embedding" || kind === "bias") {
    // rows of length d_model: x <- x - s (x . r) r
    const rowLength = shape[shape.length - 1];
    if (rowLength !== d) throw new Error(`${kind} of shape [${shape}] does not end in d_model ${d}`);
    for (let row = 0; row < values.length / d; row++) {
      const o = row * d;
      let c = 0;
      for (let i = 0; i < d; i++) c += values[o + i] * unit[i];
      c *= scale;
      for (let i = 0; i < d; i++) out[o + i] = values[o + i] - c * unit[i];
    }
    return out;
  }
  // W [d_model, in]: W <- W - s r (r^T W)
  const [rows, cols] = shape;
  if (rows !== d || shape.length !== 2) throw new Error(`weight of shape [${shape}] does not have d_model ${d} rows`);
  const c = new Float64Array(cols);
  for (let i = 0; i < rows; i++) {
    const ri = unit[i];
    const o = i * cols;
    for (let j = 0; j < cols; j++) c[j] += ri * values[o + j];
  }
  for (let i = 0; i < rows; i++) {
    const ri = scale * unit[i];
    const o = i * cols;
    for (let j = 0; j < cols; j++) out[o + j] = values[o + j] - ri * c[j];
  }
  return out;
}

/**
 * Orthogonalise a loaded model's weights in place (its params hold o_proj and down_proj transposed,
 * [in, d_model], so each is edited row by row like the embedding). A tied unembedding keeps the
 * original embedding, as the exported checkpoint will (it is untied on export).
 */
export function orthogonalizeModel(model: HookedModel, direction: ArrayLike<number>, options: OrthogonalizeOptions = {}): string[] {
  checkOrthogonalizeOptions(options, model.nLayers);
  const unit = tf.tensor1d(normalize(direction));
  const scale = options.scale ?? 1;
  const edited: string[] = [];
  try {
    for (const key of Object.keys(model.params)) {
      if (!residualWriterKind(key, model.nLayers, options)) continue;
      const old = model.params[key];
      model.params[key] = tf.tidy(() => {
        const d = unit.shape[0];
        const rows = tf.reshape(old, [-1, d]) as tf.Tensor2D; // [rows, d_model]
        const c = tf.matMul(rows, tf.reshape(unit, [d, 1]) as tf.Tensor2D); // [rows, 1]
        return tf.reshape(tf.sub(rows, tf.mul(tf.mul(c, scale), unit)), old.shape);
      });
      old.dispose();
      edited.push(key);
    }
  } finally {
    unit.dispose();
  }
  return edited;
}

/** Pieces of at most this many bytes are decoded at a time when streaming a stored tensor. */
export const STREAM_CHUNK_BYTES = 16 * 1024 * 1024;

/**
 * Orthogonalise a stored tensor piece by piece, so memory holds a few MB of it at a time whatever its
 * size: `read(start, end)` returns raw bytes of the stored tensor, and encoded pieces of the result
 * are yielded in order, in the same dtype. A weight W [d_model, in] takes two passes: r^T W, then the rows.
 */
export async function* orthogonalizeStream(
  kind: WriterKind,
  dtype: FloatDtype,
  shape: readonly number[],
  unit: ArrayLike<number>,
  scale: number,
  read: (start: number, end: number) => Promise<Uint8Array>,
  chunkBytes = STREAM_CHUNK_BYTES,
): AsyncGenerator<Uint8Array> {
  const d = unit.length;
  const count = shape.reduce((a, b) => a * b, 1);
  const rowLength = kind === "weight" ? shape[1] : d;
  if (kind === "weight" && (shape.length !== 2 || shape[0] !== d)) throw new Error(`weight of shape [${shape}] does not have d_model ${d} rows`);
  if (kind !== "weight" && shape[shape.length - 1] !== d) throw new Error(`${kind} of shape [${shape}] does not end in d_model ${d}`);
  const rows = count / rowLength;
  const rowBytes = rowLength * DTYPE_BYTES[dtype];
  const rowsPerChunk = Math.max(1, Math.floor(chunkBytes / rowBytes));
  const chunks = async function* () {
    for (let row = 0; row < rows; row += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, rows - row);
      yield { row, n, values: decodeToFloat32(await read(row * rowBytes, (row + n) * rowBytes), dtype) };
    }
  };
  if (kind !== "weight") {
    for await (const { n, values } of chunks()) yield encodeFromFloat32(orthogonalizeTensor(kind, values, [n, d], unit, scale), dtype);
    return;
  }
  const c = new Float64Array(rowLength); // r^T W
  for await (const { row, n, values } of chunks()) {
    for (let i = 0; i < n; i++) {
      const ri = unit[row + i];
      const o = i * rowLength;
      for (let j = 0; j < rowLength; j++) c[j] += ri * values[o + j];
    }
  }
  for await (const { row, n, values } of chunks()) {
    const out = new Float32Array(values.length);
    for (let i = 0; i < n; i++) {
      const ri = scale * unit[row + i];
      const o = i * rowLength;
      for (let j = 0; j < rowLength; j++) out[o + j] = values[o + j] - ri * c[j];
    }
    yield encodeFromFloat32(out, dtype);
  }
}
