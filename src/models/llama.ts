// Llama (Llama 2, Llama 3 and 3.1 with `llama3` rope scaling, SmolLM, TinyLlama) and Mistral, which
// differs only in its sliding window: the plain pre-norm decoder that every other file here varies.
import type { ModelConfig } from "./model-config.ts";
import { silu } from "./activations.ts";
import type { Architecture } from "./architecture.ts";

export const llama: Architecture = {
  modelType: "llama",
  configDefaults: { rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, hidden_act: "silu" },
  keyPrefix: "",
  activations: { silu, swish: silu },
  scaleEmbeddings: false,
  normOffset: 0,
  qkvBias: (c) => c.attention_bias ?? false,
  oBias: (c) => c.attention_bias ?? false,
  qkNorm: false,
  sandwichNorms: false,
  fusedProjections: false,
  slidingLayer: () => false,
  attentionScale: (c: ModelConfig) => 1 / Math.sqrt(c.head_dim ?? c.hidden_size / c.num_attention_heads),
  refusalOpenings: ["I"],
};

/** Mistral: Llama with every layer's attention limited to `sliding_window` keys when that is set. */
export const mistral: Architecture = {
  ...llama,
  modelType: "mistral",
  configDefaults: { ...llama.configDefaults, sliding_window: 4096 },
  slidingLayer: (c) => c.sliding_window != null,
};
