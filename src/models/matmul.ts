// matMul whose gradient multiplies by explicitly transposed copies. tfjs's built-in gradient uses
// matMul's transposeA / transposeB flags, which run about 10x slower on the wasm backend.
import * as tf from "@tensorflow/tfjs-core";
import { recordingGradient } from "../blas/native-matrix.ts";

/** Swap the last two axes of a rank-2 or rank-3 tensor. */
function swapLast(x: tf.Tensor): tf.Tensor {
  return x.rank === 2 ? tf.transpose(x) : tf.transpose(x, [0, 2, 1]);
}

const withGradient = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, [savedA, savedB]: tf.Tensor[]) => [tf.matMul(dy, swapLast(savedB)), tf.matMul(swapLast(savedA), dy)],
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]);

/** a @ b for [m, k] x [k, n] or batched [batch, m, k] x [batch, k, n]; the plain kernel while no gradient is recorded. */
export function matMul<T extends tf.Tensor2D | tf.Tensor3D>(a: T, b: T): T {
  return recordingGradient() ? (withGradient(a, b) as T) : tf.matMul(a, b);
}
