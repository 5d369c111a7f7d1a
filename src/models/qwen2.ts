// Qwen2 and Qwen2.5: Llama with biases on q, k and v (not o); sliding windows only when
// use_sliding_window is set, on the layers from max_window_layers on.
import type { Architecture } from "./architecture.ts";
import { llama } from "./llama.ts";

export const qwen2: Architecture = {
  ...llama,
  modelType: "qwen2",
  configDefaults: { ...llama.configDefaults, use_sliding_window: false, sliding_window: 4096, max_window_layers: 28 },
  qkvBias: () => true,
  oBias: () => false,
  slidingLayer: (c, layer) => (c.use_sliding_window ?? false) && layer >= (c.max_window_layers ?? 0),
  refusalOpenings: ["I", "As"],
};
