// A few rows times a weight, as a batched decode step makes them: time per product of OpenBLAS's sgemm as it is,
// against the BLAS path's small-product routing (src/blas/library.ts forSmallProducts: one sgemv per row up to 3
// rows, zero rows padding to a multiple of 16 from 4 past one), and against the compiled decoding kernel
// (src/native/linear.c; the native path uses it where kernelTakes says) on the float32 weight and on the same
// weight in bf16, on Qwen2.5-0.5B's MLP shapes. Eight copies of each weight are cycled so that every product reads
// its weight from memory, not from cache.
// Run: npm run bench:small-rows   (SMALL_ROWS=1,2,4,8 for other row counts)
import { createRequire } from "node:module";
import { cpus } from "node:os";
import { KERNEL_ROWS, loadLinearKernel } from "../src/blas/linear-kernel.ts";
import { encodeFromFloat32 } from "../src/safetensors/dtype.ts";
import { forSmallProducts, type Sgemv } from "../src/blas/library.ts";
import { NO_TRANS, ROW_MAJOR, TRANS, type Sgemm } from "../src/blas/sgemm.ts";
import { blasFunction } from "../tools/blas-functions.ts";
import { QWEN25_05B_SHAPES } from "../tools/shapes.ts";

const sgemm = blasFunction<Sgemm>(
  "void cblas_sgemm(int order, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, " +
    "int ldb, float beta, float *C, int ldc)",
  "this benchmark",
);
const sgemv = blasFunction<Sgemv>(
  "void cblas_sgemv(int order, int trans, int M, int N, float alpha, const float *A, int lda, const float *x, int incx, float beta, " +
    "float *y, int incy)",
  "this benchmark",
);
const routed = forSmallProducts(sgemm, sgemv);
const rowCounts = (process.env.SMALL_ROWS ?? "1,2,3,4,6,8,12,16,20,24,32").split(",").map(Number);
const { hidden_size: d, intermediate_size: dMlp } = QWEN25_05B_SHAPES;
const COPIES = 8;
const { kernel, skipped } = loadLinearKernel(createRequire(import.meta.url)("koffi"));
if (!kernel) console.log(`${skipped}: its columns are left out`);

/** Milliseconds per product, over at least one second of repeats after a warm-up. */
function msPerProduct(product: (w: Float32Array) => void, weights: Float32Array[]): number {
  for (const w of weights) product(w);
  const start = performance.now();
  let products = 0;
  while (performance.now() - start < 1000) for (const w of weights) (product(w), products++);
  return (performance.now() - start) / products;
}

let seed = 1;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5;
console.log(`${cpus().length} cores, ${cpus()[0]?.model}; weights stored [out, in] as the checkpoint holds them, x W^T`);
for (const [n, k] of [
  [dMlp, d],
  [d, dMlp],
]) {
  const weights = Array.from({ length: COPIES }, () => Float32Array.from({ length: n * k }, random));
  const halves = weights.map((w) => {
    const bytes = encodeFromFloat32(w, "BF16");
    return new Uint16Array(bytes.buffer, bytes.byteOffset, w.length);
  });
  console.log(`weight [${n}, ${k}] (${((n * k * 4) / 1e6).toFixed(1)} MB):`);
  for (const m of rowCounts) {
    const x = Float32Array.from({ length: m * k }, random);
    const c = new Float32Array(m * n);
    const [plain, small] = [sgemm, routed].map((f) =>
      msPerProduct((w) => f(ROW_MAJOR, NO_TRANS, TRANS, m, n, k, 1, x, k, w, k, 0, c, n), weights),
    );
    let line =
      `  ${String(m).padStart(3)} rows: sgemm ${plain.toFixed(3)} ms, routed ${small.toFixed(3)} ms (${(plain / small).toFixed(2)}x); ` +
      `routed reads the weight at ${((n * k * 4) / small / 1e6).toFixed(1)} GB/s`;
    if (kernel && m <= KERNEL_ROWS) {
      const f32 = msPerProduct((w) => kernel.multiply(m, n, k, x, w, "F32", c), weights);
      let i = 0;
      const bf16 = msPerProduct(() => kernel.multiply(m, n, k, x, halves[i++ % COPIES], "BF16", c), weights);
      line += `; kernel ${f32.toFixed(3)} ms (${((n * k * 4) / f32 / 1e6).toFixed(1)} GB/s), in bf16 ${bf16.toFixed(3)} ms`;
    }
    console.log(line);
  }
}
