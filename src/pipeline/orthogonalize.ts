// Stage 5: make the ablation permanent. Every matrix that writes to the residual stream is
// orthogonalised against the unit direction r, so nothing the model writes has a component along r:
//   token embedding E [vocab, d_model]:        E <- E - (E r) r^T        (row kernel)
//   o_proj, down_proj W [d_model, in] (HF):    W <- W - r (r^T W)        (column kernel; the engine holds
//                                                                        them transposed, [in, d_model]: row kernel)
//   their biases b [d_model]:                  b <- b - (b . r) r        (row kernel)
// With `scale` s < 1 only a fraction s of the component is removed. The kernels are in projection.ts; the
// in-memory edit and the streamed export run the same array kernels.
// Sandwich-norm models (Gemma 2/3) normalise o_proj's and down_proj's output before the residual add:
// postnorm(o) = o / rms(o) * (1 + w). Since rms only rescales, postnorm(o) is orthogonal to r exactly when
// o is orthogonal to u = normalize((1 + w) * r), so those matrices are edited against u, per layer; the
// naive edit (against r itself) stays available for comparison.
import * as tf from "@tensorflow/tfjs-core";
import type { HookedModel } from "../hooked-model.ts";
import type { Architecture } from "../models/architecture.ts";
import { roleKeys } from "../models/tensors.ts";
import { layerKey } from "../models/architecture.ts";
import { accumulateColumnCoefficients, checkWidth, projectColumnsF32, projectRowsArray, unitVector, type UnitVector } from "../projection.ts";
import { decodeToFloat32, DTYPE_BYTES, encodeFromFloat32, type FloatDtype } from "../safetensors/dtype.ts";
import { EditKernels, layout } from "../kernels/edit.ts";

export interface OrthogonalizeOptions {
  /** Layers whose o_proj and down_proj are edited, [first, last] inclusive (default: all). */
  layers?: readonly [number, number];
  /** Leave the token embedding as it is. */
  skipEmbedding?: boolean;
  /** Fraction of the component removed, between 0 and 1 (default 1). */
  scale?: number;
  /** Sandwich-norm models: edit o_proj and down_proj against r itself, ignoring the post-norm that follows them (for comparison only). */
  naive?: boolean;
}

/** Whether these options edit every residual writer fully (what the ablation hooks do). */
export const isFullEdit = (options: OrthogonalizeOptions, nLayers: number) =>
  !options.skipEmbedding && (options.scale ?? 1) === 1 && (!options.layers || (options.layers[0] === 0 && options.layers[1] === nLayers - 1));

/** How a tensor that writes to the residual stream is stored: rows of d_model, or a [d_model, in] matrix. */
export type WriterKind = "embedding" | "weight" | "bias";

/** Whether a checkpoint tensor writes to the residual stream and is to be edited, and how. */
export function residualWriterKind(key: string, arch: Architecture, nLayers: number, options: OrthogonalizeOptions = {}): WriterKind | undefined {
  if (!key.startsWith(arch.keyPrefix)) return undefined;
  if (key === roleKeys(arch).embedding) return options.skipEmbedding ? undefined : "embedding";
  const m = /^model\.layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)\.(weight|bias)$/.exec(key.slice(arch.keyPrefix.length));
  if (!m) return undefined;
  const layer = Number(m[1]);
  const [first, last] = options.layers ?? [0, nLayers - 1];
  if (layer < first || layer > last) return undefined;
  return m[3] === "weight" ? "weight" : "bias";
}

/**
 * The direction a residual writer is orthogonalised against: r, or on sandwich-norm models, for o_proj
 * and down_proj, normalize((normOffset + w_post) * r) with w_post that layer's post-norm weight, which
 * `postNorm(key)` reads (as stored, without the offset).
 */
export function writerDirection(key: string, arch: Architecture, unit: UnitVector, postNorm: (key: string) => ArrayLike<number>, options: OrthogonalizeOptions = {}): UnitVector {
  if (!arch.sandwichNorms || options.naive) return unit;
  const m = /^model\.layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)\./.exec(key.slice(arch.keyPrefix.length));
  if (!m) return unit;
  const normKey = arch.keyPrefix + layerKey(Number(m[1]), m[2] === "self_attn.o_proj" ? "post_attention_layernorm.weight" : "post_feedforward_layernorm.weight");
  const w = postNorm(normKey);
  if (w.length !== unit.length) throw new Error(`${normKey} has ${w.length} values, but d_model is ${unit.length}`);
  return unitVector(Float64Array.from(unit, (r, i) => (arch.normOffset + w[i]) * r), `the direction scaled by ${normKey}`);
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
 * Replace a held weight by `edit` of its values. The old tensor is freed before the new one is made, so the
 * backend never holds both: a 600 MB embedding is edited without 600 MB more of wasm heap.
 */
