// The compiled kernel for the products decoding makes (src/native/linear.c, built by npm install into
// build/native/): a few rows times a weight matrix held as the checkpoint stores it, float32, bf16 or f16,
// each weight row read once for every row and widened in registers, on every core. Through BLAS the same product
// reads a 16-bit weight twice over (widened into a buffer, then multiplied), and sgemm packs a float32 weight
// for a few rows before it multiplies (npm run bench:small-rows compares them). Loaded next to the BLAS library,
// and like it trusted only after a correctness test.
import { fileURLToPath } from "node:url";
import type * as Koffi from "koffi";
import { decodeToFloat32, encodeFromFloat32, type FloatDtype } from "../safetensors/dtype.ts";

type HalfDtype = Exclude<FloatDtype, "F32">;

export const LINEAR_SOURCE = fileURLToPath(new URL("../native/linear.c", import.meta.url));
export const LINEAR_LIBRARY = fileURLToPath(
  new URL(`../../build/native/libabliterate-linear.${process.platform === "darwin" ? "dylib" : "so"}`, import.meta.url),
);
/** Products of up to this many rows with a 16-bit native matrix go to the kernel; more go to sgemm. */
export const KERNEL_ROWS = 16;
/**
 * Which products with a native matrix the kernel takes. A 16-bit matrix: up to KERNEL_ROWS rows (through BLAS it
 * is widened first). A float32 one: 2 to 8 rows; one row streams as fast through sgemv, and from about 12 rows
 * on sgemm's blocked kernels are as fast or faster (npm run bench:small-rows, docs/benchmarks.md).
 */
export function kernelTakes(m: number, dtype: FloatDtype): boolean {
  return dtype === "F32" ? m >= 2 && m <= 8 : m >= 1 && m <= KERNEL_ROWS;
}

const DTYPE_CODE = { F32: 0, BF16: 1, F16: 2 } as const;

/** Whether ABLITERATE_LINEAR_KERNEL turns the kernel off by name (the one place that reads the setting's meaning). */
export function linearKernelOff(setting = process.env.ABLITERATE_LINEAR_KERNEL): boolean {
  return setting === "off";
}

/**
 * A decoding step's attention (src/native/linear.c's abl_decode_attention): q [batch, heads, pos, d] against the first
 * `keys` rows of k and v [batch, kvHeads, stride, d] (a KV cache with room for `stride`), the additive mask
 * [batch, pos, keys] and softmax, into out [batch, pos, heads * d].
 */
export type CompiledAttention = (
  batch: number,
  heads: number,
  kvHeads: number,
  pos: number,
  keys: number,
  stride: number,
  d: number,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  mask: Float32Array,
  scale: number,
  cap: number,
  out: Float32Array,
) => void;

export interface LinearKernel {
  /** What runs, in words: the instruction set and threads. */
  description: string;
  threads: number;
  /** The compiled attention, where the library has it and it passed its test (`attentionError`). */
  attention?: CompiledAttention;
  /**
   * y [m, n] = x [m, k] W^T for W [n, k] held row-major as `dtype` (float32 values or 16-bit words); `portable`
   * forces the plain C loop (tests compare it with the vector code).
   */
  multiply(
    m: number,
    n: number,
    k: number,
    x: Float32Array,
    w: Float32Array | Uint16Array,
    dtype: FloatDtype,
    y: Float32Array,
    portable?: boolean,
  ): void;
}

type Linear = (
  m: number,
  n: number,
  k: number,
  x: Float32Array,
  w: Float32Array | Uint16Array,
  dtype: number,
  y: Float32Array,
  isa: number,
) => void;

/**
 * Load the kernel, test it, and return it, or why it is not used. ABLITERATE_LINEAR_KERNEL=off turns it off (products
 * then go through BLAS as before); a path there loads that library instead of the one npm install built.
 */
export function loadLinearKernel(
  koffi: typeof Koffi,
  setting = process.env.ABLITERATE_LINEAR_KERNEL,
): { kernel?: LinearKernel; skipped?: string } {
  if (linearKernelOff(setting)) return { skipped: "decoding kernel: off (ABLITERATE_LINEAR_KERNEL=off)" };
  const library = setting || LINEAR_LIBRARY;
  let linear: Linear;
  let isa: number;
  let threads: number;
  let attention: CompiledAttention | undefined;
  try {
    const lib = koffi.load(library);
    linear = lib.func("void abl_linear(int m, int n, int k, const float *x, const void *w, int dtype, float *y, int isa)") as Linear;
    isa = (lib.func("int abl_linear_isa(void)") as () => number)();
    threads = (lib.func("int abl_linear_threads(void)") as () => number)();
    attention = compiledAttention(lib);
  } catch (error) {
    return {
      skipped:
        `decoding kernel: ${library} does not load (${(error as Error).message.split("\n")[0]}); products of a few rows go ` +
        `through BLAS. Build it with npm run build:native (needs a C compiler)`,
    };
  }
  const kernel: LinearKernel = {
    description: `${isa === 2 ? "AVX2 + FMA + F16C" : "portable C"}, ${threads} thread${threads === 1 ? "" : "s"}`,
    threads,
    multiply(m, n, k, x, w, dtype, y, portable = false) {
      const shape = `x [${m}, ${k}] times W [${n}, ${k}] transposed`;
      if (w.length !== n * k) throw new Error(`decoding kernel: ${shape}: W holds ${w.length} values, expected ${n * k}`);
      if (x.length < m * k) throw new Error(`decoding kernel: ${shape}: x holds ${x.length} values, expected ${m * k}`);
      if (y.length < m * n) throw new Error(`decoding kernel: ${shape}: y holds ${y.length} values, expected ${m * n}`);
      if ((dtype === "F32") !== w instanceof Float32Array)
        throw new Error(
          `decoding kernel: W of dtype ${dtype} must be ${dtype === "F32" ? "a Float32Array" : "a Uint16Array of its words"}`,
        );
      linear(m, n, k, x, w, DTYPE_CODE[dtype], y, portable ? 1 : 0);
    },
  };
  const error = kernelError(kernel);
  if (error > 1e-4)
    return { skipped: `decoding kernel: ${library} computes wrong results (relative error ${error.toExponential(1)}); not used` };
  // A library built before the attention was added lacks it: decoding then runs attention as tfjs kernels.
  if (attention && attentionError(attention) <= 1e-5) kernel.attention = attention;
  return { kernel };
}

