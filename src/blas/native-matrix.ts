// Weight matrices held outside the 4 GB wasm heap, multiplied where they are by sgemm through a kernel of
// our own (differentiable in its input), and rows of them read as an embedding lookup.
import * as tf from "@tensorflow/tfjs-core";
import { EditKernels } from "../kernels/edit.ts";
import { decodeToFloat32 } from "../safetensors/dtype.ts";
import { kernelTakes, type LinearKernel } from "./linear-kernel.ts";
import { NO_TRANS, ROW_MAJOR, TRANS, type Sgemm, type WasmBackend } from "./sgemm.ts";

/** A 16-bit float dtype a matrix can be held in as stored (little-endian words). */
export type HalfDtype = "BF16" | "F16";

/** A matrix's values as the checkpoint stores them, 16 bits each. */
export interface HalfValues {
  dtype: HalfDtype;
  words: Uint16Array;
}

/**
 * Values of a 16-bit matrix widened at a time for a product: a tile of whole rows (at least one), 256 KiB as
 * float32, so that sgemm reads it from a core's cache.
 */
const TILE_VALUES = 1 << 16;
let tile = new Float32Array(0);
/** The edit kernels' instance BF16 tiles are widened in, held for the process once made (F16: `tile`). */
let widener: EditKernels | undefined;

/**
 * A matrix held in the process's memory, outside the 4 GB wasm heap, in the checkpoint's row-major
 * layout [rows, cols]: on the native BLAS path weights live here and sgemm reads them where they are, so
 * the heap holds only activations and a model may be larger than the heap. It holds float32 values, or the
 * checkpoint's own 16-bit values (half the memory), widened exactly a tile of rows at a time when multiplied
 * (float32 arithmetic either way); an edit (`values = ...`) makes it float32.
 */
export class NativeMatrix {
  private static nextId = 0;
  private static readonly held = new Map<number, NativeMatrix>();
  /** The kernel's handle on it. */
  readonly id = NativeMatrix.nextId++;
  private float32?: Float32Array;
  private half?: HalfValues;

  constructor(
    values: Float32Array | HalfValues,
    readonly shape: [number, number],
  ) {
    const count = values instanceof Float32Array ? values.length : values.words.length;
    if (count !== shape[0] * shape[1])
      throw new Error(`a native matrix of shape [${shape}] needs ${shape[0] * shape[1]} values, got ${count}`);
    if (values instanceof Float32Array) this.float32 = values;
    else this.half = values;
    NativeMatrix.held.set(this.id, this);
  }

  /**
   * The 16-bit words as held (row-major, the checkpoint's bytes), for edits that keep the dtype: writes into
   * them change the matrix. Undefined for a float32 matrix.
   */
  get halfValues(): Readonly<HalfValues> | undefined {
    return this.half;
  }

  static byId(id: number): NativeMatrix {
    const m = NativeMatrix.held.get(id);
    if (!m) throw new Error(`native matrix ${id} was disposed`);
    return m;
  }

  get size(): number {
    return this.shape[0] * this.shape[1];
  }

  /** How the values are held: float32, or the checkpoint's 16-bit dtype. */
  get dtype(): "F32" | HalfDtype {
    return this.half?.dtype ?? "F32";
  }

  /** Bytes the values take. */
  get bytes(): number {
    return this.half ? 2 * this.size : 4 * this.size;
  }

  /**
   * The values as float32: the array held, or for a 16-bit matrix a new float32 copy of the whole matrix (for
   * edits and reads of whole weights; products and lookups widen only what they need). Writes into that copy
   * change nothing: assign `values` to change a matrix.
   */
  get values(): Float32Array {
    if (this.float32) return this.float32;
    return this.rows(0, this.shape[0], new Float32Array(this.size));
  }

  /** New values (an edit), held as float32 from now on. */
  set values(values: Float32Array) {
    if (values.length !== this.size)
      throw new Error(`a native matrix of shape [${this.shape}] needs ${this.size} values, got ${values.length}`);
    this.float32 = values;
    this.half = undefined;
  }

