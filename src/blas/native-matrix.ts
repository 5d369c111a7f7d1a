// Weight matrices held outside the 4 GB wasm heap, multiplied where they are by sgemm through a kernel of
// our own (differentiable in its input), and rows of them read as an embedding lookup.
import * as tf from "@tensorflow/tfjs-core";
import { NO_TRANS, ROW_MAJOR, TRANS, type Sgemm, type WasmBackend } from "./sgemm.ts";

/**
 * A matrix held in the process's memory, outside the 4 GB wasm heap, in the checkpoint's row-major
 * layout [rows, cols]: on the native BLAS path weights live here and sgemm reads them where they are, so
 * the heap holds only activations and a model may be larger than the heap.
 */
export class NativeMatrix {
  private static nextId = 0;
  private static readonly held = new Map<number, NativeMatrix>();
  /** The kernel's handle on it. */
  readonly id = NativeMatrix.nextId++;

  constructor(
    public values: Float32Array,
    readonly shape: [number, number],
  ) {
    if (values.length !== shape[0] * shape[1])
      throw new Error(`a native matrix of shape [${shape}] needs ${shape[0] * shape[1]} values, got ${values.length}`);
    NativeMatrix.held.set(this.id, this);
  }

  static byId(id: number): NativeMatrix {
    const m = NativeMatrix.held.get(id);
    if (!m) throw new Error(`native matrix ${id} was disposed`);
    return m;
  }

  get size(): number {
    return this.values.length;
  }

  clone(): NativeMatrix {
    return new NativeMatrix(this.values.slice(), this.shape);
  }

  dispose(): void {
    NativeMatrix.held.delete(this.id);
    this.values = new Float32Array(0);
  }
}

const NATIVE_LINEAR = "AbliterateNativeLinear";

/** The kernel: x [m, k] times a native matrix W, as x @ W^T (W [n, k]) or, with `transpose` false, x @ W (W [k, n]). */
export function registerNativeLinear(sgemm: Sgemm): void {
  if (!tf.getKernel("BatchMatMul", "wasm") || tf.getKernel(NATIVE_LINEAR, "wasm")) return;
  tf.registerKernel({
    kernelName: NATIVE_LINEAR,
    backendName: "wasm",
    kernelFunc: (args) => {
      const { x } = args.inputs as { x: tf.TensorInfo };
      const { weight, transpose } = args.attrs as unknown as { weight: number; transpose: boolean };
      const w = NativeMatrix.byId(weight);
      const [rows, cols] = w.shape;
      const [m, k] = x.shape;
      const n = transpose ? rows : cols;
      if (x.dtype !== "float32" || x.shape.length !== 2 || k !== (transpose ? cols : rows)) {
        throw new Error(
          `native matMul: x of shape [${x.shape}] (${x.dtype}) cannot multiply a weight of shape ` +
            `[${w.shape}]${transpose ? " transposed" : ""}; expected float32 [m, ${transpose ? cols : rows}]`,
        );
      }
      const backend = args.backend as unknown as WasmBackend;
      const out = backend.makeOutput([m, n], "float32");
      if (m * n === 0) return out;
      const heap = backend.wasm.HEAPF32; // after the output's allocation, which may grow the heap
      const xo = backend.dataIdMap.get(x.dataId)!.memoryOffset / 4;
      const co = backend.dataIdMap.get(out.dataId)!.memoryOffset / 4;
      if (k === 0) heap.fill(0, co, co + m * n);
      else
        sgemm(
          ROW_MAJOR,
          NO_TRANS,
          transpose ? TRANS : NO_TRANS,
          m,
          n,
          k,
          1,
          heap.subarray(xo, xo + m * k),
          k,
          w.values,
          cols,
          0,
          heap.subarray(co, co + m * n),
          n,
        );
      return out;
    },
  });
}

function nativeProduct(x: tf.Tensor2D, w: NativeMatrix, transpose: boolean): tf.Tensor2D {
  return tf.engine().runKernel(NATIVE_LINEAR, { x }, { weight: w.id, transpose } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/** x @ W^T for x [m, in] and a native W [out, in] (a linear layer as the checkpoint stores it); differentiable in x. */
export function nativeLinear(x: tf.Tensor2D, w: NativeMatrix): tf.Tensor2D {
  if (!tf.getKernel(NATIVE_LINEAR, tf.getBackend()))
    throw new Error(`weights held outside the wasm heap need the native BLAS path on the wasm backend (backend now: ${tf.getBackend()})`);
  const product = tf.customGrad(((input: tf.Tensor2D) => ({
    value: nativeProduct(input, w, true),
    // The weight is frozen: only x gets a gradient, dy @ W.
    gradFunc: (dy: tf.Tensor) => nativeProduct(dy as tf.Tensor2D, w, false),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return product(x) as tf.Tensor2D;
}

/** Rows of a native matrix by index, [ids.length, cols], as a tensor in the heap (an embedding lookup). */
export function nativeRows(w: NativeMatrix, ids: readonly number[]): tf.Tensor2D {
  const [rows, cols] = w.shape;
  const out = new Float32Array(ids.length * cols);
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= rows) throw new Error(`token id ${id} is outside the embedding's ${rows} rows`);
    out.set(w.values.subarray(id * cols, (id + 1) * cols), i * cols);
  });
  return tf.tensor2d(out, [ids.length, cols]);
}
