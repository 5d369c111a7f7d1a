// Llama (and Llama 3.1 with `llama3` rope scaling), Mistral and Qwen2: the same decoder.
// Mistral's sliding window never binds at the lengths this project runs; Qwen2 adds q/k/v biases.
import * as tf from "@tensorflow/tfjs-core";
import type { Architecture } from "./architecture.ts";

export const llama: Architecture = {
  modelTypes: ["llama", "mistral", "qwen2"],
  embedScale: () => 1,
  normOffset: 0,
  activation: (x) => tf.mul(x, tf.sigmoid(x)), // SiLU
  qkvBias: (c) => c.model_type === "qwen2" || (c.attention_bias ?? false),
  oBias: (c) => c.model_type !== "qwen2" && (c.attention_bias ?? false),
};