export function replaceHeld(model: HookedModel, key: string, edit: (values: Float32Array) => Float32Array): void {
  const native = model.params.native?.[key];
  if (native) {
    native.values = edit(native.values); // outside the heap: the new values simply take the old ones' place
    return;
  }
  const held: Record<string, tf.Tensor> = Object.hasOwn(model.params.transposed, key) ? model.params.transposed : model.params.stored;
  const old = held[key];
  if (!old) throw new Error(`missing weight ${key}`);
  const values = old.dataSync() as Float32Array;
  const shape = old.shape;
  old.dispose();
  held[key] = tf.tensor(edit(values), shape, "float32");
}

/**
 * Orthogonalise a loaded model's weights in place and return the keys edited. A tied model is untied
 * first: its unembedding keeps the original embedding, as the exported checkpoint will. The edit runs the
 * same array kernels as the streamed export (float64 accumulation, one rounding).
 */
export function orthogonalizeModel(model: HookedModel, unit: UnitVector, options: OrthogonalizeOptions = {}): string[] {
  checkWidth(unit, model.dModel);
  checkOrthogonalizeOptions(options, model.nLayers);
  const keys = roleKeys(model.arch);
  const { stored, transposed } = model.params;
  const native = model.params.native ?? {};
  // Untie: the unembedding becomes a copy of the embedding, held where the embedding is.
  if (native[keys.embedding] && !native[keys.unembedding]) native[keys.unembedding] = native[keys.embedding].clone();
  else if (!native[keys.embedding] && !stored[keys.unembedding]) stored[keys.unembedding] = tf.tensor(stored[keys.embedding].dataSync(), stored[keys.embedding].shape, "float32");
  const postNorm = (key: string) => {
    if (!stored[key]) throw new Error(`missing weight ${key}`);
    return stored[key].dataSync();
  };
  const scale = options.scale ?? 1;
  const edited: string[] = [];
  for (const key of [...Object.keys(stored), ...Object.keys(transposed), ...Object.keys(native)]) {
    const kind = residualWriterKind(key, model.arch, model.nLayers, options);
    if (!kind) continue;
    const r = writerDirection(key, model.arch, unit, postNorm, options);
    // A linear weight held as stored, [d_model, in], has columns of d_model; transposed ones [in, d_model],
    // the embedding and biases have rows of it.
    const asStored = Object.hasOwn(stored, key) ? stored[key].shape : Object.hasOwn(native, key) ? native[key].shape : undefined;
    if (kind === "weight" && asStored) {
      const cols = asStored[1]!;
      replaceHeld(model, key, (w) => {
        const c = new Float64Array(cols);
        accumulateColumnCoefficients(c, w, 0, r);
        return projectColumnsF32(w, 0, r, c, scale);
      });
    } else replaceHeld(model, key, (values) => projectRowsArray(values, r, scale));
    edited.push(key);
  }
  return edited;
}

/**
 * Orthogonalise one tensor as a Hugging Face checkpoint stores it (row-major values): the whole-tensor
 * form of `orthogonalizeStream`.
 */
export function orthogonalizeTensor(kind: WriterKind, values: Float32Array, shape: readonly number[], unit: UnitVector, scale = 1): Float32Array {
  checkShape(kind, shape, unit.length);
  if (kind !== "weight") return projectRowsArray(values, unit, scale);
  const c = new Float64Array(shape[1]);
  accumulateColumnCoefficients(c, values, 0, unit);
  return projectColumnsF32(values, 0, unit, c, scale);
}

function checkShape(kind: WriterKind, shape: readonly number[], d: number): void {
  if (kind === "weight" && (shape.length !== 2 || shape[0] !== d)) throw new Error(`weight of shape [${shape}] does not have d_model ${d} rows`);
  if (kind !== "weight" && shape[shape.length - 1] !== d) throw new Error(`${kind} of shape [${shape}] does not end in d_model ${d}`);
}

/** Pieces of at most this many bytes are read and yielded at a time when streaming a stored tensor. */
export const STREAM_CHUNK_BYTES = 16 * 1024 * 1024;

/** A weight up to this many stored bytes is read once and held for its two passes; a larger one is read twice. */
export const STREAM_WHOLE_BYTES = 256 * 1024 * 1024;

/**
 * Orthogonalise a stored tensor piece by piece, so memory holds a few MB of it at a time whatever its
 * size: `read(start, end, into)` gives raw bytes of the stored tensor, read into `into` (or returned), and
 * encoded pieces of the result are yielded in order, in the same dtype; each piece is a view of the kernels'
 * memory, unchanged until the one after next is asked for (write or copy it by then). The next piece is
 * read while one is edited. A weight W [d_model, in] takes two passes, r^T W and then the rows: read once
 * and held when it is at most STREAM_WHOLE_BYTES, else read twice.
 * The arithmetic runs in the WebAssembly SIMD kernels of kernels/edit.wat, a row at a time (bf16 rows as
 * stored; f16 rows converted in JavaScript through two reused row buffers), with the same results as the
 * array kernels of projection.ts, bit for bit.
 */
