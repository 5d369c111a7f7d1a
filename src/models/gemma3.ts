// Gemma 3: Gemma 2's layer with Gemma-style q/k norms (1 + w) and no softcapping; sliding-window layers
// use their own RoPE base (rope_local_base_freq, unscaled), the global ones rope_theta with rope_scaling.
// gemma-3-1b-it is a text checkpoint (gemma3_text); 4b, 12b and 27b are multimodal (gemma3): the same
// text model under `language_model.` beside a vision tower, its config in text_config.
import type { Architecture } from "./architecture.ts";
import { gemma2 } from "./gemma2.ts";

export const gemma3Text: Architecture = {
  ...gemma2,
  modelType: "gemma3_text",
  // Gemma3TextConfig's defaults: the multimodal checkpoints' text_config gives only a few fields.
  configDefaults: {
    vocab_size: 262208,
    hidden_size: 2304,
    intermediate_size: 9216,
    num_hidden_layers: 26,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    head_dim: 256,
    hidden_activation: "gelu_pytorch_tanh",
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-6,
    pad_token_id: 0,
    eos_token_id: 1,
    bos_token_id: 2,
    tie_word_embeddings: true,
    rope_theta: 1_000_000,
    attention_bias: false,
    query_pre_attn_scalar: 256,
    sliding_window: 4096,
    final_logit_softcapping: null,
    attn_logit_softcapping: null,
    rope_local_base_freq: 10_000,
    sliding_window_pattern: 6,
  },
  qkNorm: true,
  slidingLayer: (c, layer) => (layer + 1) % (c.sliding_window_pattern ?? 6) !== 0,
  localRopeBase: (c) => c.rope_local_base_freq ?? 10_000,
};

/** The multimodal checkpoint (Gemma3ForConditionalGeneration): its language model only. */
export const gemma3: Architecture = {
  ...gemma3Text,
  modelType: "gemma3",
  textConfig: true,
  keyPrefix: "language_model.",
};
