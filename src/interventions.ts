// Inference-time interventions on the residual stream (Arditi et al. 2024, section 2.4): directional
// ablation, x <- x - (x . r) r at every layer and position; and activation addition, x <- x + c r at
// one layer. Each returns hooks that hold a tensor: dispose them, or run with `withHooks`.
import * as tf from "@tensorflow/tfjs-core";
import { actName, RESID_HOOKS, type FwdHook, type ResidHook } from "./hooks.ts";
import { checkWidth, projectRows, type UnitVector } from "./projection.ts";
import { checkOrthogonalizeOptions, kernelStrength, projectAgainst, type OrthogonalizeOptions } from "./pipeline/orthogonalize.ts";

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
 * The plain weight edit's variants as hooks on what each writer adds to the residual stream: the embedding
 * (hook_embed, strength `scale`), and each layer's attention and MLP output (hook_attn_out, hook_mlp_out) with
 * its component's kernel strength (or `scale`), against the direction, biprojected per layer where asked,
 * x <- x - lambda (x . r_l) r_l. On a model without post-sublayer norms this is exactly the baked edit
 * (W' = W - lambda r r^T W, biases alike). On sandwich-norm models (Gemma 2/3) these hook points lie after the
 * post-norm, so the hooks project the normalised write, while the baked edit projects o_proj's output against
 * u = unit((1 + w_post) r) before the norm: the same for lambda = 1 (both remove r from the write), not otherwise.
 * The norm-preserving edit has no hook form and is refused.
 */
export function editHooks(model: ModelShape, unit: UnitVector, options: OrthogonalizeOptions = {}): Intervention {
  checkWidth(unit, model.dModel);
  checkOrthogonalizeOptions(options, model.nLayers);
  if (options.normPreserving)
    throw new Error(
      "the norm-preserving edit has no inference-time hook: it rescales every weight column by a factor of its own, so what it " +
        "changes depends on the weights, not on the write alone; bake it into the weights (orthogonalizeModel, apply --norm-preserving)",
    );
  const tensors: tf.Tensor[] = [];
  const fwdHooks: FwdHook[] = [];
  const directionOf = (layer: number) =>
    options.biprojectAgainst
      ? projectAgainst(unit, options.biprojectAgainst[layer], `the harmless mean at ${actName("resid_pre", layer)}`)
      : unit;
  const add = (name: string, r: UnitVector, strength: number) => {
    if (strength === 0) return;
    const t = tf.tensor1d(Float32Array.from(r));
    tensors.push(t);
    fwdHooks.push([name, (x) => projectRows(x, t as tf.Tensor1D, strength)]);
  };
  const scale = options.scale ?? 1;
  if (!options.skipEmbedding) add(actName("embed"), directionOf(0), scale);
  const [first, last] = options.layers ?? [0, model.nLayers - 1];
  for (let l = first; l <= last; l++) {
    const r = directionOf(l);
    const { attention, mlp } = options.kernels ?? {};
    add(actName("attn_out", l), r, attention ? kernelStrength(attention, l) : scale);
    add(actName("mlp_out", l), r, mlp ? kernelStrength(mlp, l) : scale);
  }
  return { fwdHooks, dispose: () => tensors.forEach((t) => t.dispose()) };
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