  /** Rows [first, first + count) as float32 into `into` (count x cols values), exactly; returns `into`. */
  rows(first: number, count: number, into: Float32Array): Float32Array {
    const cols = this.shape[1];
    if (this.float32) into.set(this.float32.subarray(first * cols, (first + count) * cols));
    else {
      const { dtype, words } = this.half!;
      const part = words.subarray(first * cols, (first + count) * cols);
      decodeToFloat32(new Uint8Array(part.buffer, part.byteOffset, part.byteLength), dtype, into.subarray(0, count * cols));
    }
    return into;
  }

  /**
   * Rows [first, first + count) of a BF16 matrix widened by the edit kernels' SIMD `widen_bf16` (exact, as
   * decodeToFloat32): the words copied into the kernels' memory, widened there, and read where they lie.
   */
  private widened(first: number, count: number): Float32Array {
    const cols = this.shape[1];
    const n = count * cols;
    if (!widener || widener.k.memory.buffer.byteLength < 6 * Math.max(n, TILE_VALUES)) {
      widener?.release();
      widener = EditKernels.acquire(6 * Math.max(n, TILE_VALUES));
      // (A tile of up to 16 x TILE_VALUES values grows it once, and it is kept.)
    }
    const part = this.half!.words.subarray(first * cols, first * cols + n);
    // Output first (float32, 16-byte aligned at 0), then the words.
    const wordsAt = 4 * Math.max(n, TILE_VALUES);
    widener.bytes.set(new Uint8Array(part.buffer, part.byteOffset, part.byteLength), wordsAt);
    widener.k.widen_bf16(0, wordsAt, n);
    return widener.f32(0, n);
  }

  clone(): NativeMatrix {
    if (this.float32) return new NativeMatrix(this.float32.slice(), this.shape);
    return new NativeMatrix({ dtype: this.half!.dtype, words: this.half!.words.slice() }, this.shape);
  }

  dispose(): void {
    NativeMatrix.held.delete(this.id);
    this.float32 = new Float32Array(0);
    this.half = undefined;
  }

  /**
   * c [m, n] = a [m, k] times this matrix transposed (W [n, k]: a linear layer) or as it is (W [k, n]), in
   * float32. Transposed with a few rows (decoding: `kernelTakes`), by the compiled `kernel` where there is one,
   * which reads the matrix once as it is held. Otherwise by sgemm: a 16-bit matrix is widened a tile of rows
   * at a time into one reused buffer; transposed, each tile gives its own columns of c; as it is, each tile adds
   * its share of the sum (beta 1 after the first).
   */
  multiply(sgemm: Sgemm, transpose: boolean, m: number, k: number, a: Float32Array, c: Float32Array, kernel?: LinearKernel): void {
    const [rows, cols] = this.shape;
    const n = transpose ? rows : cols;
    if (kernel && transpose && kernelTakes(m, this.dtype)) {
      kernel.multiply(m, n, k, a, this.float32 ?? this.half!.words, this.dtype, c);
      return;
    }
    if (this.float32) {
      sgemm(ROW_MAJOR, NO_TRANS, transpose ? TRANS : NO_TRANS, m, n, k, 1, a, k, this.float32, cols, 0, c, n);
      return;
    }
    // One to three rows (decoding): tiles that stay in cache. More rows: tiles 16 times larger, since sgemm packs
    // the rows of `a` again for every tile.
    const step = Math.max(1, Math.floor((m <= 3 ? 4 * TILE_VALUES : 16 * TILE_VALUES) / cols));
    const bf16 = this.half!.dtype === "BF16";
    if (!bf16 && tile.length < Math.min(rows, step) * cols) tile = new Float32Array(Math.min(rows, step) * cols);
    for (let first = 0; first < rows; first += step) {
      const count = Math.min(step, rows - first);
      const w = bf16 ? this.widened(first, count) : this.rows(first, count, tile);
      if (transpose) sgemm(ROW_MAJOR, NO_TRANS, TRANS, m, count, k, 1, a, k, w, cols, 0, c.subarray(first), n);
      else sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, m, n, count, 1, a.subarray(first), k, w, cols, first === 0 ? 0 : 1, c, n);
    }
  }
}

const NATIVE_LINEAR = "AbliterateNativeLinear";

