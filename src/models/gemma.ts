// Gemma (1): embeddings scaled by sqrt(hidden_size), RMSNorm times (1 + w), tanh-approximated GELU,
// tied embeddings.
import * as tf from "@tensorflow/tfjs-core";
import type { Architecture } from "./architecture.ts";

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation (PyTorch's `gelu(approximate="tanh")`), built from differentiable ops. */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(SQRT_2_OVER_PI, tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
    return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
  });
}

export const gemma: Architecture = {
  modelTypes: ["gemma"],
  embedScale: (c) => Math.fround(Math.sqrt(c.hidden_size)), // HF rounds the normaliser to the model dtype
  normOffset: 1,
  activation: geluTanh,
  qkvBias: (c) => c.attention_bias ?? false,
  oBias: (c) => c.attention_bias ?? false,
};
