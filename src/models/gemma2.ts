// Gemma 2: Gemma with four norms per layer (the attention and MLP outputs are normalised before they
// join the residual stream), scores scaled by query_pre_attn_scalar^-1/2, tanh softcapping of the
// attention scores and of the logits, and a sliding window on every other layer (layer_types, or
// layers 0, 2, 4... in configs that predate it).
import type { Architecture } from "./architecture.ts";
import { gemma } from "./gemma.ts";

export const gemma2: Architecture = {
  ...gemma,
  modelType: "gemma2",
  configDefaults: {
    ...gemma.configDefaults,
    query_pre_attn_scalar: 256,
    sliding_window: 4096,
    attn_logit_softcapping: 50,
    final_logit_softcapping: 30,
    attention_bias: false,
  },
  sandwichNorms: true,
  slidingLayer: (_, layer) => layer % 2 === 0,
  attentionScale: (c) => (c.query_pre_attn_scalar ?? 256) ** -0.5,
};