/** Whether a gradient is being recorded (tf.grad and its kin), as tfjs's own fused ops ask. */
export function recordingGradient(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

/**
 * The kernel: x [..., k] times a native matrix W, as x @ W^T (W [n, k]) or, with `transpose` false, x @ W
 * (W [k, n]), every leading axis of x taken as rows; plus `bias` [n] when given. Output [..., n].
 */
export function registerNativeLinear(sgemm: Sgemm, kernel?: LinearKernel): void {
  if (!tf.getKernel("BatchMatMul", "wasm") || tf.getKernel(NATIVE_LINEAR, "wasm")) return;
  tf.registerKernel({
    kernelName: NATIVE_LINEAR,
    backendName: "wasm",
    kernelFunc: (args) => {
      const { x, bias } = args.inputs as { x: tf.TensorInfo; bias?: tf.TensorInfo };
      const { weight, transpose } = args.attrs as unknown as { weight: number; transpose: boolean };
      const w = NativeMatrix.byId(weight);
      const [rows, cols] = w.shape;
      const k = x.shape.at(-1);
      const n = transpose ? rows : cols;
      if (x.dtype !== "float32" || x.shape.length < 2 || k !== (transpose ? cols : rows)) {
        throw new Error(
          `native matMul: x of shape [${x.shape}] (${x.dtype}) cannot multiply a weight of shape ` +
            `[${w.shape}]${transpose ? " transposed" : ""}; expected float32 [..., ${transpose ? cols : rows}]`,
        );
      }
      if (bias && (bias.dtype !== "float32" || bias.shape.length !== 1 || bias.shape[0] !== n))
        throw new Error(`native matMul: a bias of shape [${bias.shape}] (${bias.dtype}); expected float32 [${n}]`);
      const m = tf.util.sizeFromShape(x.shape.slice(0, -1));
      const backend = args.backend as unknown as WasmBackend;
      const out = backend.makeOutput([...x.shape.slice(0, -1), n], "float32");
      if (m * n === 0) return out;
      const heap = backend.wasm.HEAPF32; // after the output's allocation, which may grow the heap
      const offset = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset / 4;
      const [xo, co] = [offset(x), offset(out)];
      const c = heap.subarray(co, co + m * n);
      if (k === 0) c.fill(0);
      else w.multiply(sgemm, transpose, m, k, heap.subarray(xo, xo + m * k), c, kernel);
      if (bias) {
        const b = heap.subarray(offset(bias), offset(bias) + n);
        for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) c[i * n + j] += b[j];
      }
      return out;
    },
  });
}

function nativeProduct<T extends tf.Tensor>(x: T, w: NativeMatrix, transpose: boolean, bias?: tf.Tensor1D): T {
  const inputs: tf.NamedTensorMap = bias ? { x, bias } : { x };
  return tf.engine().runKernel(NATIVE_LINEAR, inputs, { weight: w.id, transpose } as unknown as tf.NamedAttrMap) as T;
}

/**
 * x @ W^T (+ bias) for x [..., in] and a native W [out, in] (a linear layer as the checkpoint stores it), every
 * leading axis of x taken as rows: [..., out]. Differentiable in x (and the bias): while a gradient is recorded
 * it runs as a custom gradient; otherwise as one kernel.
 */
export function nativeLinear<T extends tf.Tensor>(x: T, w: NativeMatrix, bias?: tf.Tensor1D): T {
  if (!tf.getKernel(NATIVE_LINEAR, tf.getBackend()))
    throw new Error(`weights held outside the wasm heap need the native BLAS path on the wasm backend (backend now: ${tf.getBackend()})`);
  if (!recordingGradient()) return nativeProduct(x, w, true, bias);
  const product = tf.customGrad(((input: T) => ({
    value: nativeProduct(input, w, true),
    // The weight is frozen: only x gets a gradient, dy @ W.
    gradFunc: (dy: tf.Tensor) => nativeProduct(dy, w, false),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  const y = product(x) as T;
  return bias ? tf.add(y, bias) : y;
}

/** Rows of a native matrix by index, [ids.length, cols], as a tensor in the heap (an embedding lookup). */
export function nativeRows(w: NativeMatrix, ids: readonly number[]): tf.Tensor2D {
  const [rows, cols] = w.shape;
  const out = new Float32Array(ids.length * cols);
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= rows) throw new Error(`token id ${id} is outside the embedding's ${rows} rows`);
    w.rows(id, 1, out.subarray(i * cols, (i + 1) * cols));
  });
  return tf.tensor2d(out, [ids.length, cols]);
}
