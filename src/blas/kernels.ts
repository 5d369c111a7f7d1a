// The wasm backend's BatchMatMul (and plain _FusedMatMul) as cblas_sgemm on the tensors where they lie, in
// the wasm heap: no copy, transposes for free, all cores, and no packed copy of each weight.
import * as tf from "@tensorflow/tfjs-core";
import { NO_TRANS, ROW_MAJOR, TRANS, type Sgemm, type WasmBackend } from "./sgemm.ts";

/** Route BatchMatMul (and plain _FusedMatMul) of the wasm backend through sgemm. */
export function overrideKernels(sgemm: Sgemm): void {
  const stock = tf.getKernel("BatchMatMul", "wasm");
  if (!stock) return; // the wasm backend is not registered: nothing to override
  const matMul = (
    a: tf.TensorInfo,
    b: tf.TensorInfo,
    transposeA: boolean,
    transposeB: boolean,
    backend: WasmBackend,
  ): tf.TensorInfo | undefined => {
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
      sgemm(
        ROW_MAJOR,
        ta,
        tb,
        batch * m,
        n,
        k,
        1,
        heap.subarray(ao, ao + batch * m * k),
        lda,
        heap.subarray(bo, bo + k * n),
        ldb,
        0,
        heap.subarray(co, co + batch * m * n),
        n,
      );
      return out;
    }
    for (let i = 0; i < batch; i++) {
      const ai = ao + (batchA === 1 ? 0 : i) * m * k;
      const bi = bo + (batchB === 1 ? 0 : i) * k * n;
      const ci = co + i * m * n;
      sgemm(
        ROW_MAJOR,
        ta,
        tb,
        m,
        n,
        k,
        1,
        heap.subarray(ai, ai + m * k),
        lda,
        heap.subarray(bi, bi + k * n),
        ldb,
        0,
        heap.subarray(ci, ci + m * n),
        n,
      );
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
      return (
        (plain ? matMul(a, b, transposeA, transposeB, args.backend as unknown as WasmBackend) : undefined) ??
        (fused.kernelFunc(args) as tf.TensorInfo)
      );
    },
  });
}
