// cblas_sgemm as the BLAS path calls it (row-major, through koffi), and what the loaded library is.
import type * as tf from "@tensorflow/tfjs-core";

export interface BlasInfo {
  /** The library loaded, e.g. libopenblas.so.0. */
  library: string;
  /** What it says of itself (OpenBLAS: version, kernels, threads). */
  description: string;
  threads: number;
  /** The compiled kernel for products of a few rows (linear-kernel.ts), when it loaded: what runs, in words. */
  kernel?: string;
}

export type Sgemm = (
  order: number,
  transA: number,
  transB: number,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  lda: number,
  b: Float32Array,
  ldb: number,
  beta: number,
  c: Float32Array,
  ldc: number,
) => void;

export const ROW_MAJOR = 101;
export const NO_TRANS = 111;
export const TRANS = 112;

/** What the wasm backend exposes of its heap and tensors to a kernel registered from outside. */
export interface WasmBackend {
  wasm: { HEAPF32: Float32Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}
