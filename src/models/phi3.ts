// Phi-3, Phi-3.5 and Phi-4-mini: Llama with q, k and v in one fused qkv_proj and gate and up in one
// gate_up_proj, no biases, `longrope` scaling (short or long factors, and an attention factor on cos and
// sin), and for Phi-4-mini partial rotation (partial_rotary_factor 0.75).
import type { Architecture } from "./architecture.ts";
import { llama } from "./llama.ts";

export const phi3: Architecture = {
  ...llama,
  modelType: "phi3",
  configDefaults: {
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    hidden_act: "silu",
    original_max_position_embeddings: 4096,
    sliding_window: null,
  },
  qkvBias: () => false,
  oBias: () => false,
  fusedProjections: true,
  slidingLayer: (c) => c.sliding_window != null,
};
