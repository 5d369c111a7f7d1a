// Two small steps of the forward pass as one kernel each on the wasm backend, for passes that record no
// gradient (generation, scoring, activations): RMSNorm and RoPE. Each replaces five or six element-wise kernels,
// whose dispatch, not arithmetic, is what they cost at a decode step's few rows. Same arithmetic as the
// composite ops in decoder.ts and rope.ts, each float32 rounding where they round (the RMSNorm's sum of squares
// is accumulated in float64, which only makes it closer to the exact value).
import * as tf from "@tensorflow/tfjs-core";
import { recordingGradient } from "../blas/native-matrix.ts";
import type { WasmBackend } from "../blas/sgemm.ts";

const RMS_NORM = "AbliterateRmsNorm";
const ROPE = "AbliterateRope";

function offsetOf(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId)!.memoryOffset / 4;
}

function register(): void {
  if (tf.getKernel(RMS_NORM, "wasm")) return;
  tf.registerKernel({
    kernelName: RMS_NORM,
    backendName: "wasm",
    kernelFunc: (args) => {
      const { x, weight } = args.inputs as { x: tf.TensorInfo; weight: tf.TensorInfo };
      const { eps, offset } = args.attrs as unknown as { eps: number; offset: number };
      const width = x.shape.at(-1)!;
      if (x.dtype !== "float32" || weight.dtype !== "float32" || weight.shape.length !== 1 || weight.shape[0] !== width)
        throw new Error(
          `RMSNorm: x [${x.shape}] (${x.dtype}) and a weight [${weight.shape}] (${weight.dtype}); expected float32 [${width}]`,
        );
      const backend = args.backend as unknown as WasmBackend;
      const out = backend.makeOutput(x.shape, "float32");
      const heap = backend.wasm.HEAPF32; // after the output's allocation, which may grow the heap
      const [xo, wo, oo] = [offsetOf(backend, x), offsetOf(backend, weight), offsetOf(backend, out)];
      const scale = new Float32Array(width);
      for (let j = 0; j < width; j++) scale[j] = heap[wo + j] + offset; // (offset + w), rounded to float32
      const rows = width === 0 ? 0 : tf.util.sizeFromShape(x.shape) / width;
      for (let r = 0; r < rows; r++) {
        const base = r * width;
        let sum = 0;
        for (let j = 0; j < width; j++) sum += heap[xo + base + j] * heap[xo + base + j];
        // mean(x^2) + eps and its rsqrt, each rounded to float32 as the composite ops round them
        const inverse = Math.fround(1 / Math.sqrt(Math.fround(Math.fround(sum / width) + eps)));
        for (let j = 0; j < width; j++) heap[oo + base + j] = Math.fround(heap[xo + base + j] * inverse) * scale[j];
      }
      return out;
    },
  });
  tf.registerKernel({
    kernelName: ROPE,
    backendName: "wasm",
    kernelFunc: (args) => {
      const { x, cos, sin } = args.inputs as { x: tf.TensorInfo; cos: tf.TensorInfo; sin: tf.TensorInfo };
      const [batch, heads, pos, headDim] = x.shape;
      const dim = cos.shape[3];
      const tables = [batch, 1, pos, dim].join();
      if (x.dtype !== "float32" || x.shape.length !== 4 || cos.shape.join() !== tables || sin.shape.join() !== tables || dim > headDim)
        throw new Error(
          `RoPE: x [${x.shape}], cos [${cos.shape}], sin [${sin.shape}]; expected cos and sin [${batch}, 1, ${pos}, <= ${headDim}]`,
        );
      const backend = args.backend as unknown as WasmBackend;
      const out = backend.makeOutput(x.shape, "float32");
      const heap = backend.wasm.HEAPF32;
      const [xo, co, so, oo] = [x, cos, sin, out].map((t) => offsetOf(backend, t));
      const half = dim / 2;
      for (let b = 0; b < batch; b++) {
        for (let h = 0; h < heads; h++) {
          for (let t = 0; t < pos; t++) {
            const at = ((b * heads + h) * pos + t) * headDim;
            const table = (b * pos + t) * dim;
            for (let i = 0; i < dim; i++) {
              // rotate_half(x)[i]: -x[i + half] in the first half, x[i - half] in the second
              const rotated = i < half ? -heap[xo + at + i + half] : heap[xo + at + i - half];
              const a = Math.fround(heap[xo + at + i] * heap[co + table + i]);
              heap[oo + at + i] = a + Math.fround(rotated * heap[so + table + i]);
            }
            for (let i = dim; i < headDim; i++) heap[oo + at + i] = heap[xo + at + i];
          }
        }
      }
      return out;
    },
  });
}

/** Whether the fused kernels serve this pass: the wasm backend, and no gradient being recorded. */
export function fusedKernels(): boolean {
  if (tf.getBackend() !== "wasm" || recordingGradient()) return false;
  register();
  return true;
}

/** x / rms(x) * (offset + w) over the last axis of x, as one kernel (see `fusedKernels`). */
export function fusedRmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor1D, eps: number, offset: number): T {
  return tf.engine().runKernel(RMS_NORM, { x, weight }, { eps, offset } as unknown as tf.NamedAttrMap) as T;
}

/** x * cos + rotate_half(x) * sin on the first rotary dimensions of x [batch, heads, pos, head_dim], as one kernel. */
export function fusedRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return tf.engine().runKernel(ROPE, { x, cos, sin }) as tf.Tensor4D;
}
