// Gemma (1): embeddings scaled by sqrt(hidden_size), RMSNorm times (1 + w), tanh-approximated GELU,
// tied embeddings.
import { geluTanh } from "./activations.ts";
import type { Architecture } from "./architecture.ts";
import { llama } from "./llama.ts";

export const gemma: Architecture = {
  ...llama,
  modelType: "gemma",
  configDefaults: {
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: true,
    head_dim: 256,
    hidden_activation: "gelu_pytorch_tanh",
  },
  activations: { gelu_pytorch_tanh: geluTanh },
  scaleEmbeddings: true,
  normOffset: 1,
};
