// Qwen3: Qwen2 without the q/k/v biases (unless attention_bias), with an RMSNorm over each head of q and k
// before RoPE, and head_dim given by the config (128 for every size, not hidden_size / heads).
import type { Architecture } from "./architecture.ts";
import { llama } from "./llama.ts";
import { qwen2 } from "./qwen2.ts";

export const qwen3: Architecture = {
  ...qwen2,
  modelType: "qwen3",
  configDefaults: {
    ...llama.configDefaults,
    head_dim: 128,
    attention_bias: false,
    use_sliding_window: false,
    sliding_window: 4096,
    max_window_layers: 28,
  },
  qkvBias: (c) => c.attention_bias ?? false,
  oBias: (c) => c.attention_bias ?? false,
  qkNorm: true,
};
