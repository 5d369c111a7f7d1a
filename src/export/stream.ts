// The streamed form of stage 5's edit: a stored tensor orthogonalised piece by piece, so memory holds a
// few MB of it at a time whatever its size. The only caller of the WebAssembly edit kernels
// (src/kernels/edit.wat); the array kernels of projection.ts stay as their tested oracle.
import { checkShape, orthogonalizeTensor, type TensorEdit, type WriterKind } from "../pipeline/orthogonalize.ts";
import { columnFactors, type UnitVector } from "../projection.ts";
import { decodeToFloat32, DTYPE_BYTES, encodeFromFloat32, type FloatDtype } from "../safetensors/dtype.ts";
import { EditKernels, layout } from "../kernels/edit.ts";

/** Pieces of at most this many bytes are read and yielded at a time when streaming a stored tensor. */
export const STREAM_CHUNK_BYTES = 16 * 1024 * 1024;

/** A weight up to this many stored bytes is read once and held for its two passes; a larger one is read twice. */
export const STREAM_WHOLE_BYTES = 256 * 1024 * 1024;

/**
 * Orthogonalise a stored tensor piece by piece, so memory holds a few MB of it at a time whatever its
 * size: `read(start, end, into)` gives raw bytes of the stored tensor, read into `into` (or returned), and
 * encoded pieces of the result are yielded in order (whole rows), in the same dtype or, with `float32`, as
 * float32 (for a writer that converts further: GGUF); each piece is a view of the kernels' memory, unchanged
 * until the one after next is asked for (write or copy it by then). The next piece is read while one is
 * edited. A weight W [d_model, in] takes two passes, r^T W and then the rows: read once and held when it is
 * at most STREAM_WHOLE_BYTES, else read twice.
 * The arithmetic runs in the WebAssembly SIMD kernels of kernels/edit.wat, a row at a time (bf16 rows as
 * stored; f16 rows, and bf16 rows edited into float32, converted in JavaScript through reused row buffers),
 * with the same results as the array kernels of projection.ts, bit for bit.
 */
export async function* orthogonalizeStream(
  kind: WriterKind,
  dtype: FloatDtype,
  shape: readonly number[],
  unit: UnitVector,
  scale: number,
  read: (start: number, end: number, into: Uint8Array) => Promise<Uint8Array>,
  chunkBytes = STREAM_CHUNK_BYTES,
  options: { float32?: boolean; normPreserving?: boolean } = {},
): AsyncGenerator<Uint8Array> {
  const d = unit.length;
  checkShape(kind, shape, d);
  if (options.normPreserving && kind !== "bias") {
    yield* normPreservingStream(kind, dtype, shape, unit, scale, read, chunkBytes, options.float32 ?? false);
    return;
  }
  const rowLength = kind === "weight" ? shape[1] : d;
  const rows = shape.reduce((a, b) => a * b, 1) / rowLength;
  const rowBytes = rowLength * DTYPE_BYTES[dtype];
  const outDtype: FloatDtype = options.float32 ? "F32" : dtype;
  const outRowBytes = rowLength * DTYPE_BYTES[outDtype];
  const rowsPerChunk = Math.max(1, Math.min(rows, Math.floor(chunkBytes / rowBytes)));
  const chunk = rowsPerChunk * rowBytes;
  const outChunk = rowsPerChunk * outRowBytes;
  const whole = kind === "weight" && rows * rowBytes <= Math.max(STREAM_WHOLE_BYTES, chunk);
  // BF16 rows stay in their dtype inside the kernels when the output is BF16 too; every other 16-bit row is
  // decoded to float32 first, and an F16 output is encoded from a float32 edited row.
  const bf16InKernels = dtype === "BF16" && outDtype === "BF16";
  const decodes = dtype !== "F32" && !bf16InKernels;
  const encodes = outDtype === "F16";
  // Memory: r, r^T W, a decoded row and an edited row where needed, the whole tensor or two chunks as read
  // (one is read into while the other is edited), and two output chunks (one is written while the other is edited).
  const input = whole ? [rows * rowBytes] : [chunk, chunk];
  const { at, total } = layout(
    d * 8,
    (kind === "weight" ? rowLength : 0) * 8,
    decodes ? rowLength * 4 : 0,
    encodes ? rowLength * 4 : 0,
    outChunk,
    outChunk,
    ...input,
  );
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
    // Row i of a chunk at `at`, as float32 in memory: where it lies (F32) or decoded into the row buffer.
    const decoded = (at: number, i: number): number => decodedRow(kernels, dtype, at + i * rowBytes, rowAt, rowLength);
    // Pass 1 of a weight: r^T W, accumulated in float64 row by row.
    if (kind === "weight") {
      for await (const { first, n, at } of chunks()) {
        for (let i = 0; i < n; i++) {
          if (bf16InKernels) k.accumulate_bf16(coefAt, at + i * rowBytes, unit[first + i], rowLength);
          else k.accumulate(coefAt, decoded(at, i), unit[first + i], rowLength);
        }
      }
    }
    let turn = 0;
    for await (const { first, n, at } of chunks()) {
      const outAt = turn++ % 2 ? out1 : out0;
      for (let i = 0; i < n; i++) {
        const out = outAt + i * outRowBytes;
        if (bf16InKernels) {
          // Read and written as stored.
          const raw = at + i * rowBytes;
          if (kind === "weight") k.subtract_scaled_bf16(out, raw, scale * unit[first + i], coefAt, rowLength);
          else k.subtract_scaled_bf16(out, raw, k.dot_bf16(raw, unitAt, rowLength) * scale, unitAt, rowLength);
          continue;
        }
        const row = decoded(at, i);
        const edited = encodes ? editedAt : out;
        if (kind === "weight") k.subtract_scaled(edited, row, scale * unit[first + i], coefAt, rowLength);
        else k.subtract_scaled(edited, row, k.dot(row, unitAt, rowLength) * scale, unitAt, rowLength);
        if (encodes) encodeFromFloat32(kernels.f32(editedAt, rowLength), outDtype, kernels.bytes.subarray(out, out + outRowBytes));
      }
      yield kernels.bytes.subarray(outAt, outAt + n * outRowBytes);
    }
  } finally {
    await reading?.catch(() => {});
    kernels.release();
  }
}