function compiledAttention(lib: ReturnType<typeof Koffi.load>): CompiledAttention | undefined {
  try {
    return lib.func(
      "void abl_decode_attention(int batch, int heads, int kv_heads, int pos, int keys, int stride, int d, const float *q, " +
        "const float *k, const float *v, const float *mask, float scale, float cap, float *out)",
    ) as CompiledAttention;
  } catch {
    return undefined;
  }
}

/**
 * Largest error of the compiled attention against float64 arithmetic, relative to the largest |v|, on a small
 * case with grouped heads, a masked key, a capped score, a head dimension that is not a multiple of 8 and a cache
 * with room past its keys (filled with NaN, which must not be read), and a larger one that runs on every thread.
 */
export function attentionError(attend: CompiledAttention): number {
  let worst = 0;
  for (const [batch, heads, kvHeads, pos, keys, stride, d, cap] of [
    [2, 4, 2, 2, 5, 9, 11, 3],
    [3, 8, 2, 1, 200, 200, 64, 0],
  ]) {
    let seed = 99 + keys * d;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
    const cache = () =>
      Float32Array.from({ length: batch * kvHeads * stride * d }, (_, i) => (i % (stride * d) < keys * d ? random() : NaN));
    const q = Float32Array.from({ length: batch * heads * pos * d }, random);
    const [k, v] = [cache(), cache()];
    const mask = Float32Array.from({ length: batch * pos * keys }, (_, i) => (i % 7 === 3 ? -1e9 : 0));
    const scale = 1 / Math.sqrt(d);
    const out = new Float32Array(batch * pos * heads * d);
    attend(batch, heads, kvHeads, pos, keys, stride, d, q, k, v, mask, scale, cap, out);
    const expected = attentionReference(batch, heads, kvHeads, pos, keys, stride, d, q, k, v, mask, scale, cap);
    if (out.some(Number.isNaN)) return Infinity;
    for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i] - expected[i]) / 0.5);
  }
  return worst;
}

/** abl_decode_attention's arithmetic in float64, the layouts as there. */
export function attentionReference(
  ...[batch, heads, kvHeads, pos, keys, stride, d, q, k, v, mask, scale, cap]: Parameters<CompiledAttention> extends [
    ...infer In,
    Float32Array,
  ]
    ? In
    : never
): Float64Array {
  const out = new Float64Array(batch * pos * heads * d);
  const group = heads / kvHeads;
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let t = 0; t < pos; t++) {
        const kv = (b * kvHeads + Math.floor(h / group)) * stride * d;
        const scores = Array.from({ length: keys }, (_, j) => {
          let s = 0;
          for (let i = 0; i < d; i++) s += q[((b * heads + h) * pos + t) * d + i] * k[kv + j * d + i];
          s *= scale;
          if (cap > 0) s = Math.tanh(s / cap) * cap;
          return s + mask[(b * pos + t) * keys + j];
        });
        const top = Math.max(...scores);
        const weights = scores.map((s) => Math.exp(s - top));
        const total = weights.reduce((a, w) => a + w, 0);
        for (let i = 0; i < d; i++) {
          let z = 0;
          for (let j = 0; j < keys; j++) z += (weights[j] / total) * v[kv + j * d + i];
          out[((b * pos + t) * heads + h) * d + i] = z;
        }
      }
  return out;
}

/**
 * Largest relative error of the kernel against float64 arithmetic, for each dtype, on a small product (one
 * thread, lengths that are not a multiple of the vector width) and a larger one (every thread).
 */
export function kernelError(kernel: LinearKernel, portable = false): number {
  let worst = 0;
  for (const [m, n, k] of [
    [3, 7, 45],
    [5, 600, 300],
  ]) {
    let seed = 777 + m * n * k;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
    const x = Float32Array.from({ length: m * k }, random);
    const wf = Float32Array.from({ length: n * k }, random);
    for (const dtype of ["F32", "BF16", "F16"] as const) {
      const w = dtype === "F32" ? wf : words(wf, dtype);
      const values = dtype === "F32" ? wf : widened(w as Uint16Array, dtype);
      const y = new Float32Array(m * n);
      kernel.multiply(m, n, k, x, w, dtype, y, portable);
      for (let i = 0; i < m; i++)
        for (let r = 0; r < n; r++) {
          let s = 0;
          let scale = 0;
          for (let j = 0; j < k; j++) {
            s += x[i * k + j] * values[r * k + j];
            scale += Math.abs(x[i * k + j] * values[r * k + j]);
          }
          worst = Math.max(worst, Math.abs(y[i * n + r] - s) / (scale || 1));
        }
    }
  }
  return worst;
}

const words = (values: Float32Array, dtype: HalfDtype) => {
  const bytes = encodeFromFloat32(values, dtype);
  return new Uint16Array(bytes.buffer, bytes.byteOffset, values.length);
};
const widened = (w: Uint16Array, dtype: HalfDtype) => decodeToFloat32(new Uint8Array(w.buffer, w.byteOffset, w.byteLength), dtype);
