// matMul on the wasm backend. When the machine has a BLAS library (OpenBLAS on Linux, Apple's Accelerate
// on macOS), BatchMatMul runs as cblas_sgemm on the tensors where they lie, in the wasm heap, through the
// koffi FFI: no copy, transposes for free, all cores, and no packed copy of each weight. Otherwise the
// stock kernel runs, guarded: when XNNPACK cannot create its operator (out of memory while packing a
// weight) the stock kernel prints a warning and leaves the output unwritten; the guard turns that into an
// error instead of a silently wrong result.
// A library is only trusted after a correctness test: some OpenBLAS builds pick wrong kernels on some CPUs
// unless OPENBLAS_CORETYPE says which to use (an environment setting this code reads but never changes).
import { availableParallelism } from "node:os";
import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs-core";

export interface BlasInfo {
  /** The library loaded, e.g. libopenblas.so.0. */
  library: string;
  /** What it says of itself (OpenBLAS: version, kernels, threads). */
  description: string;
  threads: number;
}

type Sgemm = (order: number, transA: number, transB: number, m: number, n: number, k: number, alpha: number, a: Float32Array, lda: number, b: Float32Array, ldb: number, beta: number, c: Float32Array, ldc: number) => void;

const ROW_MAJOR = 101;
const NO_TRANS = 111;
const TRANS = 112;

/** Libraries tried in order when ABLITERATE_BLAS names none. */
const CANDIDATES = process.platform === "darwin"
  ? ["/System/Library/Frameworks/Accelerate.framework/Accelerate"]
  : ["libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.so"];

let active: { sgemm: Sgemm; info: BlasInfo } | undefined;

export function blasInfo(): BlasInfo | undefined {
  return active?.info;
}

/**
 * Load a BLAS library, test it, and route the wasm backend's BatchMatMul through it. Returns what was
 * loaded, or why nothing was (for backendInfo).
 */
export function enableBlas(setting = process.env.ABLITERATE_BLAS): { info?: BlasInfo; skipped?: string } {
  if (active) return { info: active.info };
  const fallback = (skipped: string) => {
    guardStockKernels();
    return { skipped };
  };
  if (setting === "off") return fallback("native BLAS: off (ABLITERATE_BLAS=off)");
  let koffi: typeof import("koffi");
  try {
    koffi = createRequire(import.meta.url)("koffi");
  } catch (error) {
    return fallback(`native BLAS: the koffi package does not load (${(error as Error).message.split("\n")[0]})`);
  }
  const tried: string[] = [];
  for (const library of setting ? [setting] : CANDIDATES) {
    let lib: ReturnType<typeof koffi.load>;
    try {
      lib = koffi.load(library);
    } catch (error) {
      tried.push(`${library}: ${(error as Error).message.split("\n")[0]}`);
      continue;
    }
    let sgemm: Sgemm;
    try {
      sgemm = lib.func("void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)") as Sgemm;
    } catch {
      tried.push(`${library}: has no cblas_sgemm`);
      continue;
    }
    const optional = <T>(signature: string): T | undefined => {
      try {
        return lib.func(signature) as T;
      } catch {
        return undefined;
      }
    };
    const requested = Number(process.env.ABLITERATE_BLAS_THREADS);
    const threads = Number.isInteger(requested) && requested > 0 ? requested : availableParallelism();
    optional<(n: number) => void>("void openblas_set_num_threads(int n)")?.(threads);
    const config = optional<() => string>("const char *openblas_get_config(void)")?.() ?? library;
    const error = selfTest(sgemm);
    if (error > 1e-4) {
      tried.push(`${library} (${config}) computes wrong results (relative error ${error.toExponential(1)} on a test product); if it is OpenBLAS, set OPENBLAS_CORETYPE for this CPU (e.g. Haswell)`);
      continue;
    }
    active = { sgemm, info: { library, description: config, threads } };
    overrideKernels(sgemm);
    registerNativeLinear(sgemm);
    return { info: active.info };
  }
  return fallback(`native BLAS: none usable (${tried.join("; ") || "no library found"}); install libopenblas0-pthread (Debian/Ubuntu) or set ABLITERATE_BLAS to a library's path`);
}

let guarded = false;