export async function* orthogonalizeStream(
  kind: WriterKind,
  dtype: FloatDtype,
  shape: readonly number[],
  unit: UnitVector,
  scale: number,
  read: (start: number, end: number, into: Uint8Array) => Promise<Uint8Array>,
  chunkBytes = STREAM_CHUNK_BYTES,
): AsyncGenerator<Uint8Array> {
  const d = unit.length;
  checkShape(kind, shape, d);
  const rowLength = kind === "weight" ? shape[1] : d;
  const rows = shape.reduce((a, b) => a * b, 1) / rowLength;
  const rowBytes = rowLength * DTYPE_BYTES[dtype];
  const rowsPerChunk = Math.max(1, Math.min(rows, Math.floor(chunkBytes / rowBytes)));
  const chunk = rowsPerChunk * rowBytes;
  const whole = kind === "weight" && rows * rowBytes <= Math.max(STREAM_WHOLE_BYTES, chunk);
  // Memory: r, r^T W, for F16 one decoded row and the edited row (F32 rows are edited where they lie, BF16
  // rows inside the kernels), the whole tensor or two chunks as read (one is read into while the other is
  // edited), and two encoded chunks (one is written while the other is edited).
  const input = whole ? [rows * rowBytes] : [chunk, chunk];
  const f16Row = dtype === "F16" ? rowLength * 4 : 0;
  const { at, total } = layout(d * 8, (kind === "weight" ? rowLength : 0) * 8, f16Row, f16Row, chunk, chunk, ...input);
  const [unitAt, coefAt, rowAt, editedAt, out0, out1, ...inputs] = at;
  const kernels = EditKernels.acquire(total);
  let reading: Promise<void> | undefined; // a read ahead, awaited before the memory is given back
  try {
    const { k } = kernels;
    kernels.f64(unitAt, d).set(unit);
    kernels.f64(coefAt, kind === "weight" ? rowLength : 0).fill(0);
    const readInto = async (first: number, n: number, at: number) => {
      const into = kernels.bytes.subarray(at, at + n * rowBytes);
      const raw = await read(first * rowBytes, (first + n) * rowBytes, into);
      if (raw.buffer !== into.buffer || raw.byteOffset !== into.byteOffset) into.set(raw);
    };
    if (whole) await readInto(0, rows, inputs[0]);
    // The tensor chunk by chunk, as { first row, rows, where they are }: read ahead into two regions in
    // turn, or from the tensor held whole.
    const chunks = async function* () {
      const count = Math.ceil(rows / rowsPerChunk);
      const span = (c: number) => ({ first: c * rowsPerChunk, n: Math.min(rowsPerChunk, rows - c * rowsPerChunk) });
      if (whole) {
        for (let c = 0; c < count; c++) yield { ...span(c), at: inputs[0] + c * chunk };
        return;
      }
      reading = readInto(span(0).first, span(0).n, inputs[0]);
      for (let c = 0; c < count; c++) {
        await reading;
        if (c + 1 < count) reading = readInto(span(c + 1).first, span(c + 1).n, inputs[(c + 1) % 2]);
        yield { ...span(c), at: inputs[c % 2] };
      }
    };
    // Row i of a chunk at `at`, as float32 in memory: where it lies (F32) or decoded into the row buffer (F16).
    const decoded = (at: number, i: number): number => {
      const raw = at + i * rowBytes;
      if (dtype === "F32") return raw;
      decodeToFloat32(kernels.bytes.subarray(raw, raw + rowBytes), dtype, kernels.f32(rowAt, rowLength));
      return rowAt;
    };
    // Pass 1 of a weight: r^T W, accumulated in float64 row by row.
    if (kind === "weight") {
      for await (const { first, n, at } of chunks()) {
        for (let i = 0; i < n; i++) {
          if (dtype === "BF16") k.accumulate_bf16(coefAt, at + i * rowBytes, unit[first + i], rowLength);
          else k.accumulate(coefAt, decoded(at, i), unit[first + i], rowLength);
        }
      }
    }
    let turn = 0;
    for await (const { first, n, at } of chunks()) {
      const outAt = turn++ % 2 ? out1 : out0;
      for (let i = 0; i < n; i++) {
        const out = outAt + i * rowBytes;
        if (dtype === "BF16") {
          // Read and written as stored.
          const raw = at + i * rowBytes;
          if (kind === "weight") k.subtract_scaled_bf16(out, raw, scale * unit[first + i], coefAt, rowLength);
          else k.subtract_scaled_bf16(out, raw, k.dot_bf16(raw, unitAt, rowLength) * scale, unitAt, rowLength);
          continue;
        }
        const row = decoded(at, i);
        const edited = dtype === "F32" ? out : editedAt;
        if (kind === "weight") k.subtract_scaled(edited, row, scale * unit[first + i], coefAt, rowLength);
        else k.subtract_scaled(edited, row, k.dot(row, unitAt, rowLength) * scale, unitAt, rowLength);
        if (dtype === "F16") encodeFromFloat32(kernels.f32(editedAt, rowLength), dtype, kernels.bytes.subarray(out, out + rowBytes));
      }
      yield kernels.bytes.subarray(outAt, outAt + n * rowBytes);
    }
  } finally {
    await reading?.catch(() => {});
    kernels.release();
  }
}