/**
 * A stored row at `raw` as float32 in the kernels' memory: where it lies (F32), else widened (bf16, by the
 * kernels) or decoded (f16, in JavaScript) into the row buffer at `rowAt`. Returns where it is.
 */
function decodedRow(kernels: EditKernels, dtype: FloatDtype, raw: number, rowAt: number, rowLength: number): number {
  if (dtype === "F32") return raw;
  if (dtype === "BF16") kernels.k.widen_bf16(rowAt, raw, rowLength);
  else decodeToFloat32(kernels.bytes.subarray(raw, raw + rowLength * DTYPE_BYTES[dtype]), dtype, kernels.f32(rowAt, rowLength));
  return rowAt;
}

/**
 * The norm-preserving edit streamed: rows of the embedding (one pass: each row's dot product, its lengths before
 * and after, the rescaled row), or columns of a weight W [d_model, in] in three passes (r^T W, each column's
 * squared length before and after the projection, then the rescaled rows). The arithmetic runs in the kernels
 * of edit.wat on float32 rows (16-bit rows decoded into a reused row buffer, results encoded from one), with
 * the results of projection.ts's array kernels bit for bit; pieces are yielded as `orthogonalizeStream` says.
 */
async function* normPreservingStream(
  kind: "embedding" | "weight",
  dtype: FloatDtype,
  shape: readonly number[],
  unit: UnitVector,
  scale: number,
  read: (start: number, end: number, into: Uint8Array) => Promise<Uint8Array>,
  chunkBytes: number,
  float32: boolean,
): AsyncGenerator<Uint8Array> {
  const d = unit.length;
  const rowLength = kind === "weight" ? shape[1] : d;
  const rows = shape.reduce((a, b) => a * b, 1) / rowLength;
  const rowBytes = rowLength * DTYPE_BYTES[dtype];
  const outDtype: FloatDtype = float32 ? "F32" : dtype;
  const outRowBytes = rowLength * DTYPE_BYTES[outDtype];
  const rowsPerChunk = Math.max(1, Math.min(rows, Math.floor(chunkBytes / rowBytes)));
  const chunk = rowsPerChunk * rowBytes;
  const outChunk = rowsPerChunk * outRowBytes;
  const whole = kind === "weight" && rows * rowBytes <= Math.max(STREAM_WHOLE_BYTES, chunk);
  const decodes = dtype !== "F32";
  const encodes = outDtype !== "F32";
  const columns = kind === "weight" ? rowLength : 0;
  // Memory: r, r^T W, the columns' squared lengths before and after and their factors (a weight), a row's factor
  // repeated (the embedding), the two sums of a row, a decoded row, an edited row, two output chunks, the input.
  const input = whole ? [rows * rowBytes] : [chunk, chunk];
  const { at, total } = layout(
    d * 8,
    columns * 8,
    columns * 8,
    columns * 8,
    columns * 8,
    kind === "embedding" ? d * 8 : 0,
    16,
    decodes ? rowLength * 4 : 0,
    encodes ? rowLength * 4 : 0,
    outChunk,
    outChunk,
    ...input,
  );
  const [unitAt, coefAt, beforeAt, afterAt, factorsAt, rowFactorAt, sumsAt, rowAt, editedAt, out0, out1, ...inputs] = at;
  const kernels = EditKernels.acquire(total);
  let reading: Promise<void> | undefined;
  try {
    const { k } = kernels;
    kernels.f64(unitAt, d).set(unit);
    for (const region of [coefAt, beforeAt, afterAt]) kernels.f64(region, columns).fill(0);
    const readInto = async (first: number, n: number, where: number) => {
      const into = kernels.bytes.subarray(where, where + n * rowBytes);
      const raw = await read(first * rowBytes, (first + n) * rowBytes, into);
      if (raw.buffer !== into.buffer || raw.byteOffset !== into.byteOffset) into.set(raw);
    };
    if (whole) await readInto(0, rows, inputs[0]);
    const chunks = async function* () {
      const count = Math.ceil(rows / rowsPerChunk);
      const span = (c: number) => ({ first: c * rowsPerChunk, n: Math.min(rowsPerChunk, rows - c * rowsPerChunk) });
      if (whole) {
        for (let c = 0; c < count; c++) yield { ...span(c), where: inputs[0] + c * chunk };
        return;
      }
      reading = readInto(span(0).first, span(0).n, inputs[0]);
      for (let c = 0; c < count; c++) {
        await reading;
        if (c + 1 < count) reading = readInto(span(c + 1).first, span(c + 1).n, inputs[(c + 1) % 2]);
        yield { ...span(c), where: inputs[c % 2] };
      }
    };
    // Row i of a chunk as float32 in memory: where it lies (F32) or decoded into the row buffer.
    const decoded = (where: number, i: number): number => decodedRow(kernels, dtype, where + i * rowBytes, rowAt, rowLength);
    // Write one edited row: into the output chunk (float32), or through the edited-row buffer (encoded: bf16 by
    // the kernels, f16 in JavaScript).
    const writeRow = (out: number, edit: (into: number) => void) => {
      edit(encodes ? editedAt : out);
      if (outDtype === "BF16") kernels.k.narrow_bf16(out, editedAt, rowLength);
      else if (encodes) encodeFromFloat32(kernels.f32(editedAt, rowLength), outDtype, kernels.bytes.subarray(out, out + outRowBytes));
    };
    if (kind === "weight") {
      for await (const { first, n, where } of chunks())
        for (let i = 0; i < n; i++) k.accumulate(coefAt, decoded(where, i), unit[first + i], rowLength);
      for await (const { first, n, where } of chunks())
        for (let i = 0; i < n; i++) k.accumulate_norms(beforeAt, afterAt, decoded(where, i), scale * unit[first + i], coefAt, rowLength);
      const [before, after] = [kernels.f64(beforeAt, columns), kernels.f64(afterAt, columns)];
      kernels.f64(factorsAt, columns).set(columnFactors(before, after));
    }
    let turn = 0;
    for await (const { first, n, where } of chunks()) {
      const outAt = turn++ % 2 ? out1 : out0;
      for (let i = 0; i < n; i++) {
        const row = decoded(where, i);
        const out = outAt + i * outRowBytes;
        if (kind === "weight") {
          writeRow(out, (into) => k.subtract_scaled_times(into, row, scale * unit[first + i], coefAt, factorsAt, rowLength));
          continue;
        }
        const c = k.dot(row, unitAt, d) * scale;
        k.row_norms(sumsAt, row, c, unitAt, d);
        const [before, after] = kernels.f64(sumsAt, 2);
        kernels.f64(rowFactorAt, d).fill(after > 0 ? Math.sqrt(before / after) : 0);
        writeRow(out, (into) => k.subtract_scaled_times(into, row, c, unitAt, rowFactorAt, d));
      }
      yield kernels.bytes.subarray(outAt, outAt + n * outRowBytes);
    }
  } finally {
    await reading?.catch(() => {});
    kernels.release();
  }
}