/** The stock kernels, made to fail loudly where XNNPACK would leave their output unwritten. */
function guardStockKernels(): void {
  if (guarded) return;
  for (const kernelName of ["BatchMatMul", "_FusedMatMul"]) {
    const stock = tf.getKernel(kernelName, "wasm");
    if (!stock) continue;
    guarded = true;
    tf.unregisterKernel(kernelName, "wasm");
    tf.registerKernel({
      kernelName,
      backendName: "wasm",
      kernelFunc: (args) => {
        const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
        const k = (args.attrs as { transposeA: boolean }).transposeA ? a.shape[a.shape.length - 2] : a.shape[a.shape.length - 1];
        if (k === 0) {
          // XNNPACK rejects an empty inner dimension; the product is all zeros.
          const outer = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
          const transposeB = (args.attrs as { transposeB: boolean }).transposeB;
          const m = (args.attrs as { transposeA: boolean }).transposeA ? a.shape[a.shape.length - 1] : a.shape[a.shape.length - 2];
          const n = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
          const backend = args.backend as unknown as WasmBackend;
          const out = backend.makeOutput([...outer, m, n], "float32");
          const offset = backend.dataIdMap.get(out.dataId)!.memoryOffset / 4;
          backend.wasm.HEAPF32.fill(0, offset, offset + tf.util.sizeFromShape(out.shape));
          return out;
        }
        // The kernel runs synchronously and reports XNNPACK failures only by writing to stderr.
        const messages: string[] = [];
        const write = process.stderr.write;
        process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
          const text = String(chunk);
          if (text.includes("XNN status")) {
            messages.push(text.trim());
            return true;
          }
          return (write as (...args: unknown[]) => boolean).call(process.stderr, chunk, ...rest);
        }) as typeof process.stderr.write;
        let out: tf.TensorInfo;
        try {
          out = stock.kernelFunc(args) as tf.TensorInfo;
        } finally {
          process.stderr.write = write;
        }
        if (messages.length > 0) {
          (args.backend as unknown as { disposeData(dataId: object): void }).disposeData(out.dataId);
          const status = /status (\d+)/.exec(messages[0])?.[1];
          throw new Error(`the wasm backend's XNNPACK could not compute a matMul of [${a.shape}] by [${b.shape}] (status ${status}${status === "6" ? ": out of memory, while packing its copy of the weight" : ""}); its output would be garbage, so the run stops. The model and batch do not fit the 4 GB wasm heap: lower --batch-size, use a smaller model, or install a BLAS library (libopenblas0-pthread) for the native path, which needs no packed copies`);
        }
        return out;
      },
    });
  }
}

/** Largest relative error of sgemm against float64 arithmetic, over every transpose combination. */
function selfTest(sgemm: Sgemm): number {
  const [m, n, k] = [37, 29, 53];
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
  const a = Float32Array.from({ length: m * k }, random);
  const b = Float32Array.from({ length: k * n }, random);
  let worst = 0;
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
    // A is stored [k, m] when transposed, B [n, k].
    const at = (i: number, p: number) => (ta ? a[p * m + i] : a[i * k + p]);
    const bt = (p: number, j: number) => (tb ? b[j * k + p] : b[p * n + j]);
    const c = new Float32Array(m * n);
    sgemm(ROW_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, m, n, k, 1, a, ta ? m : k, b, tb ? k : n, 0, c, n);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        let scale = 0;
        for (let p = 0; p < k; p++) {
          s += at(i, p) * bt(p, j);
          scale += Math.abs(at(i, p) * bt(p, j));
        }
        worst = Math.max(worst, Math.abs(c[i * n + j] - s) / (scale || 1));
      }
    }
  }
  return worst;
}

