// Small steps of the forward pass as one kernel each on the wasm backend, for passes that record no gradient
// (generation, scoring, activations): RMSNorm and RoPE, and on the native path a decoding step's attention. Each
// replaces from five to a dozen small kernels, whose dispatch, not arithmetic, is what they cost at a decode
// step's few rows. RMSNorm and RoPE make the composite ops' arithmetic in decoder.ts and rope.ts, each float32
// rounding where they round (the RMSNorm's sum of squares is accumulated in float64, which only makes it closer
// to the exact value); the attention (src/native/linear.c) sums in float32 in another order than tfjs's matMul,
// so it agrees with the composite ops to float32 rounding, not bit for bit.
import * as tf from "@tensorflow/tfjs-core";
import { recordingGradient } from "../blas/native-matrix.ts";
import type { CompiledAttention } from "../blas/linear-kernel.ts";
import type { WasmBackend } from "../blas/sgemm.ts";

const RMS_NORM = "AbliterateRmsNorm";
const ROPE = "AbliterateRope";
const ATTENTION = "AbliterateAttention";

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

/** Register the compiled attention as a wasm kernel (the native path does, once it has loaded and tested it). */
export function registerAttention(attend: CompiledAttention): void {
  if (tf.getKernel(ATTENTION, "wasm")) return;
  tf.registerKernel({
    kernelName: ATTENTION,
    backendName: "wasm",
    kernelFunc: (args) => {
      const inputs = args.inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo; mask: tf.TensorInfo };
      const { kNew, vNew } = args.inputs as { kNew?: tf.TensorInfo; vNew?: tf.TensorInfo };
      const { q, k, v, mask } = inputs;
      const { scale, cap } = args.attrs as unknown as { scale: number; cap: number };
      const [batch, heads, pos, d] = q.shape;
      const [, kvHeads, stride] = k.shape;
      const keys = mask.shape[3];
      const cacheShape = [batch, kvHeads, stride, d].join();
      const newShape = [batch, kvHeads, pos, d].join();
      if (
        [q, k, v, mask, ...(kNew ? [kNew, vNew!] : [])].some((t) => t.dtype !== "float32" || t.shape.length !== 4) ||
        k.shape.join() !== cacheShape ||
        v.shape.join() !== cacheShape ||
        mask.shape.join() !== [batch, 1, pos, keys].join() ||
        keys > stride ||
        keys < pos ||
        (kNew && (kNew.shape.join() !== newShape || vNew?.shape.join() !== newShape)) ||
        kvHeads === 0 ||
        heads % kvHeads !== 0
      )
        throw new Error(
          `attention: q [${q.shape}], k [${k.shape}], v [${v.shape}], mask [${mask.shape}]` +
            `${kNew ? `, new keys [${kNew.shape}] and values [${vNew?.shape}]` : ""}; expected float32 q [batch, heads, pos, head_dim], ` +
            `k and v [batch, kv_heads, room, head_dim] with kv_heads dividing heads, mask [batch, 1, pos, keys] with ` +
            `pos <= keys <= room, new keys and values [batch, kv_heads, pos, head_dim]`,
        );
      const backend = args.backend as unknown as WasmBackend;
      const out = backend.makeOutput([batch, pos, heads * d], "float32");
      const heap = backend.wasm.HEAPF32; // after the output's allocation, which may grow the heap
      const view = (t: tf.TensorInfo) => {
        const at = offsetOf(backend, t);
        return heap.subarray(at, at + tf.util.sizeFromShape(t.shape));
      };
      if (kNew) {
        // The step's keys and values written into the cache's rows [keys - pos, keys), in place (see `fusedAttention`).
        for (const [cache, rows] of [
          [view(k), view(kNew)],
          [view(v), view(vNew!)],
        ])
          for (let head = 0; head < batch * kvHeads; head++)
            cache.set(rows.subarray(head * pos * d, (head + 1) * pos * d), (head * stride + keys - pos) * d);
      }
      attend(batch, heads, kvHeads, pos, keys, stride, d, view(q), view(k), view(v), view(mask), scale, cap, view(out));
      return out;
    },
  });
}

/** Whether attention runs as one compiled kernel in this pass: `fusedKernels`, and the native path has it. */
export function fusedAttentionKernel(): boolean {
  return fusedKernels() && tf.getKernel(ATTENTION, "wasm") !== undefined;
}

/**
 * softmax(q k^T * scale (capped to cap * tanh(s / cap) when cap > 0) + mask) v as one kernel, for q [batch, heads,
 * pos, head_dim] and mask [batch, 1, pos, keys] against the first `keys` positions of k and v [batch, kv_heads,
 * room, head_dim] (grouped-query: kv head h / (heads / kv_heads) serves query head h): [batch, pos, heads *
 * head_dim], the heads side by side. With `written`, the step's own keys and values [batch, kv_heads, pos,
 * head_dim] are first written into k and v's positions [keys - pos, keys) in place: k and v are then a KV cache
 * that the caller alone holds (no other tensor may share their memory), grown by nothing but these writes.
 */
export function fusedAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  mask: tf.Tensor4D,
  scale: number,
  cap = 0,
  written?: { keys: tf.Tensor4D; values: tf.Tensor4D },
): tf.Tensor3D {
  const inputs: tf.NamedTensorMap = written ? { q, k, v, mask, kNew: written.keys, vNew: written.values } : { q, k, v, mask };
  return tf.engine().runKernel(ATTENTION, inputs, { scale, cap } as unknown as tf.NamedAttrMap) as tf.Tensor3D;
}