/**
 * The bytes of one edited tensor of a plan, as the safetensors writer takes them: streamed through the
 * kernels, or, where a delta is merged (a healing adapter), the whole tensor decoded, orthogonalised where
 * it is also a residual writer, the delta added, and encoded in its stored dtype. `onBytes` counts progress.
 */
export function editedTensorBytes(
  edit: TensorEdit,
  info: { dtype: string; shape: readonly number[]; begin: number; end: number },
  read: (start: number, end: number, into?: Uint8Array) => Promise<Uint8Array>,
  onBytes: (bytes: number) => void,
): () => Promise<Uint8Array> | AsyncIterable<Uint8Array> {
  const dtype = info.dtype as FloatDtype;
  const size = info.end - info.begin;
  const { kind, vector, scale, delta, normPreserving } = edit;
  if (delta) {
    return async () => {
      let values = decodeToFloat32(await read(0, size), dtype);
      if (kind) values = orthogonalizeTensor(kind, values, info.shape, vector!, scale, normPreserving);
      for (let i = 0; i < values.length; i++) values[i] += delta[i];
      onBytes(size);
      return encodeFromFloat32(values, dtype);
    };
  }
  return async function* () {
    for await (const piece of orthogonalizeStream(kind!, dtype, info.shape, vector!, scale, read, STREAM_CHUNK_BYTES, { normPreserving })) {
      onBytes(piece.length);
      yield piece;
    }
  };
}