interface WasmBackend {
  wasm: { HEAPF32: Float32Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/** Route BatchMatMul (and plain _FusedMatMul) of the wasm backend through sgemm. */
function overrideKernels(sgemm: Sgemm): void {
  const stock = tf.getKernel("BatchMatMul", "wasm");
  if (!stock) return; // the wasm backend is not registered: nothing to override
  const matMul = (a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, backend: WasmBackend): tf.TensorInfo | undefined => {
    if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.length < 2 || b.shape.length < 2) return undefined;
    const ra = a.shape.length;
    const rb = b.shape.length;
    const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
    const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    if (k !== kb) return undefined; // the stock kernel reports the shape error
    const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
    if (batchA !== batchB && batchA !== 1 && batchB !== 1) return undefined;
    const outer = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const batch = Math.max(batchA, batchB);
    const out = backend.makeOutput([...outer, m, n], "float32");
    if (m * n === 0) return out;
    // Views are taken after the output is allocated: allocation may grow the heap and detach older views.
    const heap = backend.wasm.HEAPF32;
    const offset = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset / 4;
    const [ao, bo, co] = [offset(a), offset(b), offset(out)];
    if (k === 0) {
      heap.fill(0, co, co + batch * m * n);
      return out;
    }
    const ta = transposeA ? TRANS : NO_TRANS;
    const tb = transposeB ? TRANS : NO_TRANS;
    const lda = transposeA ? m : k;
    const ldb = transposeB ? k : n;
    if (batchB === 1 && !transposeA) {
      // One product for the whole batch: [batch * m, k] @ [k, n].
      sgemm(ROW_MAJOR, ta, tb, batch * m, n, k, 1, heap.subarray(ao, ao + batch * m * k), lda, heap.subarray(bo, bo + k * n), ldb, 0, heap.subarray(co, co + batch * m * n), n);
      return out;
    }
    for (let i = 0; i < batch; i++) {
      const ai = ao + (batchA === 1 ? 0 : i) * m * k;
      const bi = bo + (batchB === 1 ? 0 : i) * k * n;
      const ci = co + i * m * n;
      sgemm(ROW_MAJOR, ta, tb, m, n, k, 1, heap.subarray(ai, ai + m * k), lda, heap.subarray(bi, bi + k * n), ldb, 0, heap.subarray(ci, ci + m * n), n);
    }
    return out;
  };
  tf.unregisterKernel("BatchMatMul", "wasm");
  tf.registerKernel({
    kernelName: "BatchMatMul",
    backendName: "wasm",
    kernelFunc: (args) => {
      const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
      const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
      return matMul(a, b, transposeA, transposeB, args.backend as unknown as WasmBackend) ?? (stock.kernelFunc(args) as tf.TensorInfo);
    },
  });
  const fused = tf.getKernel("_FusedMatMul", "wasm");
  if (!fused) return;
  tf.unregisterKernel("_FusedMatMul", "wasm");
  tf.registerKernel({
    kernelName: "_FusedMatMul",
    backendName: "wasm",
    kernelFunc: (args) => {
      const { a, b, bias } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
      const { transposeA, transposeB, activation } = args.attrs as { transposeA: boolean; transposeB: boolean; activation?: string };
      // Only the plain product is taken over; a bias or an activation keeps the stock fused kernel.
      const plain = !bias && (activation === undefined || activation === "linear");
      return (plain ? matMul(a, b, transposeA, transposeB, args.backend as unknown as WasmBackend) : undefined) ?? (fused.kernelFunc(args) as tf.TensorInfo);
    },
  });
}

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
    if (values.length !== shape[0] * shape[1]) throw new Error(`a native matrix of shape [${shape}] needs ${shape[0] * shape[1]} values, got ${values.length}`);
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
function registerNativeLinear(sgemm: Sgemm): void {
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
        throw new Error(`native matMul: x of shape [${x.shape}] (${x.dtype}) cannot multiply a weight of shape [${w.shape}]${transpose ? " transposed" : ""}; expected float32 [m, ${transpose ? cols : rows}]`);
      }
      const backend = args.backend as unknown as WasmBackend;
      const out = backend.makeOutput([m, n], "float32");
      if (m * n === 0) return out;
      const heap = backend.wasm.HEAPF32; // after the output's allocation, which may grow the heap
      const xo = backend.dataIdMap.get(x.dataId)!.memoryOffset / 4;
      const co = backend.dataIdMap.get(out.dataId)!.memoryOffset / 4;
      if (k === 0) heap.fill(0, co, co + m * n);
      else sgemm(ROW_MAJOR, NO_TRANS, transpose ? TRANS : NO_TRANS, m, n, k, 1, heap.subarray(xo, xo + m * k), k, w.values, cols, 0, heap.subarray(co, co + m * n), n);
      return out;
    },
  });
}

function nativeProduct(x: tf.Tensor2D, w: NativeMatrix, transpose: boolean): tf.Tensor2D {
  return tf.engine().runKernel(NATIVE_LINEAR, { x }, { weight: w.id, transpose } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/** x @ W^T for x [m, in] and a native W [out, in] (a linear layer as the checkpoint stores it); differentiable in x. */
export function nativeLinear(x: tf.Tensor2D, w: NativeMatrix): tf.Tensor2D {
  if (!tf.getKernel(NATIVE_LINEAR, tf.getBackend())) throw new Error(`weights held outside the wasm heap need the native BLAS path on the wasm backend (backend now: ${tf.getBackend()})`);
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
