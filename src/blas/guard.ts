// The stock wasm matMul kernels, guarded: when XNNPACK cannot create its operator (out of memory while packing
// a weight) the stock kernel prints a warning and leaves the output unwritten; the guard turns that into an
// error instead of a silently wrong result.
import * as tf from "@tensorflow/tfjs-core";
import type { WasmBackend } from "./sgemm.ts";

let guarded = false;

/** The stock kernels, made to fail loudly where XNNPACK would leave their output unwritten. */
export function guardStockKernels(): void {
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
          throw new Error(
            `the wasm backend's XNNPACK could not compute a matMul of [${a.shape}] by [${b.shape}] (status ` +
              `${status}${status === "6" ? ": out of memory, while packing its copy of the weight" : ""}); its output would be garbage, ` +
              `so the run stops. The model and batch do not fit the 4 GB wasm heap: lower --batch-size, use a smaller model, or install ` +
              `a BLAS library (libopenblas0-pthread) for the native path, which needs no packed copies`,
          );
        }
        return out;
      },
    });
  }
}
