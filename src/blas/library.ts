// matMul on the wasm backend (this folder). When the machine has a BLAS library (OpenBLAS on Linux, Apple's Accelerate
// on macOS), BatchMatMul runs as cblas_sgemm on the tensors where they lie, in the wasm heap, through the
// koffi FFI: no copy, transposes for free, all cores, and no packed copy of each weight. Otherwise the
// stock kernel runs, guarded: when XNNPACK cannot create its operator (out of memory while packing a
// weight) the stock kernel prints a warning and leaves the output unwritten; the guard turns that into an
// error instead of a silently wrong result.
// A library is only trusted after a correctness test: some OpenBLAS builds pick wrong kernels on some CPUs
// unless OPENBLAS_CORETYPE says which to use (an environment setting this code reads but never changes).
import { availableParallelism } from "node:os";
import { createRequire } from "node:module";
import { guardStockKernels } from "./guard.ts";
import { overrideKernels } from "./kernels.ts";
import { loadLinearKernel } from "./linear-kernel.ts";
import { registerNativeLinear } from "./native-matrix.ts";
import { registerAttention } from "../models/fused.ts";
import { GEMV_ROWS, paddedRows, paddingScratchFloats, WEIGHT_ELEMENTS } from "./padding.ts";
import { NO_TRANS, ROW_MAJOR, TRANS, type BlasInfo, type Sgemm } from "./sgemm.ts";

export type { BlasInfo } from "./sgemm.ts";

/** Libraries tried in order when ABLITERATE_BLAS names none. */
export const BLAS_CANDIDATES =
  process.platform === "darwin"
    ? ["/System/Library/Frameworks/Accelerate.framework/Accelerate"]
    : ["libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.so"];

let active: { sgemm: Sgemm; info: BlasInfo; kernelSkipped?: string } | undefined;

export function blasInfo(): BlasInfo | undefined {
  return active?.info;
}

/**
 * Load a BLAS library, test it, and route the wasm backend's BatchMatMul through it. Returns what was
 * loaded, or why nothing was (for backendInfo).
 */
