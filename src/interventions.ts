// Inference-time interventions on the residual stream (Arditi et al. 2024, section 2.4): directional
// ablation, x <- x - (x . r) r at every layer and position; and activation addition, x <- x + c r at
// one layer. Each returns hooks that hold a tensor: dispose them, or run with `withHooks`.
import * as tf from "@tensorflow/tfjs-core";
import { actName, RESID_HOOKS, type FwdHook, type ResidHook } from "./hooks.ts";
import { checkWidth, projectRows, type UnitVector } from "./projection.ts";

/** The width and depth of the model hooks are made for. */
export interface ModelShape {
  nLayers: number;
  dModel: number;
}

export interface Intervention {
  fwdHooks: FwdHook[];
  dispose(): void;
}

/**
 * Hooks that ablate the unit direction from resid_pre, resid_mid and resid_post of every layer, at every
 * position (generation included): the paper's directional ablation.
 */
export function directionAblationHooks(model: ModelShape, unit: UnitVector, options: { hooks?: readonly ResidHook[] } = {}): Intervention {
  checkWidth(unit, model.dModel);
  const r = tf.tensor1d(Float32Array.from(unit)); // [d_model]
  const names: string[] = [];
  for (let l = 0; l < model.nLayers; l++) for (const h of options.hooks ?? RESID_HOOKS) names.push(actName(h, l));
  return { fwdHooks: [[names, (x) => projectRows(x, r)]], dispose: () => r.dispose() };
}

/**
 * A hook that adds `coefficient * direction` (the direction as given: the paper adds the raw difference
 * of means) at one hook point, every position.
 */
export function activationAdditionHooks(
  model: ModelShape,
  direction: ArrayLike<number>,
  layer: number,
  coefficient: number,
  hook: ResidHook = "resid_pre",
): Intervention {
  if (direction.length !== model.dModel)
    throw new Error(`direction has ${direction.length} values, but the model's d_model (hidden_size) is ${model.dModel}`);
  if (!Number.isInteger(layer) || layer < 0 || layer >= model.nLayers)
    throw new Error(`layer ${layer} is not within [0, ${model.nLayers - 1}]`);
  const v = tf.tensor1d(Float32Array.from(direction, (x) => x * coefficient)); // [d_model]
  return { fwdHooks: [[actName(hook, layer), (x) => tf.add(x, v)]], dispose: () => v.dispose() };
}

/** Run `fn` with an intervention's hooks, disposing them afterwards whatever happens. */
export function withHooks<T>(intervention: Intervention, fn: (fwdHooks: readonly FwdHook[]) => Promise<T>): Promise<T>;
export function withHooks<T>(intervention: Intervention, fn: (fwdHooks: readonly FwdHook[]) => T): T;
export function withHooks<T>(intervention: Intervention, fn: (fwdHooks: readonly FwdHook[]) => T | Promise<T>): T | Promise<T> {
  let result: T | Promise<T>;
  try {
    result = fn(intervention.fwdHooks);
  } catch (error) {
    intervention.dispose();
    throw error;
  }
  if (result instanceof Promise) return result.finally(() => intervention.dispose());
  intervention.dispose();
  return result;
}
