// Hook points, named exactly as TransformerLens names them, so the blog's code translates line for line.
// A hook point is an identity the activation passes through; a hook may read it or return a replacement.
import type * as tf from "@tensorflow/tfjs-core";

export const BLOCK_HOOKS = ["resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"] as const;
export type BlockHook = (typeof BLOCK_HOOKS)[number];
export type ResidHook = "resid_pre" | "resid_mid" | "resid_post";
export const RESID_HOOKS: readonly ResidHook[] = ["resid_pre", "resid_mid", "resid_post"];

/** TransformerLens's `utils.get_act_name`: `actName("resid_pre", 3)` is `blocks.3.hook_resid_pre`. */
export function actName(kind: BlockHook | "embed" | "normalized", layer?: number): string {
  if (kind === "embed") return "hook_embed";
  if (kind === "normalized") return "ln_final.hook_normalized";
  if (layer === undefined || !Number.isInteger(layer) || layer < 0)
    throw new Error(`actName("${kind}", ${layer}): a block hook needs a layer index >= 0`);
  return `blocks.${layer}.hook_${kind}`;
}

/** Every hook point of a model with `nLayers` layers, in the order the forward pass reaches them. */
export function hookNames(nLayers: number): string[] {
  const names = [actName("embed")];
  for (let l = 0; l < nLayers; l++) for (const k of BLOCK_HOOKS) names.push(actName(k, l));
  names.push(actName("normalized"));
  return names;
}

export interface HookPoint {
  name: string;
  /** Layer index for block hooks. */
  layer?: number;
}

/**
 * A forward hook: receives the activation ([batch, pos, d_model] for residual hooks) and may return
 * a replacement of the same shape. Tensors it creates are disposed after the layer; to keep one,
 * copy its values out or `tf.keep` it and dispose it yourself.
 */
export type HookFn = (activation: tf.Tensor, hook: HookPoint) => tf.Tensor | void;

/** Which hook points a hook or a cache applies to: one name, several, or a predicate. */
export type NameFilter = string | readonly string[] | ((name: string) => boolean);

export type FwdHook = readonly [NameFilter, HookFn];

export function matches(filter: NameFilter, name: string): boolean {
  if (typeof filter === "string") return filter === name;
  if (typeof filter === "function") return filter(name);
  return filter.includes(name);
}

/** Checks hook names against the model's hook points, so a typo fails loudly instead of doing nothing. */
export function checkHookNames(filters: NameFilter[], nLayers: number): void {
  const known = new Set(hookNames(nLayers));
  for (const f of filters) {
    const names = typeof f === "string" ? [f] : typeof f === "function" ? [] : [...f];
    for (const n of names) {
      if (!known.has(n))
        throw new Error(
          `unknown hook point "${n}"; hook points look like ${actName("resid_pre", 0)} (layers 0..${nLayers - 1}), hook_embed, ` +
            `ln_final.hook_normalized`,
        );
    }
  }
}