export function enableBlas(setting = process.env.ABLITERATE_BLAS): { info?: BlasInfo; skipped?: string; kernelSkipped?: string } {
  if (active) return { info: active.info, kernelSkipped: active.kernelSkipped };
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
  for (const library of setting ? [setting] : BLAS_CANDIDATES) {
    let lib: ReturnType<typeof koffi.load>;
    try {
      lib = koffi.load(library);
    } catch (error) {
      tried.push(`${library}: ${(error as Error).message.split("\n")[0]}`);
      continue;
    }
    let gemm: Sgemm;
    try {
      gemm = lib.func(
        "void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const " +
          "float *B, int ldb, float beta, float *C, int ldc)",
      ) as Sgemm;
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
    const sgemm = forSmallProducts(
      gemm,
      optional<Sgemv>(
        "void cblas_sgemv(int order, int trans, int M, int N, float alpha, const float *A, int lda, const float *x, int incx, " +
          "float beta, float *y, int incy)",
      ),
    );
    const requested = Number(process.env.ABLITERATE_BLAS_THREADS);
    const threads = Number.isInteger(requested) && requested > 0 ? requested : availableParallelism();
    optional<(n: number) => void>("void openblas_set_num_threads(int n)")?.(threads);
    const config = optional<() => string>("const char *openblas_get_config(void)")?.() ?? library;
    const error = sgemmError(sgemm);
    if (error > 1e-4) {
      tried.push(
        `${library} (${config}) computes wrong results (relative error ${error.toExponential(1)} on a test product); if it is ` +
          `OpenBLAS, set OPENBLAS_CORETYPE for this CPU (e.g. Haswell)`,
      );
      continue;
    }
    const linear = loadLinearKernel(koffi);
    active = { sgemm, info: { library, description: config, threads, kernel: linear.kernel?.description }, kernelSkipped: linear.skipped };
    overrideKernels(sgemm);
    registerNativeLinear(sgemm, linear.kernel);
    if (linear.kernel?.attention) registerAttention(linear.kernel.attention);
    return { info: active.info, kernelSkipped: linear.skipped };
  }
  return fallback(
    `native BLAS: none usable (${tried.join("; ") || "no library found"}); install libopenblas0-pthread (Debian/Ubuntu) or set ` +
      `ABLITERATE_BLAS to a library's path`,
  );
}

export type Sgemv = (
  order: number,
  trans: number,
  m: number,
  n: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  x: Float32Array,
  incx: number,
  beta: number,
  y: Float32Array,
  incy: number,
) => void;

let scratch = new Float32Array(0);

/**
 * sgemm shaped for the products decoding makes, where OpenBLAS's sgemm is at its slowest: a few rows (the
 * batch's new tokens) times a whole weight. Row-major with A not transposed only, as every caller here.
 * - One row (batch 1): sgemv, which streams the weight once; sgemm packs it into blocks first and reads it at
 *   a quarter of the machine's read bandwidth (npm run bench:decode).
 * - Two or three rows, on a weight: one sgemv per row.
 * - Fewer than 256 rows (padding.ts), 4 or more past a multiple of 16, on a weight: padded with zero rows to the
 *   next multiple of 16. OpenBLAS 0.3.21's Haswell kernels with 2 threads take 2.2-4.0 ms for 4 to 15 rows
 *   times a 4864 x 896 weight and 1.9 ms for 16 (likewise at 20-31 rows against 32, and on to 208 rows);
 *   the zero rows cost the copy of a few rows in and out (npm run bench:small-rows measures it).
 */
export function forSmallProducts(sgemm: Sgemm, sgemv: Sgemv | undefined): Sgemm {
  if (!sgemv) return sgemm;
  /** c [1, n] = a [1, k] B: B stored [n, k] (transposed) is y = B x; stored [k, n] it is y = B^T x. */
  const row = (
    tb: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
  ) => {
    // sgemv scales y by beta, which leaves a NaN already there (an output buffer is not cleared) with beta 0.
    if (beta === 0) c.fill(0, 0, n);
    if (tb === TRANS) sgemv(ROW_MAJOR, NO_TRANS, n, k, alpha, b, ldb, a, 1, beta, c, 1);
    else sgemv(ROW_MAJOR, TRANS, k, n, alpha, b, ldb, a, 1, beta, c, 1);
  };
  return (order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) => {
    if (transA !== NO_TRANS || order !== ROW_MAJOR) return sgemm(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (m === 1) return row(transB, n, k, alpha, a, b, ldb, beta, c);
    const weight = n * k >= WEIGHT_ELEMENTS;
    if (weight && m <= GEMV_ROWS) {
      for (let i = 0; i < m; i++) row(transB, n, k, alpha, a.subarray(i * lda), b, ldb, beta, c.subarray(i * ldc));
      return;
    }
    const padded = paddedRows(m, n, k);
    if (padded === undefined) return sgemm(order, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (scratch.length < paddingScratchFloats(m, n, k)) scratch = new Float32Array(paddingScratchFloats(m, n, k));
    const [pa, pc] = [scratch.subarray(0, padded * k), scratch.subarray(padded * k, padded * (k + n))];
    for (let i = 0; i < m; i++) pa.set(a.subarray(i * lda, i * lda + k), i * k);
    pa.fill(0, m * k);
    if (beta !== 0) for (let i = 0; i < m; i++) pc.set(c.subarray(i * ldc, i * ldc + n), i * n);
    sgemm(order, transA, transB, padded, n, k, alpha, pa, k, b, ldb, beta, pc, n);
    for (let i = 0; i < m; i++) c.set(pc.subarray(i * n, (i + 1) * n), i * ldc);
  };
}

/**
 * Largest relative error of sgemm against float64 arithmetic, over every transpose combination, on a small
 * product, a large one (blocked and threaded kernels) and a matrix-vector one (the GEMV path decoding takes):
 * a library may be right on one and wrong on another. Large products are checked on a sample of entries.
 */
export function sgemmError(sgemm: Sgemm): number {
  let worst = 0;
  for (const [m, n, k] of [
    [37, 29, 53],
    [384, 320, 1024],
    [1, 2048, 1024],
  ])
    worst = Math.max(worst, productError(sgemm, m, n, k));
  return worst;
}

function productError(sgemm: Sgemm, m: number, n: number, k: number): number {
  let seed = 12345 + m + n + k;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
  const a = Float32Array.from({ length: m * k }, random);
  const b = Float32Array.from({ length: k * n }, random);
  // Every entry of a small product; 256 spread over a large one.
  const entries =
    m * n <= 1100 ? Array.from({ length: m * n }, (_, e) => e) : Array.from({ length: 256 }, (_, e) => Math.floor((e * m * n) / 256));
  let worst = 0;
  for (const [ta, tb] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ]) {
    // A is stored [k, m] when transposed, B [n, k].
    const at = (i: number, p: number) => (ta ? a[p * m + i] : a[i * k + p]);
    const bt = (p: number, j: number) => (tb ? b[j * k + p] : b[p * n + j]);
    const c = new Float32Array(m * n);
    sgemm(ROW_MAJOR, ta ? TRANS : NO_TRANS, tb ? TRANS : NO_TRANS, m, n, k, 1, a, ta ? m : k, b, tb ? k : n, 0, c, n);
    for (const e of entries) {
      const [i, j] = [Math.floor(e / n), e % n];
      let s = 0;
      let scale = 0;
      for (let p = 0; p < k; p++) {
        s += at(i, p) * bt(p, j);
        scale += Math.abs(at(i, p) * bt(p, j));
      }
      worst = Math.max(worst, Math.abs(c[e] - s) / (scale || 1));
    }
  }
  return worst;
}
