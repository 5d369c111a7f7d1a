// Inference-time interventions on the residual stream (Arditi et al. 2024, section 2.4):
// directional ablation, x <- x - (x . r) r, at every layer and position; and activation addition,
// x <- x + c r, at one layer.
import * as tf from "@tensorflow/tfjs-core";
import { actName, RESID_HOOKS, type FwdHook, type HookFn, type ResidHook } from "./hooks.ts";

/** A direction as float32 values; checked for size, finiteness and a non-zero norm. */
export function checkDirection(direction: ArrayLike<number>, dModel: number, what = "direction"): Float32Array {
  if (direction.length !== dModel) throw new Error(`${what} has ${direction.length} values, but the model's d_model (hidden_size) is ${dModel}`);
  const v = Float32Array.from(direction);
  let norm = 0;
  for (const x of v) {
    if (!Number.isFinite(x)) throw new Error(`${what} contains ${x}`);
    norm += x * x;
  }
  if (norm === 0) throw new Error(`${what} is all zeros: the harmful and harmless means are identical, so there is no direction to remove`);
  return v;
}

/** The direction scaled to unit length. */
export function normalize(direction: ArrayLike<number>): Float32Array {
  let norm = 0;
  for (let i = 0; i < direction.length; i++) norm += direction[i] * direction[i];
  norm = Math.sqrt(norm);
  if (norm === 0) throw new Error("cannot normalise an all-zero direction: the harmful and harmless means are identical");
  return Float32Array.from(direction, (x) => x / norm);
}

/** x - (x . r) r for x [..., d_model] and unit r [d_model]. */
export function projectOut(x: tf.Tensor, unit: tf.Tensor1D): tf.Tensor {
  return tf.tidy(() => {
    const d = unit.shape[0];
    const flat = tf.reshape(x, [-1, d]) as tf.Tensor2D; // [rows, d_model]
    const coefficient = tf.matMul(flat, tf.reshape(unit, [d, 1]) as tf.Tensor2D); // [rows, 1]
    return tf.reshape(tf.sub(flat, tf.mul(coefficient, unit)), x.shape);
  });
}

/**
 * Hooks that ablate `direction` from resid_pre, resid_mid and resid_post of every layer, at every
 * position (generation included): the paper's directional ablation. Dispose the returned `unit` tensor
 * when done (or use `withDirectionAblation`).
 */
export function directionAblationHooks(direction: ArrayLike<number>, nLayers: number, options: { hooks?: readonly ResidHook[] } = {}): { fwdHooks: FwdHook[]; dispose: () => void } {
  const unit = tf.tensor1d(normalize(direction));
  const fn: HookFn = (x) => projectOut(x, unit);
  const names: string[] = [];
  for (let l = 0; l < nLayers; l++) for (const h of options.hooks ?? RESID_HOOKS) names.push(actName(h, l));
  return { fwdHooks: [[names, fn]], dispose: () => unit.dispose() };
}

/** A hook that adds `coefficient * direction` (direction as given, not normalised) at one hook point, every position. */
export function activationAdditionHooks(direction: ArrayLike<number>, layer: number, coefficient: number, hook: ResidHook = "resid_pre"): { fwdHooks: FwdHook[]; dispose: () => void } {
  const v = tf.tensor1d(Float32Array.from(direction, (x) => x * coefficient));
  return { fwdHooks: [[actName(hook, layer), (x) => tf.add(x, v)]], dispose: () => v.dispose() };
}
